"""Inputs of the two-tower job, pure: training-set rows and pin features in, tensors and fitted encoders out.

* pairs: the training set's engaged impressions (``save`` or ``closeup``), each with the features
  known at the impression, as the ranker gets them: the context (:data:`~pinrec.export.serving.serving_encoding.CONTEXT`),
  the user view's columns and its recent saves and closeups (the first ``list_length`` pin ids,
  newest first, as rows of the PinSage embedding table; -1 where padded or unknown), the pin view's
  columns; the pin must have a PinSage embedding;
* :func:`user_spec` / :func:`pin_spec`: the towers' encoders (:class:`~pinrec.export.encoding.FeatureEncoder`,
  fitted on the ``train`` pairs only); the user encoder ships with the ONNX user tower, so serving
  encodes a request with the same code;
* the pin table: every embedded pin's pin-view row as of the cut-off (its newest), what the pin
  tower embeds for the index.

What the training pairs never show is left out, so that serving cannot feed the towers inputs they
never learnt from (on the tiny 3-day world the first, training, day has no feature rows at all: with
the pin view's values in the index's pin table and never in training, test recall@50 fell from 0.23
to 0.06, measured once): :func:`observed` keeps a feature only when some training pair has a value
(a missing flag: only when it varies), and a list only when some training pair has a pin in it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pinrec.export.encoding import (
    Boolean,
    Categorical,
    EncodedBatch,
    EncoderSpec,
    FeatureEncoder,
    Numeric,
)
from pinrec.export.serving.embedding_features import LAST_CLOSEUPS, LAST_SAVED
from pinrec.export.serving.serving_encoding import CONTEXT
from pinrec.schemas.features import PIN_FEATURES, USER_FEATURES, FeatureView

LISTS = (LAST_SAVED, LAST_CLOSEUPS)
SPLITS = ("train", "validation", "test")
_LOGGED = ("impressions", "closeups", "saves", "age_days", "board_count", "days_since")


def _view_features(view: FeatureView) -> list:
    feats: list = [Numeric(view.column(f.name), log1p=any(k in f.name for k in _LOGGED),
                           missing_indicator=f.name == "days_since_last_save")
                   for f in view.features if f.dtype in ("int64", "float64")]
    return [*feats, Boolean(view.missing_column)]


def user_spec() -> EncoderSpec:
    """Context and user categoricals, the user view's numeric features and its missing flag."""
    return EncoderSpec((*(Categorical(c) for c in CONTEXT), Categorical(USER_FEATURES.column("top_category")),
                        *_view_features(USER_FEATURES)), position=None)


def pin_spec() -> EncoderSpec:
    """The pin's category, the pin view's numeric features (age, engagement, boards) and its missing flag."""
    return EncoderSpec((Categorical(PIN_FEATURES.column("category")), *_view_features(PIN_FEATURES)), position=None)


def columns() -> list[str]:
    """Every training-set column the job reads."""
    feats = [f.name for spec in (user_spec(), pin_spec()) for f in spec.features]
    return list(dict.fromkeys(["event_id", "split", "save", "closeup", "pin_id", *LISTS, *feats]))


def observed(spec: EncoderSpec, train) -> EncoderSpec | None:
    """``spec`` without the features the ``train`` pairs never show: a column null in every pair,
    a boolean (missing flag) that never varies; None when nothing is left."""
    keep = []
    for f in spec.features:
        values = train[f.name]
        if isinstance(f, Boolean):
            if values.fillna(True).astype(bool).nunique() > 1:
                keep.append(f)
        elif values.notna().any():
            keep.append(f)
    return EncoderSpec(tuple(keep), spec.position, spec.max_position) if keep else None


class _NoFeatures:
    """The encoder of a tower side without observed features: (B, 0) inputs."""

    cardinalities: tuple[int, ...] = ()
    dense_names: tuple[str, ...] = ()

    def transform(self, frame):
        n = len(frame)
        return EncodedBatch(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), np.zeros(n, np.int64))


def list_rows(lists, ids: np.ndarray, length: int) -> np.ndarray:
    """(P, ``length``) int64 rows into ``ids`` (sorted pin ids) of the first ``length`` pins of each
    of P lists (None: empty); -1 where padded or the pin has no row."""
    out = np.full((len(lists), length), -1, np.int64)
    for i, pins in enumerate(lists):
        if pins is None or not len(pins):
            continue
        head = np.asarray(pins, np.int64)[:length]
        pos = np.minimum(np.searchsorted(ids, head), len(ids) - 1)
        out[i, : len(head)] = np.where(ids[pos] == head, pos, -1)
    return out


@dataclass(frozen=True, eq=False)
class TwoTowerInputs:
    """``splits``: :class:`~pinrec.models.two_tower_trainer.TwoTowerData` of train, validation and test;
    ``pins``: the :class:`~pinrec.models.two_tower_trainer.PinTable` of every embedded pin (row i =
    ``pin_ids[i]``); the fitted encoders (of the :func:`observed` features); ``dropped``: engaged rows
    whose pin has no embedding; ``lists``: the user lists the training pairs fill (the others are read
    as empty)."""

    splits: dict
    pins: object
    pin_ids: np.ndarray
    user_encoder: FeatureEncoder
    pin_encoder: object
    dropped: int
    lists: tuple[str, ...] = LISTS


def two_tower_inputs(frame, pin_frame, ids: np.ndarray, vectors: np.ndarray, length: int, max_pairs: int = 0,
                     seed: int = 0) -> TwoTowerInputs:
    """``frame``: training-set rows (pandas, :func:`columns`); ``pin_frame``: one row per pin
    (``pin_id`` and the pin spec's columns, pins absent from it count as missing); ``ids`` (N,)
    sorted pin ids with PinSage ``vectors`` (N, E). ``max_pairs`` > 0 keeps a seeded sample of
    that many training pairs. Raises ValueError naming the split without pairs."""
    import pandas as pd
    import torch

    from pinrec.models.two_tower_trainer import PinTable, TwoTowerData

    engaged = frame[(frame["save"] > 0) | (frame["closeup"] > 0)]
    pos = np.minimum(np.searchsorted(ids, engaged["pin_id"].to_numpy(np.int64)), len(ids) - 1)
    known = ids[pos] == engaged["pin_id"].to_numpy(np.int64)
    engaged = engaged[known].assign(_row=pos[known]).reset_index(drop=True)
    parts = {s: engaged[engaged["split"] == s].reset_index(drop=True) for s in SPLITS}
    empty = [s for s in SPLITS if parts[s].empty]
    if empty:
        raise ValueError(f"the training set has no engaged impression of an embedded pin in split(s) {empty}")
    if 0 < max_pairs < len(parts["train"]):
        parts["train"] = parts["train"].sample(n=max_pairs, random_state=seed).reset_index(drop=True)
    user = observed(user_spec(), parts["train"])
    if user is None:
        raise ValueError("no context or user feature has a value in the training pairs")
    user_enc = FeatureEncoder(user).fit(parts["train"])
    pin = observed(pin_spec(), parts["train"])  # none: the pin tower reads the PinSage embedding alone
    pin_enc = FeatureEncoder(pin).fit(parts["train"]) if pin is not None else _NoFeatures()
    lists = tuple(c for c in LISTS if parts["train"][c].map(lambda v: v is not None and len(v) > 0).any())

    def rows_of(part, column: str):
        if column not in lists:  # never filled in training: the tower reads it as empty everywhere
            return torch.full((len(part), length), -1, dtype=torch.long)
        return torch.from_numpy(list_rows(part[column].tolist(), ids, length))

    def tensors(part) -> TwoTowerData:
        u, p = user_enc.transform(part), pin_enc.transform(part)
        return TwoTowerData(torch.from_numpy(u.categorical), torch.from_numpy(u.dense),
                            *(rows_of(part, c) for c in LISTS),
                            torch.from_numpy(part["_row"].to_numpy(np.int64)), torch.from_numpy(p.categorical),
                            torch.from_numpy(p.dense))

    lacking = [f.name for f in (pin.features if pin else ()) if f.name not in pin_frame
               and f.name != PIN_FEATURES.missing_column]
    if lacking:
        raise ValueError(f"the pin features lack columns {lacking}")
    table = pd.DataFrame({"pin_id": ids}).merge(pin_frame.drop_duplicates("pin_id"), on="pin_id", how="left")
    table[PIN_FEATURES.missing_column] = ~table["pin_id"].isin(pin_frame["pin_id"]).to_numpy()
    enc = pin_enc.transform(table)
    pins = PinTable(torch.from_numpy(enc.categorical), torch.from_numpy(enc.dense),
                    torch.from_numpy(np.ascontiguousarray(vectors, np.float32)))
    return TwoTowerInputs({s: tensors(parts[s]) for s in SPLITS}, pins, ids, user_enc, pin_enc,
                          int((~known).sum()), lists)
