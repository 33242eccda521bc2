"""The ranker job's pre-rank step: which features the pre-ranker reads, its training on the ranker's
encoded splits, its AUC in the report and its ONNX export."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from pinrec.export.encoding import FeatureEncoder, training_set_spec
from pinrec.jobs.ranking.ranker_encode import encode
from pinrec.jobs.ranking.ranker_prerank import (
    MODEL,
    export_prerank,
    prerank_spec,
    sub_encoder,
    train_prerank,
)
from pinrec.jobs.ranking.ranker_read import TrainingSet
from pinrec.models.metrics import auc
from tests.jobs.ranking.training_frames import TASKS, small_configs, training_frame

D = 4


@pytest.fixture(scope="module")
def data():
    import torch

    torch.set_num_threads(1)
    frame, _ = training_frame(rows_per_split=1000)
    cfg = small_configs(no_position_twin=False, int8=False)
    return cfg, encode(TrainingSet(frame), cfg)


def test_the_prerank_spec_drops_embeddings_dot_products_and_hashed_ids():
    spec = training_set_spec(ids=True, embeddings={"pin_embedding": D, "user_closeup_embedding": D})
    kept = [f.name for f in prerank_spec(spec).features]
    assert kept == [f.name for f in spec.features if f.kind not in ("embedding", "dot", "hashed")]
    assert {"category", "pin__saves_30d", "user_category__closeup_rate_30d", "eq(category,user__top_category)",
            "surface", "user__saves_7d"} <= set(kept)
    assert not {"user_id", "pin_id", "pin_embedding", "dot(pin_embedding,user_closeup_embedding)"} & set(kept)


def test_the_sub_encoder_encodes_as_the_selected_columns_of_the_full_one():
    frame, _ = training_frame(rows_per_split=20)
    rng = np.random.default_rng(0)
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    columns |= {"user_id": rng.integers(0, 50, len(frame)), "pin_id": rng.integers(0, 50, len(frame)),
                "pin_embedding": rng.normal(size=(len(frame), D)).astype(np.float32),
                "user_closeup_embedding": rng.normal(size=(len(frame), D)).astype(np.float32)}
    full = FeatureEncoder(training_set_spec(ids=True, embeddings={"pin_embedding": D, "user_closeup_embedding": D}))
    full.fit(columns)
    sub, cat_cols, dense_cols = sub_encoder(full)
    a, b = full.transform(columns), sub.transform(columns)
    np.testing.assert_array_equal(b.categorical, a.categorical[:, cat_cols])
    np.testing.assert_array_equal(b.dense, a.dense[:, dense_cols])
    assert len(cat_cols) == len(full.categorical_names) - 2 and len(dense_cols) == len(full.dense_names) - 2 * D - 1


def test_none_trains_no_prerank(data):
    _, encoded = data
    assert train_prerank(encoded, small_configs(prerank="none")) is None


def test_the_prerank_learns_the_planted_feature_and_is_calibrated_on_validation(data):
    cfg, encoded = data
    prerank = train_prerank(encoded, cfg)
    assert prerank.model.tasks == TASKS and prerank.test.shape == (len(encoded.labels["test"]), 2)
    # closeups rise with pin__closeup_rate_30d (training_frames): the largest weight of a z-scored feature
    w = prerank.model.dense.weight.detach().numpy()[TASKS.index("closeup")]
    scored = [(w[i], n) for i, n in enumerate(prerank.encoder.dense_names) if "missing" not in n and "eq(" not in n]
    assert max(scored)[1] == "pin__closeup_rate_30d"
    y, weights = encoded.labels["test"][:, 1], encoded.weights["test"]
    assert auc(y, prerank.test[:, 1], weights) > 0.58  # measured 0.607
    assert prerank.losses[-1] < prerank.losses[0] and prerank.summary()["evaluations"] == len(prerank.losses)
    # the calibration is the validation split's: mean predicted equals the observed rate there
    val = prerank.probabilities(encoded.batches["validation"])
    np.testing.assert_allclose(val.mean(0), encoded.labels["validation"].mean(0), atol=0.02)
    again = train_prerank(encoded, cfg)  # deterministic
    np.testing.assert_array_equal(again.test, prerank.test)


def test_the_onnx_export_matches_torch_on_the_test_rows_and_carries_its_encoder(data, tmp_path):
    import torch

    from pinrec.export.build.onnx_ranker import run, scoring_module, session

    cfg, encoded = data
    prerank = train_prerank(encoded, cfg)
    path, diff = export_prerank(prerank, str(tmp_path), encoded.batches["test"], "ranker-0123")
    assert diff <= 1e-5 and path == str(tmp_path / "prerank.onnx")
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert FeatureEncoder.from_json(props["pinrec.encoder"]) == prerank.encoder
    assert props["pinrec.model_version"] == "ranker-0123" and props["pinrec.tasks"] == "save,closeup"
    cat, dense = prerank.inputs(encoded.batches["test"])
    out = run(session(path), cat, dense)
    with torch.no_grad():
        want = scoring_module(prerank.model, prerank.calibration)(torch.from_numpy(cat), torch.from_numpy(dense))
    for name, w in zip(("p_save", "p_closeup", "score"), want):
        np.testing.assert_allclose(out[name], w.numpy(), atol=1e-6)


def test_export_step_publishes_prerank_onnx_and_the_report_holds_its_auc(data, tmp_path):
    from pinrec.jobs.ranking.ranker_evaluate import evaluate
    from pinrec.jobs.ranking.ranker_export import export
    from pinrec.jobs.ranking.ranker_train import calibrate, train

    cfg, encoded = data
    prerank = train_prerank(encoded, cfg)
    ranker = calibrate(train(encoded, cfg.model, cfg.train), encoded, cfg.calibration)
    evaluation = evaluate(encoded, ranker, cfg, extra={MODEL: prerank.test})
    report = export(encoded, ranker, evaluation, cfg, meta={}, artifacts_dir=str(tmp_path), prerank=prerank)
    folder = tmp_path / "ranker" / report.model_version
    assert (folder / "prerank.onnx").is_file() and report.prerank["onnx_max_abs_diff"] <= 1e-5
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = {r["task"]: r for r in metrics["metrics"] if r["model"] == MODEL}
    y, w = encoded.labels["test"], encoded.weights["test"]
    for t, task in enumerate(TASKS):
        assert rows[task]["auc"] == pytest.approx(auc(y[:, t], prerank.test[:, t], w))
        assert rows[task]["auc_low"] <= rows[task]["auc"] <= rows[task]["auc_high"]
    assert metrics["prerank"]["dense"] == list(prerank.encoder.dense_names)
    assert "pre-ranker: logistic regression on 7 categorical and 28 dense inputs" in report.render()
