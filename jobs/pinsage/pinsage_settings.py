"""PinSage's data-dependent settings, chosen in the training DAG on the warehouse's own data (issue #23).

The ``retrieval_settings`` step of ``pinrec_training`` runs between the graph and PinSage:

1. reads ``graph_edges`` (``split = 'train'`` only: the training window's test days stay unseen) and
   ``graph_pin_nodes``' feature vectors through the catalog, at versions pinned for the step;
2. :func:`board_log` (pure): the log the search runs on, each board a "user" of its saved pins
   (``user_id`` = ``board_id``, ``pin_id``, ``ts`` = ``saved_at``): the graph PinSage trains on, in the
   item-item protocol's terms (:mod:`pinrec.jobs.pinsage.pinsage_eval`);
3. :func:`pinrec.jobs.retrieval.tuning.select_settings` with PinSage as the model (the same search as
   ``pinrec eval-retrieval --tune``: each board's latest pin removed, its second-latest the validation
   target; no baselines, whose settings the pipeline does not use), within ``retrieval_eval.tune_budget_s``;
4. writes the chosen PinSage settings (:data:`TUNED`) with the validation table to
   ``<artifacts>/retrieval_settings/graph_edges-v<version>.json`` and logs them to MLflow
   (:func:`~pinrec.jobs.retrieval.tuning.log_selection`, experiment ``pinrec-retrieval``).

The PinSage task trains with :func:`apply_settings` of that choice. ``retrieval_eval.tune_in_training``
off (the default: see ``docs/retrieval.md``) skips the search and PinSage keeps its configured settings.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.lake import Location, as_location

if TYPE_CHECKING:
    from pinrec.jobs.retrieval.config import RetrievalEvalConfig
    from pinrec.models.config import PinSageTrainConfig

#: The PinSage settings the search chooses (the rest of ``pinsage`` stays as configured).
TUNED = ("positives", "positive_window", "history_half_life", "id_embedding", "id_embedding_std")
INPUTS = ("graph_edges", "graph_pin_nodes")


@dataclass(frozen=True)
class SettingsChoice:
    """What the step chose: ``settings`` (:data:`TUNED` name -> value; {} when skipped), ``skipped``
    (why not, or None), the ``trials`` (validation rows: model, setting, value, hr, ndcg, seconds,
    chosen), ``notes``, the ``input_versions`` read, the ``artifact`` written, the MLflow ``run_id``
    and the wall ``seconds``."""

    settings: dict[str, Any]
    skipped: str | None = None
    trials: list[dict] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    input_versions: dict[str, int] = field(default_factory=dict)
    artifact: str | None = None
    run_id: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """JSON-able (the DAG task's XCom and the artifact's content)."""
        return dataclasses.asdict(self)

    def render(self) -> str:
        if self.skipped:
            return f"retrieval settings: skipped ({self.skipped})"
        chosen = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return (f"retrieval settings: {chosen}; {len(self.trials)} validation trial(s) in {self.seconds:.1f} s"
                f"{'; ' + self.notes['budget_cut'] if 'budget_cut' in self.notes else ''}; {self.artifact}")


def board_log(edges: pd.DataFrame) -> pd.DataFrame:
    """Pure: ``graph_edges`` rows (pin_id, board_id, saved_at, split) -> the training edges as an
    interaction log (user_id = board_id, pin_id, ts = saved_at UTC). Raises ``ValueError`` naming the
    missing columns, or when no training edge is left."""
    missing = sorted({"pin_id", "board_id", "saved_at", "split"} - set(edges.columns))
    if missing:
        raise ValueError(f"graph_edges lacks column(s) {missing}")
    train = edges[edges["split"] == "train"]
    if train.empty:
        raise ValueError("graph_edges holds no 'train' edge: nothing to choose settings on")
    return pd.DataFrame({"user_id": train["board_id"].astype("int64"), "pin_id": train["pin_id"].astype("int64"),
                         "ts": pd.to_datetime(train["saved_at"], utc=True)}).reset_index(drop=True)


def apply_settings(cfg: PinSageTrainConfig, settings: dict[str, Any] | None) -> PinSageTrainConfig:
    """``cfg`` with the chosen ``settings`` (None or {}: ``cfg`` itself). Raises ``ValueError`` for a
    setting outside :data:`TUNED` (the config validates the values)."""
    if not settings:
        return cfg
    unknown = sorted(set(settings) - set(TUNED))
    if unknown:
        raise ValueError(f"retrieval settings {unknown} are not PinSage settings the search chooses; allowed: {TUNED}")
    return dataclasses.replace(cfg, **settings)


def _json(value):
    return value.item() if isinstance(value, np.generic) else value


def settings_file(artifacts: str | Location, edges_version: int) -> Location:
    return as_location(artifacts) / "retrieval_settings" / f"graph_edges-v{edges_version}.json"


def choose_settings(spark, warehouse, retrieval: RetrievalEvalConfig, pinsage: PinSageTrainConfig, *,
                    enabled: bool = True, artifacts: str | Location | None = None,
                    tracking_uri: str | None = None, artifact_root=None,
                    stamp: dict[str, Any] | None = None) -> SettingsChoice:
    """Run the search on the warehouse's graph (module docstring); ``enabled`` False returns a skipped
    choice without reading anything. ``artifacts`` None writes no file; ``tracking_uri`` None logs
    nothing; ``stamp`` (the step cache's ``{"step", "fingerprint"}``) is kept in the file under
    ``"cache"`` (:func:`read_choice`). Raises ``ValueError`` when the graph tables are missing (run
    ``pinrec graph`` first)."""
    from pinrec.jobs.retrieval.baselines import ItemEmbeddings
    from pinrec.jobs.retrieval.tuning import log_selection, select_settings

    from .pinsage_eval import PinSageLogModel

    if not enabled:
        return SettingsChoice({}, skipped="retrieval_eval.tune_in_training is off")
    start = time.monotonic()
    catalog = Catalog.of(spark, warehouse)
    missing = [t for t in INPUTS if not catalog.exists(t)]
    if missing:
        raise ValueError(f"missing Delta table(s) {missing} under {catalog.warehouse}: run `pinrec graph` first")
    log = board_log(catalog.read("graph_edges").select("pin_id", "board_id", "saved_at", "split").toPandas())
    nodes = catalog.read("graph_pin_nodes").select("pin_id", "features").toPandas()
    versions = {t: catalog.reads[t] for t in INPUTS}
    ids = nodes["pin_id"].astype("int64").to_numpy()
    content = ItemEmbeddings(ids, np.stack(nodes["features"].map(np.asarray).to_list()).astype(np.float32))
    search = dataclasses.replace(retrieval, baselines=())
    selection = select_settings(log, search, ids, pinsage, lambda c: PinSageLogModel(c, content, ids),
                                recorded_timestamps="column")
    chosen = selection.pinsage or pinsage
    settings = {k: _json(getattr(chosen, k)) for k in TUNED}
    trials = [{k: _json(v) for k, v in row.items()} for row in selection.trials.to_dict("records")]
    notes = {k: _json(v) for k, v in selection.notes.items()}
    run_id = None if not tracking_uri else log_selection(selection, tracking_uri, artifact_root=artifact_root)
    choice = SettingsChoice(settings, None, trials, notes, versions, None, run_id, time.monotonic() - start)
    if artifacts is not None:
        target = settings_file(artifacts, versions["graph_edges"])
        choice = dataclasses.replace(choice, artifact=str(target))
        content = {**choice.as_dict(), **({"cache": dict(stamp)} if stamp else {})}
        target.write_bytes(json.dumps(content, indent=1, default=str).encode())
    return choice


def read_choice(path: str | Location) -> tuple[SettingsChoice, dict[str, Any]]:
    """(the choice, its ``"cache"`` stamp or {}) of a settings file :func:`choose_settings` wrote."""
    content = json.loads(as_location(path).read_text())
    stamp = content.pop("cache", None) or {}
    return SettingsChoice(**content), stamp


__all__ = ["TUNED", "SettingsChoice", "apply_settings", "board_log", "choose_settings", "read_choice",
           "settings_file"]
