"""A tiny published candidate (index, ranker, features) and the serving import blocker."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from onnx import TensorProto, helper, numpy_helper

from pinrec.export.build.ann_build import build_index
from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import BundleFiles
from pinrec.export.encoding import (
    Boolean,
    Categorical,
    FeatureEncoder,
    Numeric,
    training_set_spec,
)
from pinrec.export.index_choice import IndexConfig
from pinrec.export.serving.snapshot_meta import (
    SnapshotMeta,
    snapshot_file_name,
    with_meta,
)
from pinrec.schemas.features import FEATURE_VIEWS

BLOCKER = """
import importlib.abc, sys
BLOCKED = {"torch", "torch_geometric", "pyspark", "delta", "airflow", "mlflow", "onnx", "onnxscript", "boto3",
           "botocore", "s3fs", "pandas", "great_expectations", "duckdb", "yaml", "pinrec.jobs", "pinrec.models", "pinrec.export.build"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED or any(name.startswith(b + ".") or name == b for b in BLOCKED):
            raise ImportError(f"blocked in the serving environment: {name}")
sys.meta_path.insert(0, Block())
"""


CUTOFF = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)


TS = pa.timestamp("us", tz="UTC")


N, D = 60, 8


PIN_IDS = 100 + 3 * np.arange(N, dtype=np.int64)


CATS = [f"c{i % 4}" for i in range(N)]


NSFW = np.arange(N) % 9 == 4


BLOCKED = np.arange(N) % 13 == 7


# pin i created i hours before the cut-off, the last 3 after it (a bundle may hold them; "fresh" skips them)
CREATED = [CUTOFF - dt.timedelta(hours=int(h)) for h in np.random.default_rng(3).permutation(N) - 3]


SAVES_30D = np.random.default_rng(4).permutation(N) * 2  # distinct: a deterministic trending order


USER_SAVES = {1: [PIN_IDS[5]], 2: [PIN_IDS[10], PIN_IDS[20], PIN_IDS[30]], 3: []}


USER_CLOSEUPS = {1: [PIN_IDS[7], PIN_IDS[5]], 2: [PIN_IDS[40], PIN_IDS[10]], 3: [PIN_IDS[2]]}


TOP_CATEGORY = {1: "c1", 2: "c2", 3: "c3"}


GATE = BlessingConfig(min_recall=0.1, min_auc=0.55)


CONTEXT = {"surface": "home_feed", "device": "ios", "country": "US", "hour": 9, "day_of_week": 3}


VOCAB = {"surface": ["home_feed", "search"], "device": ["ios", "android"], "country": ["US", "FR"],
         "hour": list(range(24)), "day_of_week": list(range(1, 8)), "category": ["c0", "c1", "c2", "c3"],
         "user__top_category": ["c0", "c1", "c2", "c3"]}


def embeddings() -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fitted_encoder(ids: bool = False, embeddings: bool = False) -> FeatureEncoder:
    """The training set's encoder, fitted on 300 seeded rows of every column it reads."""
    rng = np.random.default_rng(1)
    spec = training_set_spec(id_buckets=1024, ids=ids,
                             embeddings={"pin_embedding": D, "user_embedding": D, "user_closeup_embedding": D}
                             if embeddings else None)
    cols: dict[str, object] = {}
    for f in spec.features:
        if isinstance(f, Categorical):
            cols[f.name] = pa.array([VOCAB[f.name][i] for i in rng.integers(0, len(VOCAB[f.name]), 300)])
        elif isinstance(f, Numeric):
            cols[f.name] = rng.lognormal(1.0, 1.0, 300)
        elif isinstance(f, Boolean):
            cols[f.name] = rng.uniform(size=300) < 0.2
    return FeatureEncoder(spec).fit(pa.table(cols))


def ranker_onnx(path: str, enc: FeatureEncoder) -> None:
    """A hand-built ranker with the exported graph's interface: p_t = sigmoid(dense @ W[:, t] +
    sum_c E[offset_c + categorical[:, c], t]), score = 1.0 * p_save + 0.3 * p_closeup."""
    rng = np.random.default_rng(2)
    card = np.array(enc.cardinalities)
    c, f = len(card), len(enc.dense_names)
    inits = [numpy_helper.from_array(rng.normal(0, 0.5, (f, 2)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.5, (int(card.sum()), 2)).astype(np.float32), "table"),
             numpy_helper.from_array(np.concatenate([[0], np.cumsum(card)[:-1]]).astype(np.int64), "offsets"),
             numpy_helper.from_array(np.array([1], np.int64), "one"),
             numpy_helper.from_array(np.array([0], np.int64), "i0"),
             numpy_helper.from_array(np.array([1.0, 0.3], np.float32), "weights")]
    nodes = [helper.make_node("Add", ["categorical", "offsets"], ["idx"]),
             helper.make_node("Gather", ["table", "idx"], ["emb"]),                      # (B, C, 2)
             helper.make_node("ReduceSum", ["emb", "one"], ["cat_logit"], keepdims=0),    # (B, 2)
             helper.make_node("MatMul", ["dense", "w"], ["dense_logit"]),
             helper.make_node("Add", ["dense_logit", "cat_logit"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["p"]),
             helper.make_node("Gather", ["p", "i0"], ["p_save2"], axis=1),
             helper.make_node("Gather", ["p", "one"], ["p_closeup2"], axis=1),
             helper.make_node("Squeeze", ["p_save2", "one"], ["p_save"]),
             helper.make_node("Squeeze", ["p_closeup2", "one"], ["p_closeup"]),
             helper.make_node("Mul", ["p", "weights"], ["pw"]),
             helper.make_node("ReduceSum", ["pw", "one"], ["score"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "ranker",
        [helper.make_tensor_value_info("categorical", TensorProto.INT64, ["B", c]),
         helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["B", f])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B"]) for n in ("p_save", "p_closeup", "score")],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, path)


def view_table(view, keys: dict[str, list], values: dict[str, list]) -> pa.Table:
    """A snapshot file of ``view``: ``keys`` columns, the given feature values, seeded others."""
    n = len(next(iter(keys.values())))
    rng = np.random.default_rng(len(view.name))
    cols = {k: pa.array(v) for k, v in keys.items()}
    for feat in view.features:
        name = view.column(feat.name)
        if feat.name in values:
            cols[name] = pa.array(values[feat.name], {"int64": pa.int64(), "float64": pa.float64(),
                                                       "string": pa.string(),
                                                       "array<int64>": pa.list_(pa.int64())}[feat.dtype])
        elif feat.dtype == "int64":
            cols[name] = pa.array(rng.integers(0, 50, n))
        elif feat.dtype == "float64":
            cols[name] = pa.array(rng.uniform(0, 1, n))
        else:
            raise AssertionError(f"no value for {name}")
    # 1, 11, 21, 31, 41 hours old at the cut-off: with the views' 2-day TTL, every fifth row expires 7 h later
    cols[f"{view.name}__feature_ts"] = pa.array([CUTOFF - dt.timedelta(hours=10 * (i % 5) + 1) for i in range(n)], TS)
    return with_meta(pa.table(cols), SnapshotMeta.from_view(view, CUTOFF))


def real_ranker_onnx(path: str, enc: FeatureEncoder):
    """The real DCN-v2 + MMoE ranker (random weights, Platt calibration) exported to ONNX; returns
    the torch scoring module it was exported from."""
    import torch

    from pinrec.export.build.onnx_ranker import export_ranker, scoring_module
    from pinrec.models.calibration import Calibration, Platt
    from pinrec.models.ranker import Ranker, RankerConfig

    torch.manual_seed(0)
    ranker = Ranker(enc.cardinalities, len(enc.dense_names), enc.num_positions, RankerConfig()).eval()
    calibration = Calibration(ranker.tasks, tuple(Platt(1.5, -0.5) for _ in ranker.tasks), (1.0, 0.3))
    export_ranker(ranker, calibration, path)
    return scoring_module(ranker, calibration)


def prerank_onnx(path: str, enc: FeatureEncoder):
    """A pre-ranker with the interface the ranker job exports (:mod:`pinrec.jobs.ranking.ranker_prerank`):
    :func:`ranker_onnx`'s logistic regression over the encoder's features minus embeddings and ids,
    its encoder in the model property ``pinrec.encoder``. Returns (the same model as a torch
    :class:`~pinrec.models.prerank.LogisticPrerank` scoring module: no bias, Platt(1, 0), score weights
    (1.0, 0.3); its encoder)."""
    import onnx
    import torch

    from pinrec.export.build.onnx_ranker import scoring_module
    from pinrec.jobs.ranking.ranker_prerank import sub_encoder
    from pinrec.models.calibration import Calibration, Platt
    from pinrec.models.prerank import LogisticPrerank

    sub, _, _ = sub_encoder(enc)
    ranker_onnx(path, sub)
    model = onnx.load(path)
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    onnx.helper.set_model_props(model, {"pinrec.encoder": sub.to_json()})
    onnx.save(model, path)
    torch_model = LogisticPrerank(sub.cardinalities, len(sub.dense_names), ("save", "closeup"))
    with torch.no_grad():
        torch_model.categorical_weight.weight.copy_(torch.from_numpy(weights["table"].copy()))
        torch_model.dense.weight.copy_(torch.from_numpy(weights["w"].T.copy()))
    calibration = Calibration(torch_model.tasks, (Platt(1.0, 0.0), Platt(1.0, 0.0)), (1.0, 0.3))
    return scoring_module(torch_model, calibration), sub


def write_candidate(folder, with_embeddings: bool = True, ids: bool = False, real_ranker: bool = False,
                    embedding_features: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    x = embeddings()
    report = build_index(x, PIN_IDS, np.random.default_rng(5).standard_normal((5, D)).astype(np.float32),
                         IndexConfig(metric="ip", k=5, shards=2, device="cpu"), folder / "index")
    enc = fitted_encoder(ids, embedding_features)
    (folder / "encoder.json").write_text(enc.to_json())
    module = real_ranker_onnx(str(folder / "ranker.onnx"), enc) if real_ranker else \
        ranker_onnx(str(folder / "ranker.onnx"), enc)
    pq.write_table(pa.table({"pin_id": PIN_IDS, "category": CATS, "created_at": pa.array(CREATED, TS),
                             "nsfw": NSFW, "blocked": BLOCKED}), folder / "pins.parquet")
    user, pin, uc = FEATURE_VIEWS
    users = sorted(USER_SAVES)
    tables = {
        "user": view_table(user, {"user_id": users},
                           {"top_category": [TOP_CATEGORY[u] for u in users],
                            "last_saved_pins": [[int(p) for p in USER_SAVES[u]] for u in users],
                            "last_closeup_pins": [[int(p) for p in USER_CLOSEUPS[u]] for u in users]}),
        "pin": view_table(pin, {"pin_id": PIN_IDS.tolist()},
                          {"category": CATS, "saves_30d": SAVES_30D.tolist()}),
        "user_category": view_table(uc, {"user_id": [1, 1, 2, 2, 2], "category": ["c0", "c1", "c1", "c2", "c3"]}, {}),
    }
    extras = []
    for name, table in tables.items():
        pq.write_table(table, folder / snapshot_file_name(name))
        extras.append(str(folder / snapshot_file_name(name)))
    if with_embeddings:
        np.save(folder / "pin_embeddings.npy", x, allow_pickle=False)
        extras.append(str(folder / "pin_embeddings.npy"))
    index = json.loads((folder / "index" / "index.json").read_text())
    assert index["factory"] == "IDMap,Flat" and report.recall_at_k == 1.0
    files = BundleFiles(index_meta=str(folder / "index" / "index.json"),
                        index_shards=tuple(str(folder / "index" / s["file"]) for s in index["shards"]),
                        ranker=str(folder / "ranker.onnx"), encoder=str(folder / "encoder.json"),
                        pins=str(folder / "pins.parquet"), extras=tuple(extras))
    return (files, module) if real_ranker else files
