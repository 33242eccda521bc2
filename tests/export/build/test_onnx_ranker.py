"""ONNX export of the ranker: parity with torch at batch 1 and 1000, named I/O, metadata, int8, and an
end-to-end run (frame -> encoder -> training -> calibration -> ONNX) on a planted signal."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from pinrec.export.build.onnx_ranker import (
    OPSET,
    auc_drop,
    export_ranker,
    output_names,
    parity,
    quantize_int8,
    run,
    scoring_module,
    session,
)
from pinrec.export.encoding import (
    Boolean,
    Categorical,
    EncoderSpec,
    Equal,
    FeatureEncoder,
    Hashed,
    Numeric,
)
from pinrec.models.calibration import CalibrationConfig, fit_calibration
from pinrec.models.metrics import auc
from pinrec.models.ranker import Ranker, RankerConfig
from pinrec.models.ranker_trainer import RankerData, RankerTrainConfig, RankerTrainer

onnx = pytest.importorskip("onnx")
torch.set_num_threads(1)

SPEC = EncoderSpec((
    Hashed("user_id", 512), Hashed("pin_id", 512), Categorical("surface"), Categorical("category"),
    Categorical("user__top_category"), Numeric("user__save_rate_30d"), Numeric("pin__impressions_30d", log1p=True),
    Boolean("pin__missing"), Equal("category", "user__top_category"),
), position="position", max_position=20)


def sig(x):
    return 1 / (1 + np.exp(-x))


def planted_frame(n: int = 6000, seed: int = 0) -> pa.Table:
    """Impressions whose labels follow a known logit: category match, save rate, popularity, position."""
    rng = np.random.default_rng(seed)
    cat, top = rng.integers(0, 6, n), rng.integers(0, 6, n)
    rate = rng.beta(2, 20, n)
    imps = rng.lognormal(3, 1.5, n)
    pos = rng.integers(1, 21, n)
    logit = 2.0 * (cat == top) + 15 * (rate - 0.09) + 0.3 * np.log1p(imps) - 0.1 * pos - 1.0
    return pa.table({
        "user_id": rng.integers(0, 200, n), "pin_id": rng.integers(0, 1000, n),
        "surface": rng.choice(["home_feed", "search", "related_pins", "board"], n),
        "category": [f"c{c}" for c in cat],
        "user__top_category": pa.array([f"c{t}" for t in top], mask=rng.uniform(size=n) < 0.1),
        "user__save_rate_30d": pa.array(rate, mask=rng.uniform(size=n) < 0.1),
        "pin__impressions_30d": imps.round(), "pin__missing": rng.uniform(size=n) < 0.05, "position": pos,
        "save": (rng.uniform(size=n) < sig(logit - 1.0)).astype(np.int64),
        "closeup": (rng.uniform(size=n) < sig(logit + 0.5)).astype(np.int64),
        "sample_weight": np.ones(n),
        "split": np.repeat(["train", "validation", "test"], [n * 4 // 6, n // 6, n - n * 5 // 6]),
    })


def random_ranker(seed: int = 0) -> Ranker:
    torch.manual_seed(seed)
    return Ranker((11, 7, 5), 6, num_positions=21, config=RankerConfig(cross_experts=2, cross_rank=4)).eval()


def random_inputs(b: int, seed: int):
    rng = np.random.default_rng(seed)
    cat = np.stack([rng.integers(0, c, b) for c in (11, 7, 5)], 1).astype(np.int64)
    return cat, rng.normal(size=(b, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random ranker exported with Platt and with isotonic calibration."""
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    ranker = random_ranker()
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(400, 2)), (rng.uniform(size=(400, 2)) < 0.3).astype(float)
    for method in ("platt", "isotonic"):
        cal = fit_calibration(z * 2, y, ranker.tasks, CalibrationConfig(method))
        path = export_ranker(ranker, cal, root / f"{method}.onnx", logit_offset=(-0.5, 0.0),
                             metadata={"pinrec.encoder": "{}"})
        out[method] = (path, scoring_module(ranker, cal, (-0.5, 0.0)), cal)
    return out


@pytest.mark.parametrize("method", ["platt", "isotonic"])
@pytest.mark.parametrize("batch", [1, 1000])
def test_parity_with_torch(exported, method, batch):
    path, module, _ = exported[method]
    assert parity(path, module, *random_inputs(batch, seed=batch)) <= 1e-5


def test_graph_interface(exported):
    path, module, cal = exported["platt"]
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["categorical", "dense"]
    assert [o.name for o in model.graph.output] == ["p_save", "p_closeup", "score"] == list(output_names(cal.tasks))
    assert next(o.version for o in model.opset_import if o.domain == "") == OPSET >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    props = {p.key: p.value for p in model.metadata_props}
    assert props["pinrec.tasks"] == "save,closeup" and json.loads(props["pinrec.calibration"])["method"] == "platt"
    # the graph is position-free, calibrated and blended: check against the parts
    cat, dense = random_inputs(5, seed=7)
    out = run(session(path), cat, dense)
    with torch.no_grad():
        logits = module.ranker(torch.from_numpy(cat), torch.from_numpy(dense)).numpy() + np.array([-0.5, 0.0])
    probs = cal.apply(logits)
    np.testing.assert_allclose(out["p_save"], probs[:, 0], atol=1e-6)
    np.testing.assert_allclose(out["score"], cal.score(probs), atol=1e-6)


def test_export_refuses_mismatched_tasks(exported, tmp_path):
    cal = exported["platt"][2]
    other = Ranker((3,), 2, 5, RankerConfig(tasks=("click", "save")))
    with pytest.raises(ValueError, match="tasks"):
        export_ranker(other, cal, tmp_path / "x.onnx")


def test_end_to_end_train_calibrate_export(tmp_path):
    frame = planted_frame()
    split = {s: frame.filter(pc.equal(frame["split"], s)) for s in ("train", "validation", "test")}
    encoder = FeatureEncoder(SPEC).fit(split["train"])
    encoder = FeatureEncoder.from_json(encoder.to_json())  # as shipped in the bundle

    def data(t: pa.Table) -> RankerData:
        labels = np.stack([t["save"].to_numpy(), t["closeup"].to_numpy()], 1)
        return RankerData.from_batch(encoder.transform(t), labels, t["sample_weight"].to_numpy())

    torch.manual_seed(0)
    ranker = Ranker(encoder.cardinalities, len(encoder.dense_names), encoder.num_positions,
                    RankerConfig(embedding_dim=4, deep_channels=(32, 16), expert_channels=(16,), tower_channels=(8,)))
    trainer = RankerTrainer(ranker, RankerTrainConfig(epochs=4, batch_size=128, lr=3e-3, progress=False))
    result = trainer.fit(data(split["train"]), data(split["validation"]))
    assert result.best_metrics["val_auc_save"] > 0.7 and result.best_metrics["val_auc_closeup"] > 0.7

    val = data(split["validation"])
    cal = fit_calibration(trainer.predict_logits(val), val.labels.numpy(), ranker.tasks, CalibrationConfig("platt"),
                          val.weights.numpy())
    ranker.cpu().eval()
    path = export_ranker(ranker, cal, tmp_path / "ranker.onnx", result.logit_offset,
                         metadata={"pinrec.encoder": encoder.to_json()})
    test = encoder.transform(split["test"])
    module = scoring_module(ranker, cal, result.logit_offset)
    assert parity(path, module, test.categorical[:1], test.dense[:1]) <= 1e-5
    assert parity(path, module, test.categorical, test.dense) <= 1e-5 and len(test) == 1000
    scores = run(session(path), test.categorical, test.dense)
    assert auc(split["test"]["save"].to_numpy(), scores["p_save"]) > 0.7

    int8 = quantize_int8(path, tmp_path / "ranker.int8.onnx", sample=(test.categorical[:500], test.dense[:500]))
    report = auc_drop(path, int8, test.categorical, test.dense, split["test"]["closeup"].to_numpy(), "closeup")
    assert report.auc_fp32 > 0.7 and abs(report.auc_drop) < 0.01 and report.max_abs_diff < 0.05
    fp32_nodes = set({p.key: p.value for p in onnx.load(int8).metadata_props}["pinrec.int8_fp32_nodes"].split(","))
    graph = onnx.load(path).graph
    weights3d = {i.name for i in graph.initializer if len(i.dims) == 3}
    towers = {n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights3d}
    assert towers and towers <= fp32_nodes  # batched tower MatMuls stay fp32


def test_a_nan_output_fails_the_parity_check(exported):
    """NaN in any task's output is a parity failure: Python's max() kept the finite difference of the first task."""
    path, module, _ = exported["platt"]

    class SecondTaskNaN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.ranker = module, module.ranker

        def forward(self, categorical, dense):
            out = self.inner(categorical, dense)
            return (out[0], out[1] * float("nan"), *out[2:])

    assert np.isnan(parity(path, SecondTaskNaN(), *random_inputs(4, seed=4)))
