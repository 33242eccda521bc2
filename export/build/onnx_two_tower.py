"""ONNX export of the two-tower model's user tower (:class:`pinrec.models.two_tower.UserTower`) for serving.

Export-time only (torch, onnx): the serving side runs the file with onnxruntime. The graph takes
:data:`INPUTS` — ``categorical`` (B, Cu) int64, ``dense`` (B, Fu) float32, ``saves`` /
``closeups`` (B, L, E) float32 PinSage embeddings of the user's recent lists (newest first, zeros
where padded) and ``saves_mask`` / ``closeups_mask`` (B, L) float32 (1: a real pin) — B dynamic,
and returns ``user_embedding`` (B, D), unit norm. Exported as the ranker is (dynamo exporter,
opset 18) and checked against torch on random batches before it is returned.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

OPSET = 18
INPUTS = ("categorical", "dense", "saves", "saves_mask", "closeups", "closeups_mask")
OUTPUT = "user_embedding"


def example_inputs(tower, batch: int, seed: int) -> tuple[np.ndarray, ...]:
    """Random inputs of the tower's shapes (B = ``batch``), masks with padded slots included."""
    rng = np.random.default_rng(seed)
    cards = tower.categorical.cardinalities
    cat = np.stack([rng.integers(0, c, batch) for c in cards], 1) if cards else np.zeros((batch, 0))
    length, e = tower.saves.length, tower.saves.in_channels
    out = [cat.astype(np.int64), rng.standard_normal((batch, tower.num_dense)).astype(np.float32)]
    for _ in range(2):
        mask = (rng.random((batch, length)) > 0.3).astype(np.float32)
        mask[0] = 0.0  # a user without any pin in the list
        out += [(rng.standard_normal((batch, length, e)) * mask[..., None]).astype(np.float32), mask]
    return tuple(out)


def run(sess, inputs: tuple[np.ndarray, ...]) -> np.ndarray:
    """(B, D) user embeddings of an exported user tower."""
    feed = {name: np.ascontiguousarray(x, np.int64 if name == "categorical" else np.float32)
            for name, x in zip(INPUTS, inputs)}
    return sess.run([OUTPUT], feed)[0]


def parity(path: str | os.PathLike, tower, inputs: tuple[np.ndarray, ...]) -> float:
    """Max |onnxruntime - torch| of the user embeddings on ``inputs``."""
    import torch

    from .onnx_ranker import session

    with torch.no_grad():
        want = tower(*(torch.from_numpy(x) for x in inputs)).numpy()
    return float(np.abs(run(session(path), inputs) - want).max())


def export_user_tower(tower, path: str | os.PathLike, atol: float = 1e-5) -> float:
    """Write the user tower to ``path`` (one self-contained .onnx file); returns the largest
    difference from torch over random batches of 1, 7 and 64 (moved to the CPU, eval mode).
    Raises RuntimeError when it exceeds ``atol``."""
    import torch

    path = os.fspath(path)
    tower = tower.cpu().eval()
    batch = torch.export.Dim("batch", min=1)
    dynamic = {name: {0: batch} for name in INPUTS}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shares the same shape constraints.*")
        program = torch.onnx.export(tower, tuple(torch.from_numpy(x) for x in example_inputs(tower, 7, 0)),
                                    dynamo=True, input_names=list(INPUTS), output_names=[OUTPUT],
                                    dynamic_shapes=dynamic, opset_version=OPSET, optimize=True, verify=False,
                                    verbose=False)
    program.save(path, external_data=False)
    diff = float(np.max([parity(path, tower, example_inputs(tower, b, seed=b)) for b in (1, 7, 64)]))
    if not diff <= atol:  # NaN fails too (np.max keeps it; Python's max would drop one that is not first)
        raise RuntimeError(f"ONNX user tower differs from torch by {diff:.3g} > {atol}")
    return diff
