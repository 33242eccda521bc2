"""The two-tower channel at serving: the user tower (ONNX) on the request, its index of pin-tower outputs.

A bundle carries the two-tower model as ``extra`` files, all from one embedding version (the
bundle's): :data:`USER_TOWER_FILE` (the ONNX user tower of :mod:`pinrec.export.build.onnx_two_tower`),
:data:`SPEC_FILE` (:class:`TwoTowerSpec`: how to build the tower's inputs) and the FAISS index over
every pin's pin-tower output, :data:`INDEX_FILE` (its ``index.json``) and its shards, each file
name prefixed with :data:`PREFIX`.

Per request (:meth:`UserTowerQuery.embed`) the user's inputs are built exactly as the job built
them from the training set: the context and the user view's row through the spec's fitted
:class:`~pinrec.export.encoding.FeatureEncoder`, and the first L pins of the recent saves (the
Request's list, which fresh session actions extend) and closeups, newest first, as their PinSage
embeddings with a mask (a slot whose pin is unknown or has no embedding is masked). A user embedding
that is not finite (an extreme feature value the encoder passed on) would make faiss return arbitrary
pins: that request gets no two-tower candidates (the other channels still serve), counted in
``TwoTowerChannel.nonfinite`` and logged. Base install only: numpy, pyarrow, faiss, onnxruntime.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from pinrec.export.encoding import FeatureEncoder

from .embedding_features import LAST_CLOSEUPS, LAST_SAVED

log = logging.getLogger(__name__)

PREFIX = "two_tower_"
USER_TOWER_FILE = PREFIX + "user.onnx"
SPEC_FILE = PREFIX + "spec.json"
INDEX_FILE = PREFIX + "index.json"
#: every file the channel needs besides the shards :data:`INDEX_FILE` names
FILES = (USER_TOWER_FILE, SPEC_FILE, INDEX_FILE)
FORMAT = "pinrec.two_tower/1"


@dataclass(frozen=True)
class TwoTowerSpec:
    """What the user tower reads: ``encoder`` (the fitted encoder of the context and user-view
    columns, as a dict), ``lists`` (which of the saves and closeups lists it reads; one not named is
    fed empty, as in training),
    ``list_length`` (L), ``embedding_dim`` (E), ``dim`` (D, the output), ``embedding_version``
    (the PinSage embeddings both towers read), ``model_version``, ``temperature``."""

    encoder: dict
    list_length: int
    embedding_dim: int
    dim: int
    embedding_version: str
    model_version: str
    temperature: float
    lists: tuple[str, ...] = (LAST_SAVED, LAST_CLOSEUPS)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **{k: getattr(self, k) for k in self.__dataclass_fields__}},
                          sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = SPEC_FILE) -> TwoTowerSpec:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise ValueError(f"{where}: not a two-tower spec (format {d.get('format') if isinstance(d, Mapping) else d!r}, "
                             f"expected {FORMAT!r})")
        missing = [k for k in cls.__dataclass_fields__ if k not in d]
        if missing:
            raise ValueError(f"{where}: lacks {missing}")
        unknown = sorted(set(d["lists"]) - {LAST_SAVED, LAST_CLOSEUPS})
        if unknown:
            raise ValueError(f"{where}: lists {unknown} are not user lists ({LAST_SAVED}, {LAST_CLOSEUPS})")
        return cls(**{k: (tuple(d[k]) if k == "lists" else d[k]) for k in cls.__dataclass_fields__})


def list_inputs(pins: np.ndarray, length: int, rows: Callable, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first ``length`` of ``pins`` (newest first) as ((L, E) float32 embeddings, (L,) float32 mask):
    ``rows(pin_ids) -> (rows, found)`` into ``embeddings`` (N, E); padding, unknown pins and pins
    with all-zero embeddings are masked (and zero)."""
    out = np.zeros((length, embeddings.shape[1]), np.float32)
    mask = np.zeros(length, np.float32)
    ids = np.asarray(pins, np.int64)[:length]
    if len(ids):
        r, found = rows(ids)
        vectors = np.asarray(embeddings[r], np.float32)
        ok = found & (np.abs(vectors).sum(1) > 0)
        out[: len(ids)][ok], mask[: len(ids)] = vectors[ok], ok
    return out, mask


class UserTowerQuery:
    """The user tower of one bundle: ``embed(frame, saves, closeups)`` -> (D,) user embedding.

    Args:
        spec (TwoTowerSpec): the spec shipped beside the tower. session: its onnxruntime session.
        rows (callable): pin ids (n,) -> (rows (n,), found (n,)) into ``embeddings``.
        embeddings (np.ndarray): (N, E) PinSage embeddings of the bundle's pins.
    """

    def __init__(self, spec: TwoTowerSpec, session: ort.InferenceSession, rows: Callable,
                 embeddings: np.ndarray) -> None:
        self.spec, self.session, self._rows, self._embeddings = spec, session, rows, embeddings
        self.encoder = FeatureEncoder.from_dict(spec.encoder)
        if embeddings.shape[1] != spec.embedding_dim:
            raise ValueError(f"the two-tower model reads {spec.embedding_dim}-dim PinSage embeddings, the bundle's "
                             f"are {embeddings.shape[1]}-dim")
        inputs = {i.name for i in session.get_inputs()}
        want = {"categorical", "dense", "saves", "saves_mask", "closeups", "closeups_mask"}
        if inputs != want or [o.name for o in session.get_outputs()] != ["user_embedding"]:
            raise ValueError(f"{USER_TOWER_FILE} must take {sorted(want)} and output 'user_embedding'; it takes "
                             f"{sorted(inputs)}")

    @classmethod
    def open(cls, folder_files: Mapping[str, str], rows: Callable, embeddings: np.ndarray,
             threads: int = 1) -> UserTowerQuery:
        """From the paths of :data:`USER_TOWER_FILE` and :data:`SPEC_FILE` (``{name: path}``)."""
        with open(folder_files[SPEC_FILE], "rb") as f:
            spec = TwoTowerSpec.from_dict(json.load(f))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(os.fspath(folder_files[USER_TOWER_FILE]), opts, providers=["CPUExecutionProvider"])
        return cls(spec, sess, rows, embeddings)

    @property
    def columns(self) -> list[str]:
        """The frame columns the encoder reads (context and ``user__`` columns)."""
        return [f.name for f in self.encoder.spec.features]

    def embed(self, frame: Mapping[str, Any], saves: np.ndarray, closeups: np.ndarray) -> np.ndarray:
        """(1, D) float32 user embedding of a one-row ``frame`` of :attr:`columns` and the user's lists."""
        batch = self.encoder.transform(frame)
        none = np.zeros(0, np.int64)
        saves = saves if LAST_SAVED in self.spec.lists else none
        closeups = closeups if LAST_CLOSEUPS in self.spec.lists else none
        s, sm = list_inputs(saves, self.spec.list_length, self._rows, self._embeddings)
        c, cm = list_inputs(closeups, self.spec.list_length, self._rows, self._embeddings)
        feed = {"categorical": batch.categorical, "dense": batch.dense, "saves": s[None], "saves_mask": sm[None],
                "closeups": c[None], "closeups_mask": cm[None]}
        return self.session.run(["user_embedding"], feed)[0]


class TwoTowerChannel:
    r"""The ``two_tower`` candidate channel of one bundle: the user tower on the request, its index searched.

    Args:
        extras (dict): bundle ``extra`` file name -> local path; must hold :data:`FILES` and the
            shards :data:`INDEX_FILE` names (each as :data:`PREFIX` + its file name).
        pins: the bundle's :class:`~pinrec.export.serving.candidates.PinCatalog`.
        embeddings (np.ndarray): (N, E) PinSage embeddings, row i = pin row i.
        read_index (callable): path -> faiss index (the loader's memory-mapped read).
        shards_index (type): :class:`~pinrec.export.serving.shards.ShardedIndex`.
        threads (int, optional): intra-op threads of the user tower's session. (default: :obj:`1`)

    ``search(frame, saves, closeups, n)`` -> (n',) pin rows, best first (hits without pin metadata dropped).
    """

    def __init__(self, extras: Mapping[str, str], pins, embeddings: np.ndarray, read_index: Callable,
                 shards_index: type, threads: int = 1) -> None:
        with open(extras[INDEX_FILE], "rb") as f:
            meta = json.load(f)
        names = [PREFIX + s["file"] for s in meta.get("shards", ())]
        absent = [n for n in names if n not in extras]
        if absent or not names:
            raise ValueError(f"{INDEX_FILE} names shards {names}; the bundle lacks {absent}")
        self.index = shards_index([read_index(extras[n]) for n in names], meta["metric"],
                                  meta.get("search_params") or None)
        self.user = UserTowerQuery.open(extras, pins.rows, embeddings, threads)
        if self.index.d != self.user.spec.dim:
            raise ValueError(f"the two-tower index is {self.index.d}-dim, its user tower {self.user.spec.dim}-dim")
        self.pins = pins
        self.nonfinite = 0  # requests whose user embedding was not finite (served without this channel)

    def search(self, frame: Mapping[str, Any], saves: np.ndarray, closeups: np.ndarray, n: int) -> np.ndarray:
        k = min(n, self.index.ntotal)
        if k < 1:
            return np.zeros(0, np.int64)
        query = self.user.embed(frame, saves, closeups)
        if not np.isfinite(query).all():
            self.nonfinite += 1
            if self.nonfinite & (self.nonfinite - 1) == 0:  # the 1st, 2nd, 4th, ...: visible, not a flood
                log.warning("two-tower channel: the user tower gave a non-finite embedding (%d requests so far); "
                            "serving this request without two-tower candidates", self.nonfinite)
            return np.zeros(0, np.int64)
        _, ids = self.index.search(query, k)
        ids = ids[0][ids[0] >= 0]
        rows, found = self.pins.rows(ids)
        return rows[found]
