"""The user tower's ONNX export: onnxruntime equals torch within 1e-5, batch size dynamic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pinrec.export.build.onnx_ranker import session
from pinrec.export.build.onnx_two_tower import example_inputs, export_user_tower, run
from pinrec.models.two_tower import UserTower

torch.set_num_threads(1)


@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_user_tower_exports_with_parity(tmp_path, pooling):
    torch.manual_seed(0)
    tower = UserTower([5, 3], 4, 6, 3, out_channels=4, hidden_channels=8, pooling=pooling)
    diff = export_user_tower(tower, tmp_path / "user.onnx")
    assert diff <= 1e-5
    inputs = example_inputs(tower, 33, seed=5)
    got = run(session(tmp_path / "user.onnx"), inputs)
    with torch.no_grad():
        want = tower(*(torch.from_numpy(x) for x in inputs)).numpy()
    assert got.shape == (33, 4)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_a_nan_difference_at_any_batch_size_fails_the_export(tmp_path, monkeypatch):
    from pinrec.export.build import onnx_two_tower

    torch.manual_seed(0)
    tower = UserTower((5, 4), 3, 8, 4, out_channels=8, hidden_channels=8)
    monkeypatch.setattr(onnx_two_tower, "parity", lambda path, t, inputs: float("nan") if len(inputs[0]) == 7 else 0.0)
    with pytest.raises(RuntimeError, match="ONNX user tower differs from torch by nan"):
        export_user_tower(tower, tmp_path / "user.onnx")
