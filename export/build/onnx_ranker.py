"""ONNX export of the ranker for serving: position-free logits -> calibration -> final score.

Export-time only (torch, onnx): the serving loader never imports this module; it needs
onnxruntime and :mod:`pinrec.export.encoding` alone. The exported graph takes ``categorical`` (B, C)
int64 and ``dense`` (B, F) float32 (an :class:`~pinrec.export.encoding.EncodedBatch`), B dynamic, and
returns ``p_<task>`` (B,) for every task and ``score`` (B,) = sum_t w_t p_t. It is exported with
the dynamo exporter of ``torch.onnx.export`` (the default of torch >= 2.9; needs onnxscript)
at opset 18, and ``export_ranker`` checks it against torch before returning.

Int8: :func:`quantize_int8` applies onnxruntime's dynamic quantisation (int8 weights of the
2-D MatMuls and the embedding Gather, activations quantised on the fly); :func:`auc_drop`
measures what it costs in ranking quality on a labelled batch.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

OPSET = 18
INPUTS = ("categorical", "dense")


def scoring_module(ranker, calibration, logit_offset: Sequence[float] | None = None):
    """The torch module that is exported: ``Ranker(position=None)`` + offset + calibration + score.
    (categorical (B, C), dense (B, F)) -> (p_task_1 (B,), ..., p_task_T (B,), score (B,))."""
    import torch
    from torch import nn

    if tuple(calibration.tasks) != tuple(ranker.tasks):
        raise ValueError(f"calibration tasks {calibration.tasks} differ from ranker tasks {ranker.tasks}")
    offset = torch.tensor(list(logit_offset) if logit_offset is not None else [0.0] * len(ranker.tasks),
                          dtype=torch.float32)
    if offset.shape != (len(ranker.tasks),):
        raise ValueError(f"logit_offset needs one value per task {ranker.tasks}, got {list(offset.shape)}")

    class RankerScorer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ranker, self.calibrate = ranker, calibration.module()
            self.register_buffer("offset", offset)
            self.register_buffer("score_weights", torch.tensor(calibration.score_weights, dtype=torch.float32))

        def forward(self, categorical, dense):
            probs = self.calibrate(self.ranker(categorical, dense) + self.offset)  # (B, T), position-free
            score = (probs * self.score_weights).sum(-1)
            return (*probs.unbind(-1), score)

    return RankerScorer().eval()


def output_names(tasks: Sequence[str]) -> tuple[str, ...]:
    return (*(f"p_{t}" for t in tasks), "score")


def export_ranker(ranker, calibration, path: str | os.PathLike, logit_offset: Sequence[float] | None = None,
                  metadata: Mapping[str, str] | None = None, atol: float = 1e-5) -> str:
    """Write the scoring graph to ``path`` (one self-contained .onnx file) and return the path.
    The ranker is moved to the CPU and left in eval mode.

    ``metadata``: string properties stored in the model (e.g. the encoder and calibration JSON,
    so the bundle can check they belong together). Raises when onnxruntime's output on a random
    batch of 7 differs from torch's by more than ``atol``.
    """
    import onnx
    import torch

    path = os.fspath(path)
    module = scoring_module(ranker, calibration, logit_offset).cpu()
    example = _example(ranker, 7, seed=0)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad(), warnings.catch_warnings():
        # both inputs share the one "batch" Dim on purpose; the exporter warns that it merges them
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints.*")
        program = torch.onnx.export(module, tuple(torch.from_numpy(a) for a in example), dynamo=True,
                                    input_names=list(INPUTS), output_names=list(output_names(ranker.tasks)),
                                    dynamic_shapes={"categorical": {0: batch}, "dense": {0: batch}},
                                    opset_version=OPSET, optimize=True, verify=False, verbose=False)
    program.save(path, external_data=False)
    model = onnx.load(path)
    props = {"pinrec.tasks": ",".join(ranker.tasks), "pinrec.calibration": calibration.to_json(),
             **dict(metadata or {})}
    onnx.helper.set_model_props(model, props)
    onnx.save(model, path)
    diff = parity(path, module, *_example(ranker, 7, seed=1))
    if not diff <= atol:  # NaN fails too
        raise RuntimeError(f"ONNX export differs from torch by {diff:.3g} > {atol}")
    return path


def _example(ranker, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cat = np.stack([rng.integers(0, c, batch) for c in ranker.cardinalities], 1) if ranker.cardinalities \
        else np.zeros((batch, 0), np.int64)
    return cat.astype(np.int64), rng.standard_normal((batch, ranker.dense_channels)).astype(np.float32)


def session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads (1 = the serving budget)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])


def run(sess, categorical: np.ndarray, dense: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of an exported ranker by name."""
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, {"categorical": np.ascontiguousarray(categorical, np.int64),
                            "dense": np.ascontiguousarray(dense, np.float32)})
    return dict(zip(names, outs))


def parity(path: str | os.PathLike, module, categorical: np.ndarray, dense: np.ndarray) -> float:
    """Max |onnxruntime - torch| over every output of ``module`` (a :func:`scoring_module`)."""
    import torch

    got = run(session(path), categorical, dense)
    with torch.no_grad():
        want = module(torch.from_numpy(np.asarray(categorical, np.int64)), torch.from_numpy(np.asarray(dense, np.float32)))
    names = output_names(module.ranker.tasks)
    # np.max, not max(): Python's max drops a NaN that is not first, and a NaN output must fail the check
    return float(np.max([np.abs(got[n] - w.numpy()).max() for n, w in zip(names, want)]))


def _gemm_as_matmul(model) -> list[str]:
    """Rewrite every plain ``Gemm`` (alpha = beta = 1, no transA, constant B) as ``MatMul`` + ``Add``
    in place — onnxruntime's dynamic quantiser handles MatMul but not Gemm — and return the names
    of MatMul nodes it must skip (batched weights, rank != 2, which MatMulInteger cannot take)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, skip = [], []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("transA", 0) == 0 and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        if node.op_type == "Gemm" and plain and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            w_name = f"{node.input[1]}__kn"
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T if attrs.get("transB", 0) else w),
                                                             w_name))
            has_bias = len(node.input) > 2 and node.input[2] != ""
            product = f"{node.output[0]}__matmul" if has_bias else node.output[0]
            nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [product], name=f"{node.name}__matmul"))
            if has_bias:
                nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}__bias"))
        else:
            if node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) != 2:
                skip.append(node.name)
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return skip


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike,
                  sample: tuple[np.ndarray, np.ndarray] | None = None, tol: float = 0.01) -> str:
    """Dynamic int8 quantisation (``onnxruntime.quantization.quantize_dynamic``): int8 weights of
    the 2-D MatMuls (the Gemms are rewritten as MatMul + Add first) and of the embedding Gather,
    activations quantised per batch at run time, per tensor; batched (3-D) MatMuls stay fp32.

    Per-tensor activation scales fail where one column dwarfs the others (the DCN output feeding
    the deep tower is such a place: one layer alone moved probabilities by up to 0.16 in our
    tests). With ``sample`` = (categorical, dense), every candidate node is first quantised alone
    and kept in fp32 when that moves any output on the sample by more than ``tol``. The names
    of the nodes left in fp32 are stored in the model's ``pinrec.int8_fp32_nodes`` property.
    Returns ``dst``.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(os.fspath(src))
    skip = _gemm_as_matmul(model)
    candidates = [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gather") and n.name not in skip]
    with tempfile.TemporaryDirectory() as tmp:
        staged, probe = os.path.join(tmp, "staged.onnx"), os.path.join(tmp, "probe.onnx")
        onnx.save(model, staged)
        if sample is not None:
            ref = run(session(staged), *sample)
            for name in candidates:
                quantize_dynamic(staged, probe, weight_type=QuantType.QInt8,
                                 nodes_to_exclude=skip + [c for c in candidates if c != name])
                got = run(session(probe), *sample)
                if max(float(np.abs(got[k] - ref[k]).max()) for k in ref) > tol:
                    skip.append(name)
        quantize_dynamic(staged, os.fspath(dst), weight_type=QuantType.QInt8, nodes_to_exclude=skip)
    quantized = onnx.load(os.fspath(dst))
    onnx.helper.set_model_props(quantized, {**{p.key: p.value for p in quantized.metadata_props},
                                            "pinrec.int8_fp32_nodes": ",".join(skip)})
    onnx.save(quantized, os.fspath(dst))
    return os.fspath(dst)


@dataclass(frozen=True)
class QuantisationReport:
    task: str
    auc_fp32: float
    auc_int8: float
    max_abs_diff: float

    @property
    def auc_drop(self) -> float:
        return self.auc_fp32 - self.auc_int8


def auc_drop(fp32: str | os.PathLike, int8: str | os.PathLike, categorical: np.ndarray, dense: np.ndarray,
             labels: np.ndarray, task: str, sample_weight: np.ndarray | None = None) -> QuantisationReport:
    """AUC of ``p_<task>`` from the fp32 and the int8 model on a labelled batch, and their
    largest probability difference."""
    from pinrec.models.metrics import auc

    a, b = run(session(fp32), categorical, dense), run(session(int8), categorical, dense)
    key = f"p_{task}"
    if key not in a:
        raise ValueError(f"the model has no output {key!r}; outputs: {sorted(a)}")
    return QuantisationReport(task, auc(labels, a[key], sample_weight), auc(labels, b[key], sample_weight),
                              float(np.abs(a[key] - b[key]).max()))
