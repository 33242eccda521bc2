"""The pre-ranker stage of :mod:`pinrec.export.serving.recommend`: cut the merged candidates to the best
``recommend.prerank_keep`` by a cheap model before the DCN ranker encodes and scores them.

The bundle's ``extra/prerank.onnx`` (:mod:`pinrec.jobs.ranking.ranker_prerank`: logistic regression on the
ranker's features minus the PinSage embeddings and hashed ids) has the ranker's interface
(``categorical`` (B, C'), ``dense`` (B, F') -> ``p_<task>``, ``score``) and carries its fitted encoder
in the model property ``pinrec.encoder``: a subset of the ranker's features, fitted alike, so its
columns are columns of the ranker's encoding. The ranker's
:class:`~pinrec.export.serving.serving_encoding.ServingEncoder` encodes only the parts holding them (what
depends on the bundle only — pin features, user x category rows, user rows — was encoded once, and
is gathered; the embeddings are skipped) and the pre-ranker's columns are selected: nothing is
precomputed twice.
:meth:`Prerank.keep` scores every candidate and keeps the ``n`` best (ties: smaller pin id first),
in their candidate order. Base install only: numpy, pyarrow, onnxruntime.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from pinrec.export.encoding import FeatureEncoder

from .candidates import Candidates
from .serving_encoding import ServingEncoder

PRERANK_FILE = "prerank.onnx"


class Prerank:
    r"""The pre-ranker of one bundle.

    Args:
        path (str): the bundle's ``extra/prerank.onnx``.
        serving (ServingEncoder): the bundle's ranker encoder as serving runs it; the pre-ranker's
            features must be features of it, fitted alike (the same ``pinrec ranker`` run).
        threads (int, optional): intra-op threads of its onnxruntime session (0: onnxruntime's
            default). (default: ``1``)

    Raises ValueError naming what is wrong when the file has no encoder, reads a feature the ranker
    does not (or fitted differently), or its inputs/outputs do not match its encoder.
    """

    def __init__(self, path: str, serving: ServingEncoder, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        props = self.session.get_modelmeta().custom_metadata_map
        if "pinrec.encoder" not in props:
            raise ValueError(f"{PRERANK_FILE} carries no encoder (model property 'pinrec.encoder'): re-export it "
                             "with `pinrec ranker` (ranker_job.prerank=logistic)")
        self.encoder, self.serving, full = FeatureEncoder.from_json(props["pinrec.encoder"]), serving, serving.encoder
        features = {f.name: f for f in full.spec.features}
        bad = [f.name for f in self.encoder.spec.features if features.get(f.name) != f
               or self.encoder.state.get(f.name) != full.state.get(f.name)]
        if bad:
            raise ValueError(f"{PRERANK_FILE} reads features {bad} that the bundle's ranker does not read or fitted "
                             "differently: publish the ranker and the pre-ranker of one `pinrec ranker` run")
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        self._outputs = [o.name for o in self.session.get_outputs()]
        want = {"categorical": len(self.encoder.categorical_names), "dense": len(self.encoder.dense_names)}
        if set(inputs) != set(want) or "score" not in self._outputs or any(
                isinstance(inputs[n][1], int) and inputs[n][1] != w for n, w in want.items()):
            raise ValueError(f"{PRERANK_FILE} must take inputs {want} (columns of its encoder) and output 'score'; it "
                             f"takes {inputs} and outputs {self._outputs}")
        # its columns are columns of the ranker's encoding: encode only the parts holding them, then select
        names = set(features) & {f.name for f in self.encoder.spec.features}
        self.parts = tuple(n for n, part in serving.parts.items() if any(f.name in names for f in part.features))
        cat_at = {n: i for i, n in enumerate(full.categorical_names)}
        dense_at = {n: i for i, n in enumerate(full.dense_names)}
        self._cat = np.array([cat_at[n] for n in self.encoder.categorical_names], np.int64)
        self._dense = np.array([dense_at[n] for n in self.encoder.dense_names], np.int64)

    def inputs(self, req, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(categorical (B, C') int64, dense (B, F') float32) of (``req``'s user and context, pins ``rows``)."""
        categorical, dense = self.serving.encode(req, rows, self.parts)
        return categorical[:, self._cat], dense[:, self._dense]

    def scores(self, req, rows: np.ndarray) -> np.ndarray:
        """(B,) float32 pre-ranker scores of (``req``'s user and context, pins ``rows``)."""
        categorical, dense = self.inputs(req, rows)
        return self.session.run(["score"], {"categorical": categorical, "dense": dense})[0]

    def keep(self, req, cand: Candidates, n: int) -> Candidates:
        """The ``n`` best of ``cand`` by :meth:`scores` (ties: smaller pin id first), in candidate
        order; ``cand`` itself when it holds at most ``n``."""
        if len(cand) <= n:
            return cand
        score = self.scores(req, cand.rows)
        best = np.sort(np.lexsort((cand.pin_ids, -score))[:n])
        return Candidates(cand.pin_ids[best], cand.rows[best], cand.channel[best], cand.mask[best])
