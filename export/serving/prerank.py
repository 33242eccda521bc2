"""The pre-ranker stage of :mod:`pinrec.export.serving.recommend`: cut the merged candidates to the best
``recommend.prerank_keep`` by a cheap model before the DCN ranker encodes and scores them.

The bundle's ``extra/prerank.onnx`` (:mod:`pinrec.jobs.ranking.ranker_prerank`: logistic regression on the
ranker's features minus the PinSage embeddings and hashed ids) has the ranker's interface
(``categorical`` (B, C'), ``dense`` (B, F') -> ``p_<task>``, ``score``) and carries its fitted encoder
in the model property ``pinrec.encoder``. Its inputs are encoded by a
:class:`~pinrec.export.serving.serving_encoding.ServingEncoder` of their own, so what depends on the bundle
only (pin features, user x category rows, user rows) is encoded once and gathered per request.
:meth:`Prerank.keep` scores every candidate and keeps the ``n`` best (ties: smaller pin id first),
in their candidate order. Base install only: numpy, pyarrow, onnxruntime.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from pinrec.export.encoding import FeatureEncoder

from .candidates import Candidates
from .serving_encoding import ServingEncoder, needed_columns

PRERANK_FILE = "prerank.onnx"


class Prerank:
    r"""The pre-ranker of one bundle.

    Args:
        path (str): the bundle's ``extra/prerank.onnx``.
        columns (list[str]): every input column the bundle's serving builds (the ranker's); the
            pre-ranker must read a subset of them.
        snapshot, categories, cat, pin_ids, frame, users: as :class:`~pinrec.export.serving.serving_encoding.ServingEncoder`
            takes them (the Recommender's).
        threads (int, optional): intra-op threads of its onnxruntime session (0: onnxruntime's
            default). (default: ``1``)

    Raises ValueError naming what is wrong when the file has no encoder, reads a column serving does
    not build, or its inputs/outputs do not match its encoder.
    """

    def __init__(self, path: str, columns: list[str], snapshot, categories: pa.Array, cat: np.ndarray,
                 pin_ids: np.ndarray, frame: Callable, users: Any = None, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if "pinrec.encoder" not in props:
            raise ValueError(f"{PRERANK_FILE} carries no encoder (model property 'pinrec.encoder'): re-export it "
                             "with `pinrec ranker` (ranker_job.prerank=logistic)")
        self.encoder = FeatureEncoder.from_json(props["pinrec.encoder"])
        extra = [c for c in needed_columns(self.encoder) if c not in columns]
        if extra:
            raise ValueError(f"{PRERANK_FILE} reads columns {extra} that the bundle's ranker does not, so serving "
                             f"does not build them; it may read only {columns}")
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]
        want = {"categorical": len(self.encoder.categorical_names), "dense": len(self.encoder.dense_names)}
        if set(inputs) != set(want) or "score" not in self._outputs or any(
                isinstance(inputs[n][1], int) and inputs[n][1] != w for n, w in want.items()):
            raise ValueError(f"{PRERANK_FILE} must take inputs {want} (columns of its encoder) and output 'score'; it "
                             f"takes {inputs} and outputs {self._outputs}")
        self.serving = ServingEncoder(self.encoder, snapshot, categories, cat, pin_ids, frame, users)

    def scores(self, req, rows: np.ndarray) -> np.ndarray:
        """(B,) float32 pre-ranker scores of (``req``'s user and context, pins ``rows``)."""
        categorical, dense = self.serving.encode(req, rows)
        return self.session.run(["score"], {"categorical": categorical, "dense": dense})[0]

    def keep(self, req, cand: Candidates, n: int) -> Candidates:
        """The ``n`` best of ``cand`` by :meth:`scores` (ties: smaller pin id first), in candidate
        order; ``cand`` itself when it holds at most ``n``."""
        if len(cand) <= n:
            return cand
        score = self.scores(req, cand.rows)
        best = np.sort(np.lexsort((cand.pin_ids, -score))[:n])
        return Candidates(cand.pin_ids[best], cand.rows[best], cand.channel[best], cand.mask[best])
