"""PinSage model versions: kept weights, the warm start from the previous version, and how far the
new embeddings moved from it (the ``pinsage`` job's versioning, :mod:`pinrec.jobs.pinsage.pinsage`).

* every trained version's weights go to ``<artifacts>/pinsage/<model_version>/model.pt`` (state
  dict, config, the pin ids of its rows, the feature names);
* :func:`choose_warm_start`: the version the new one starts from. The previous version is the one
  the current ``pin_embeddings`` commit names; a rerun on the same graph versions and config (the
  same day again) starts where that version itself started, so reruns stay reproducible (same
  inputs, same version) instead of warm-starting from their own output. The weights are used only
  when the architecture fields and the feature names match; otherwise, when ``pinsage.warm_start``
  is off or nothing was kept, a cold start — the reason is recorded either way;
* :func:`stability`: the previous and the new embeddings compared on their common pins
  (:mod:`pinrec.models.embedding_stability`): ``overlap_at_10``, ``procrustes_cosine``, and the
  held-out saves' recall@10 with each (``heldout_recall_at_10`` / ``..._previous``).
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pinrec.jobs.io.lake import Location, as_location

if TYPE_CHECKING:
    from pinrec.models.pinsage_trainer import PinSageTrainConfig

MODEL_FILE = "model.pt"
STABILITY_K = 10


@dataclass(frozen=True)
class WarmStart:
    """Where a version starts: ``from_version`` (None: cold), ``reason`` (always set), and the
    previous ``state`` dict and the ``pin_ids`` (N,) of its rows when warm."""

    from_version: str | None
    reason: str
    state: dict | None = None
    pin_ids: Any = None


def model_file(artifacts: str | Location, version: str) -> Location:
    return as_location(artifacts) / "pinsage" / version / MODEL_FILE


def save_model(artifacts: str | Location, version: str, state_dict: dict, cfg: PinSageTrainConfig, pin_ids,
               feature_names: list[str]) -> Location:
    """Write ``version``'s weights (see the module docstring); returns the file."""
    import torch

    buf = io.BytesIO()
    torch.save({"model": {k: v.detach().cpu() for k, v in state_dict.items()}, "config": asdict(cfg),
                "pin_ids": pin_ids.cpu(), "feature_names": list(feature_names)}, buf)
    target = model_file(artifacts, version)
    target.write_bytes(buf.getvalue())
    return target


def _plain(value):
    """What a value looks like after a JSON round trip (commit metadata stores JSON)."""
    return json.loads(json.dumps(value, default=str))


def choose_warm_start(previous: dict, artifacts: str | Location | None, cfg: PinSageTrainConfig,
                      input_versions: dict[str, int], feature_names: list[str]) -> WarmStart:
    """The starting point of the new version (module docstring). ``previous``: the userMetadata of
    the current ``pin_embeddings`` commit ({} when there is none)."""
    from pinrec.models.pinsage_trainer import ARCHITECTURE

    if not cfg.warm_start:
        return WarmStart(None, "cold start: pinsage.warm_start is off")
    if artifacts is None:
        return WarmStart(None, "cold start: no artifacts location keeps model versions")
    if not previous.get("model_version"):
        return WarmStart(None, "cold start: no previous version")
    rerun = (_plain(previous.get("input_versions")) == _plain(input_versions)
             and _plain(previous.get("train_config")) == _plain(asdict(cfg)))
    parent = previous.get("warm_start_from") if rerun else previous["model_version"]
    if parent is None:
        return WarmStart(None, f"cold start: a rerun of {previous['model_version']} on the same inputs, "
                               "which started cold")
    path = model_file(artifacts, parent)
    if not path.is_file():
        return WarmStart(None, f"cold start: no weights of {parent} at {path}")
    import torch

    saved = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
    clash = {k: (saved["config"].get(k), getattr(cfg, k)) for k in ARCHITECTURE
             if saved["config"].get(k) != getattr(cfg, k)}
    if clash:
        return WarmStart(None, f"cold start: {parent} has another architecture (previous, now): {clash}")
    if list(saved["feature_names"]) != list(feature_names):
        return WarmStart(None, f"cold start: {parent} was trained on other pin features "
                               f"({len(saved['feature_names'])} vs {len(feature_names)} columns or another order)")
    how = " (a rerun on the same inputs starts where that version started)" if rerun else ""
    return WarmStart(parent, f"warm start from {parent}{how}", saved["model"], saved["pin_ids"])


def previous_embeddings(catalog) -> tuple[Any, Any] | None:
    """(pin ids (N,) int64, vectors (N, D) float32) of the current ``pin_embeddings``, or None."""
    import numpy as np
    import pyarrow.compute as pc
    import torch

    if not catalog.exists("pin_embeddings"):
        return None
    table = catalog.read("pin_embeddings").select("pin_id", "embedding").toArrow()
    if not table.num_rows:
        return None
    flat = pc.list_flatten(table.column("embedding")).to_numpy().astype(np.float32)
    ids = table.column("pin_id").to_numpy().astype(np.int64)
    return torch.from_numpy(ids), torch.from_numpy(flat.reshape(table.num_rows, -1))


def stability(previous: tuple[Any, Any] | None, inputs, vectors) -> dict[str, float]:
    """The previous version's embeddings against the new ``vectors`` (N, D) over ``inputs``'s pins
    (:class:`~pinrec.jobs.pinsage.pinsage.GraphInputs`); {} without a previous version."""
    import torch

    from pinrec.models.embedding_stability import (
        align,
        heldout_recall,
        neighbour_overlap,
        procrustes_cosine,
    )

    if previous is None:
        return {}
    old_ids, old_vectors = previous
    old_rows, new_rows = align(old_ids, inputs.pin_ids)
    out = {"common_pins": float(len(new_rows))}
    if len(new_rows) > STABILITY_K:
        out["overlap_at_10"] = neighbour_overlap(old_vectors[old_rows], vectors[new_rows], STABILITY_K)
    if len(new_rows) and old_vectors.size(1) == vectors.size(1):
        out["procrustes_cosine"] = procrustes_cosine(old_vectors[old_rows], vectors[new_rows])
    if inputs.heldout_pins is not None and len(inputs.heldout_pins):
        both = torch.zeros(len(inputs.pin_ids), dtype=torch.bool)
        both[new_rows] = True
        keep = both[inputs.heldout_pins]  # saves of pins both versions embed: the same question to each
        pins, boards = inputs.heldout_pins[keep], inputs.heldout_boards[keep]
        old_space = torch.zeros(len(inputs.pin_ids), old_vectors.size(1))
        old_space[new_rows] = old_vectors[old_rows]
        graph = inputs.train_graph
        for name, space in (("heldout_recall_at_10", vectors), ("heldout_recall_at_10_previous", old_space)):
            out[name] = heldout_recall(space, pins, boards, graph.board_ptr, graph.board_pins, STABILITY_K)
    return out
