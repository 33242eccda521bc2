"""Benchmark: serving a published bundle — cold ``load`` and ``recommend`` latency at one thread.

One run of this script:

1. builds a bundle of ``--pins`` pins (default 1M) in ``--workdir`` (a temporary folder unless
   given; with ``--reuse`` an existing one is served again):
   * seeded clustered, L2-normalised embeddings (D = ``--dim``; the cluster is the pin's category)
     and the sharded IVF index over them via :func:`pinrec.export.build.ann_build.build_index` (inner product,
     ``--budget-mb`` memory budget, tuned on held-out queries);
   * the real ranker architecture (:class:`pinrec.models.ranker.Ranker`, default
     :class:`~pinrec.models.ranker.RankerConfig`, random weights: speed does not depend on them) with
     Platt calibration, exported to ONNX (:func:`pinrec.export.build.onnx_ranker.export_ranker`), and the
     training set's encoder (:func:`pinrec.export.encoding.training_set_spec`, with the PinSage pin
     embedding, the user embeddings of ``--user-embeddings`` (default ``closeups``, as
     ``ranker_job.user_embeddings``) and their dot products unless ``--no-embedding-features``)
     fitted on a synthetic frame;
   * a synthetic feature snapshot (``features_{user,pin,user_category}.parquet``) for ``--users``
     users (up to 20 recent saves and 10 recent closeups each, 10 % without one or the other),
     every pin, and 3 categories per user;
   * ``pins.parquet`` (1 % nsfw, 0.5 % blocked) and ``pin_embeddings.npy``;
   * unless ``--no-two-tower``, the two-tower channel's files (:func:`two_tower_files`: a random-weight
     user tower exported by the real ONNX exporter, its spec, and the index the builder makes over a
     random pin tower's outputs for every pin); with ``--cf-share`` > 0 (default 0.1), the cf channel's
     files (:func:`cf_files`: random factors for that share of the pins and every user, written by
     the cf job's writer), so the bundle serves all six channels;
   and publishes it to a local store (:func:`pinrec.export.build.publish.publish`);
2. measures the first ``load`` + :class:`pinrec.export.serving.recommend.Recommender` construction in a fresh
   subprocess (the files were just written, so the page cache is warm: dropping it needs root);
3. serves ``--requests`` requests (after ``--warmup``) for random users (5 % unknown: cold
   start) with ``faiss.omp_set_num_threads(1)`` and a one-thread onnxruntime session, k =
   ``--k``, ``--ann-candidates`` ANN, ``--two-tower-candidates`` and ``--cf-candidates`` candidates, every
   channel the bundle serves (column ``snapshot``) and, when the bundle serves more than them, the
   channels of ``--baseline`` only (column ``baseline``; default the four channels served before the
   two-tower and cf channels: ann, category, trending, fresh), and prints p50 / p99 of the whole request and of
   each stage (feature lookups, ANN, other channels + merge + filter, encode, ONNX, re-rank), wall
   clock and CPU time of the calling thread (which excludes waiting for a core on a shared machine);
4. serves the same requests again with ``--recent`` fresh session actions each (``recommend(recent=...)``:
   random pins saved or closed up in the last minute, merged into the recent lists before the ANN
   queries) and, with ``--quotas`` (default ``ann=300,category=25,trending=25,fresh=25``; ``off``: not
   measured), with ``recommend.quotas`` set: the columns ``recent`` and ``quotas``; with ``--prerank-keep N``
   (> 0) the bundle also carries a pre-ranker (``prerank.onnx``: the ranker job's logistic regression,
   :mod:`pinrec.jobs.ranking.ranker_prerank`, random weights, on the encoder's features minus the
   embeddings) and the same requests are served with ``recommend.prerank_keep = N`` (column
   ``prerank N``: the DCN ranker then encodes and scores N candidates instead of all;
   ``--ann-candidates 900`` gives about 1000). Each request is served by every variant in turn
   (interleaved, so that the load of a shared machine hits them alike); with ``--channel-costs``,
   ``candidates()`` of each channel alone on the same requests (CPU time of the thread);
5. with ``--redis auto`` (default; when ``redis-server`` and redis-py are installed) or ``on``:
   starts ``redis-server`` on 127.0.0.1 (stopped by PID), exports the bundle's snapshot to it
   (:func:`pinrec.jobs.features.redis_export.export_snapshot`) and serves the same requests with features from
   Redis (:class:`pinrec.export.serving.redis_store.RedisFeatureStore`), side by side with the snapshot: the
   ``features`` stage is the per-request lookup cost of each.

Usage (from the repository root)::

    python benchmarks/serve.py --pins 50000 --users 10000          # about a minute
    python benchmarks/serve.py                                      # 1M pins, 100k users
    python benchmarks/serve.py --ann-candidates 900 --prerank-keep 200   # ~1000 candidates, with/without the pre-ranker
    python benchmarks/serve.py --ann-candidates 400 --two-tower-candidates 400 --prerank-keep 200 \
        --recent 0 --quotas off --redis off    # six channels, ~1000 candidates; the four-channel baseline beside
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20260105
CUTOFF = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
NAME = "homefeed"
SURFACES, DEVICES, COUNTRIES = ("home_feed", "search", "related_pins", "board"), ("ios", "android", "web"), \
    ("US", "FR", "DE", "BR", "JP")


def pin_data(n: int, d: int, categories: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids (n,) sorted int64, category index (n,), unit embeddings (n, d) float32): the mixture of
    ``benchmarks/ann.py`` (max(32, n / 1000) Dirichlet-weighted clusters around random unit centres,
    noise 0.6 / sqrt(d)); a cluster's pins share a category (cluster mod ``categories``)."""
    clusters = max(32, n // 1000)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.choice(clusters, n, p=rng.dirichlet(np.full(clusters, 0.5)))
    x = np.empty((n, d), np.float32)
    for start in range(0, n, 200_000):
        stop = min(n, start + 200_000)
        v = centres[cluster[start:stop]] + rng.standard_normal((stop - start, d)).astype(np.float32) * (0.6 / np.sqrt(d))
        x[start:stop] = v / np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.sort(rng.choice(20 * n, n, replace=False)).astype(np.int64)
    return ids, cluster % categories, x


def snapshot_tables(ids: np.ndarray, cat_names: list[str], cat: np.ndarray, users: int, rng) -> dict[str, pa.Table]:
    """The three feature views' snapshot tables (:mod:`pinrec.export.serving.snapshot_meta` format)."""
    from pinrec.export.serving.snapshot_meta import SnapshotMeta, with_meta
    from pinrec.schemas.features import FEATURE_VIEWS

    ts = pa.timestamp("us", tz="UTC")

    def fill(view, keys: dict[str, pa.Array], given: dict[str, pa.Array]) -> pa.Table:
        n = len(next(iter(keys.values())))
        cols = dict(keys)
        for feat in view.features:
            if feat.name in given:
                cols[view.column(feat.name)] = given[feat.name]
            elif feat.dtype == "int64":
                cols[view.column(feat.name)] = pa.array(np.floor(rng.lognormal(2, 1.5, n)).astype(np.int64))
            elif feat.dtype == "float64":
                cols[view.column(feat.name)] = pa.array(rng.uniform(0, 1, n), mask=rng.uniform(size=n) < 0.05)
            else:
                raise ValueError(f"no generator for {view.column(feat.name)} ({feat.dtype})")
        age = rng.uniform(0, 36, n) * 3600e6
        cols[f"{view.name}__feature_ts"] = pa.array((np.int64(CUTOFF.timestamp() * 1e6) - age.astype(np.int64)),
                                                    pa.int64()).cast(ts)
        return with_meta(pa.table(cols), SnapshotMeta.from_view(view, CUTOFF))

    user, pin, uc = FEATURE_VIEWS
    uid = np.arange(users, dtype=np.int64)

    def recent_pins(most: int) -> pa.ListArray:
        """Up to ``most`` random pins per user, none for 10 % of them."""
        n_pins = np.where(rng.uniform(size=users) < 0.1, 0, rng.integers(1, most + 1, users))
        offsets = np.concatenate([[0], np.cumsum(n_pins)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids[rng.integers(0, len(ids), offsets[-1])]))

    names = pa.array(cat_names)
    top = rng.integers(0, len(cat_names), users)
    tables = {"user": fill(user, {"user_id": pa.array(uid)},
                           {"top_category": names.take(pa.array(top)), "last_saved_pins": recent_pins(20),
                            "last_closeup_pins": recent_pins(10)})}
    tables["pin"] = fill(pin, {"pin_id": pa.array(ids)}, {"category": names.take(pa.array(cat))})
    per_user = 3
    uc_user = np.repeat(uid, per_user)
    uc_cat = (np.repeat(top, per_user) + np.tile(np.arange(per_user), users)) % len(cat_names)
    tables["user_category"] = fill(uc, {"user_id": pa.array(uc_user), "category": names.take(pa.array(uc_cat))}, {})
    return tables


def fitted_encoder(spec, cat_names: list[str], rng, n: int = 5000):
    """A :class:`~pinrec.export.encoding.FeatureEncoder` of ``spec`` fitted on ``n`` synthetic rows
    (context and categories from their vocabularies, lognormal counts with 5 % nulls, 10 % true flags)."""
    from pinrec.export.encoding import Boolean, Categorical, FeatureEncoder, Numeric

    vocab = {"surface": SURFACES, "device": DEVICES, "country": COUNTRIES, "hour": list(range(24)),
             "day_of_week": list(range(1, 8)), "category": cat_names, "user__top_category": cat_names}
    cols: dict[str, object] = {}
    for f in spec.features:
        if isinstance(f, Categorical):
            cols[f.name] = pa.array([vocab[f.name][i] for i in rng.integers(0, len(vocab[f.name]), n)])
        elif isinstance(f, Numeric):
            cols[f.name] = pa.array(np.floor(rng.lognormal(2, 1.5, n)), mask=rng.uniform(size=n) < 0.05)
        elif isinstance(f, Boolean):
            cols[f.name] = rng.uniform(size=n) < 0.1
    return FeatureEncoder(spec).fit(pa.table(cols))


def ranker_files(folder: Path, cat_names: list[str], rng, dim: int | None,
                 user_embeddings: tuple[str, ...] = ("closeups",)) -> tuple[str, str]:
    """(ranker.onnx, encoder.json): the real architecture with random weights, Platt-calibrated;
    with ``dim``, reading the PinSage pin embedding, the user embeddings named by
    ``user_embeddings`` (``ranker_job.user_embeddings`` values) and their dot products too (as
    ``pinrec ranker`` does by default)."""
    import torch

    from pinrec.export.build.onnx_ranker import export_ranker
    from pinrec.export.encoding import training_set_spec
    from pinrec.models.calibration import Calibration, Platt
    from pinrec.models.ranker import Ranker, RankerConfig

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    from pinrec.jobs.ranking.config import USER_EMBEDDING_KINDS

    embeddings = {"pin_embedding": dim, **{USER_EMBEDDING_KINDS[u]: dim for u in user_embeddings}}
    encoder = fitted_encoder(training_set_spec(embeddings=embeddings if dim else None), cat_names, rng)
    ranker = Ranker(encoder.cardinalities, len(encoder.dense_names), encoder.num_positions, RankerConfig()).eval()
    calibration = Calibration(ranker.tasks, tuple(Platt(1.0, 0.0) for _ in ranker.tasks), (1.0, 0.3))
    onnx_path = export_ranker(ranker, calibration, folder / "ranker.onnx")
    (folder / "encoder.json").write_text(encoder.to_json())
    return onnx_path, str(folder / "encoder.json")


def prerank_file(folder: Path, encoder_path: str) -> str:
    """``prerank.onnx`` as the ranker job exports it (random weights: speed does not depend on them)."""
    import torch

    from pinrec.export.build.onnx_ranker import export_ranker
    from pinrec.export.encoding import FeatureEncoder
    from pinrec.jobs.ranking.ranker_prerank import sub_encoder
    from pinrec.models.calibration import Calibration, Platt
    from pinrec.models.prerank import LogisticPrerank

    sub, _, _ = sub_encoder(FeatureEncoder.from_json(Path(encoder_path).read_text()))
    torch.manual_seed(SEED)
    model = LogisticPrerank(sub.cardinalities, len(sub.dense_names), ("save", "closeup"))
    for param in model.parameters():
        torch.nn.init.normal_(param, std=0.1)
    calibration = Calibration(model.tasks, tuple(Platt(1.0, 0.0) for _ in model.tasks), (1.0, 0.3))
    return export_ranker(model, calibration, folder / "prerank.onnx", metadata={"pinrec.encoder": sub.to_json()})


def two_tower_files(folder: Path, x: np.ndarray, ids: np.ndarray, cat: np.ndarray, cat_names: list[str],
                    args) -> tuple[list[str], str]:
    """The two-tower channel's bundle files in ``folder`` as the two-tower job writes them
    (:func:`pinrec.jobs.two_tower.two_tower.write_artifacts`), from random weights (speed does not
    depend on them): the user tower (:class:`pinrec.models.two_tower.UserTower`, default
    :class:`~pinrec.models.config.TwoTowerConfig` sizes, its encoder = the job's
    :func:`~pinrec.jobs.two_tower.two_tower_inputs.user_spec` fitted on a synthetic frame) exported by
    :func:`pinrec.export.build.onnx_two_tower.export_user_tower` (parity-checked), its spec, and the index
    :func:`~pinrec.export.build.ann_build.build_index` builds over a random pin tower's (category +
    PinSage embedding) outputs for every pin, tuned on user-tower outputs of 500 random users.
    Returns (paths, a one-line summary)."""
    import torch

    from pinrec.export.build.ann_build import build_index
    from pinrec.export.build.onnx_two_tower import export_user_tower
    from pinrec.export.index_choice import IndexConfig
    from pinrec.export.serving.embedding_features import LAST_CLOSEUPS, LAST_SAVED
    from pinrec.export.serving.two_tower import (
        FILES,
        INDEX_FILE,
        PREFIX,
        SPEC_FILE,
        USER_TOWER_FILE,
        TwoTowerSpec,
    )
    from pinrec.jobs.two_tower.two_tower_inputs import user_spec
    from pinrec.models.config import TwoTowerConfig
    from pinrec.models.two_tower import PinTower, UserTower

    rng = np.random.default_rng(SEED + 10)  # its own stream: the rest of the bundle is as without it
    torch.manual_seed(SEED + 10)
    tt = TwoTowerConfig()
    encoder = fitted_encoder(user_spec(), cat_names, rng)
    user = UserTower(encoder.cardinalities, len(encoder.dense_names), x.shape[1], tt.list_length, tt.out_channels,
                     tt.hidden_channels, tt.category_dim, tt.pooling, tt.half_life).eval()
    pin = PinTower((len(cat_names),), 0, x.shape[1], tt.out_channels, tt.hidden_channels, tt.category_dim).eval()
    folder.mkdir(parents=True, exist_ok=True)
    diff = export_user_tower(user, folder / USER_TOWER_FILE)
    spec = TwoTowerSpec(encoder.to_dict(), tt.list_length, x.shape[1], tt.out_channels, "bench", "bench", 0.1,
                        (LAST_SAVED, LAST_CLOSEUPS))
    (folder / SPEC_FILE).write_text(spec.to_json())
    with torch.no_grad():
        pin_out = np.concatenate([pin(torch.from_numpy(cat[i:i + 100_000, None].astype(np.int64)),
                                      torch.zeros((len(cat[i:i + 100_000]), 0)),
                                      torch.from_numpy(x[i:i + 100_000])).numpy()
                                  for i in range(0, len(x), 100_000)])
        b, length = 500, tt.list_length
        lists = []
        for _ in range(2):  # recent saves / closeups: random pins' embeddings, 1..L of them
            mask = (np.arange(length)[None, :] < rng.integers(1, length + 1, b)[:, None]).astype(np.float32)
            lists += [torch.from_numpy(x[rng.integers(0, len(x), (b, length))] * mask[..., None]), torch.from_numpy(mask)]
        cats = np.stack([rng.integers(0, c, b) for c in encoder.cardinalities], 1).astype(np.int64)
        queries = user(torch.from_numpy(cats), torch.from_numpy(rng.standard_normal((b, len(encoder.dense_names)),
                                                                                    ).astype(np.float32)),
                       *lists).numpy()
    t = time.perf_counter()
    report = build_index(pin_out, ids, queries, IndexConfig(metric="ip", k=10, memory_budget_mb=args.budget_mb,
                                                            shards=args.shards, candidates=1, device="cpu"),
                         folder / "index")
    for f in (folder / "index").iterdir():  # the names the bundle ships them under
        f.rename(folder / (INDEX_FILE if f.name == "index.json" else PREFIX + f.name))
    shards = [PREFIX + s["file"] for s in json.loads((folder / INDEX_FILE).read_text())["shards"]]
    return [str(folder / n) for n in (*FILES, *shards)], (
        f"two-tower: user tower ONNX parity {diff:.1e}, D={tt.out_channels}, L={length}; index {report.factory} "
        f"{report.search_params} recall@10={report.recall_at_k} ({time.perf_counter() - t:.0f} s)")


def cf_files(folder: Path, ids: np.ndarray, users: int, args) -> tuple[list[str], str]:
    """The cf channel's bundle files in ``folder``, written by the cf job's own writer
    (:func:`pinrec.jobs.cf.cf.write_files`: exact ``IDMap,Flat`` inner-product index and the factor
    tables) from random factors (``cf.factors`` wide, scaled like ALS's small ones) of a random
    ``--cf-share`` of the pins (the engaged catalogue) and of every user. Returns (paths, a summary)."""
    from types import SimpleNamespace

    from pinrec.export.serving.cf_channel import FILES
    from pinrec.jobs.cf.cf import write_files
    from pinrec.jobs.cf.cf_model import CfFactors
    from pinrec.jobs.cf.config import CfConfig

    rng = np.random.default_rng(SEED + 20)
    f = CfConfig().factors
    engaged = np.sort(rng.choice(ids, max(1, round(len(ids) * args.cf_share)), replace=False))
    factors = CfFactors(np.arange(users, dtype=np.int64), (rng.standard_normal((users, f)) * 0.3).astype(np.float32),
                        engaged, (rng.standard_normal((len(engaged), f)) * 0.3).astype(np.float32))
    folder.mkdir(parents=True, exist_ok=True)
    write_files(SimpleNamespace(factors=factors), folder)
    return [str(folder / n) for n in FILES], f"cf: {len(engaged)} pins x {f} factors (exact IDMap,Flat), {users} users"


def build(work: Path, args) -> dict:
    """Write and publish the bundle; returns build timings (s)."""
    from pinrec.export.build.ann_build import build_index
    from pinrec.export.build.publish import BundleFiles, publish
    from pinrec.export.index_choice import IndexConfig
    from pinrec.export.serving.store import Store
    from pinrec.schemas.manifest import Lineage, Metrics

    rng = np.random.default_rng(SEED)
    out: dict[str, float] = {}
    cand = work / "candidate"
    cand.mkdir(parents=True, exist_ok=True)
    cat_names = [f"cat{i:02d}" for i in range(args.categories)]
    t = time.perf_counter()
    ids, cat, x = pin_data(args.pins, args.dim, args.categories, rng)
    queries = x[rng.integers(0, args.pins, args.queries)]  # serving queries are pins' embeddings (the saves)
    out["data_s"] = time.perf_counter() - t
    t = time.perf_counter()
    report = build_index(x, ids, queries, IndexConfig(metric="ip", k=10, memory_budget_mb=args.budget_mb,
                                                      shards=args.shards, candidates=1, device="cpu"),
                         cand / "index")
    out["index_s"] = time.perf_counter() - t
    print(f"index: {report.factory} {report.search_params} recall@10={report.recall_at_k} "
          f"({out['index_s']:.0f} s)", flush=True)
    t = time.perf_counter()
    onnx_path, encoder_path = ranker_files(cand, cat_names, rng, None if args.no_embedding_features else args.dim,
                                           args.user_embeddings)
    out["ranker_s"] = time.perf_counter() - t
    prerank = [prerank_file(cand, encoder_path)] if args.prerank_keep else []
    t = time.perf_counter()
    created = np.int64(CUTOFF.timestamp() * 1e6) - rng.integers(0, 365 * 86400 * 10**6, args.pins)
    pq.write_table(pa.table({"pin_id": ids, "category": pa.array(cat_names).take(pa.array(cat)),
                             "created_at": pa.array(created, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                             "nsfw": rng.uniform(size=args.pins) < 0.01, "blocked": rng.uniform(size=args.pins) < 0.005}),
                   cand / "pins.parquet", row_group_size=args.pins)
    np.save(cand / "pin_embeddings.npy", x, allow_pickle=False)
    extras = [str(cand / "pin_embeddings.npy"), *prerank]
    if not args.no_two_tower:
        t = time.perf_counter()
        paths, note = two_tower_files(cand / "two_tower", x, ids, cat, cat_names, args)
        extras += paths
        out["two_tower_s"] = time.perf_counter() - t
        print(note, flush=True)
    if args.cf_share:
        paths, note = cf_files(cand / "cf", ids, args.users, args)
        extras += paths
        print(note, flush=True)
    t = time.perf_counter()
    for view, table in snapshot_tables(ids, cat_names, cat, args.users, rng).items():
        path = cand / f"features_{view}.parquet"
        pq.write_table(table, path, row_group_size=max(table.num_rows, 1))
        extras.append(str(path))
    out["features_s"] = time.perf_counter() - t
    index = json.loads((cand / "index" / "index.json").read_text())
    files = BundleFiles(index_meta=str(cand / "index" / "index.json"),
                        index_shards=tuple(str(cand / "index" / s["file"]) for s in index["shards"]),
                        ranker=onnx_path, encoder=encoder_path, pins=str(cand / "pins.parquet"), extras=tuple(extras))
    lat = index["measured"]["latency"]
    metrics = Metrics(k=10, recall_at_k=report.recall_at_k, latency_p50_ms=lat["p50_ms"], latency_p99_ms=lat["p99_ms"],
                      auc={"save": 0.7, "closeup": 0.7}, calibration_error={"save": 0.01, "closeup": 0.01})
    t = time.perf_counter()
    publish(Store(str(work / "store")), NAME, files, metrics, Lineage("benchmark", "benchmark"), version="bench")
    out["publish_s"] = time.perf_counter() - t
    return out


COLD = """
import json, sys, time
t0 = time.perf_counter()
from pinrec.export.serving.loader import load
from pinrec.export.serving.recommend import RecommendConfig, Recommender
t1 = time.perf_counter()
bundle = load(sys.argv[1], "homefeed")
t2 = time.perf_counter()
rec = Recommender(bundle, RecommendConfig(**json.loads(sys.argv[2])))
t3 = time.perf_counter()
rec.recommend(0, {"surface": "home_feed"}, k=50)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "recommender_s": t3 - t2, "first_request_s": t4 - t3}))
"""


def percentiles(values: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(values) * 1e3, [50, 99])
    return float(p50), float(p99)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pins", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--categories", type=int, default=12)
    p.add_argument("--budget-mb", type=float, default=200.0)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--queries", type=int, default=500, help="held-out queries to tune the index on")
    p.add_argument("--no-embedding-features", action="store_true",
                   help="a ranker without the PinSage embedding features")
    p.add_argument("--user-embeddings", default="closeups",
                   type=lambda v: tuple(x.strip() for x in v.split(",") if x.strip()),
                   help="the ranker's user embeddings, comma-separated: saves, closeups (default closeups)")
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--ann-candidates", type=int, default=500)
    p.add_argument("--ann-queries", type=int, default=5)
    p.add_argument("--category-cap", type=int, default=10)
    p.add_argument("--mmr-lambda", type=float, default=1.0)
    p.add_argument("--two-tower-candidates", type=int, default=500)
    p.add_argument("--cf-candidates", type=int, default=200)
    p.add_argument("--no-two-tower", action="store_true", help="build the bundle without the two-tower channel")
    p.add_argument("--cf-share", type=float, default=0.1,
                   help="share of the pins with CF factors (the engaged catalogue; 0: no cf channel)")
    p.add_argument("--baseline", default="ann,category,trending,fresh", type=parse_channels,
                   help="channels of the 'baseline' run, served beside all the bundle's channels when the bundle "
                        "has more ('off': not measured)")
    p.add_argument("--channel-costs", action="store_true",
                   help="also time candidates() of each channel alone (CPU time of the thread, same requests)")
    p.add_argument("--prerank-keep", type=int, default=0,
                   help="also serve with the pre-ranker keeping this many candidates (0: not measured)")
    p.add_argument("--workdir", default=None, help="where the bundle is built (default: a temporary folder)")
    p.add_argument("--reuse", action="store_true", help="serve the bundle already in --workdir")
    p.add_argument("--recent", type=int, default=3,
                   help="session actions per request in the 'recent' run (0: not measured)")
    p.add_argument("--quotas", default="ann=300,category=25,trending=25,fresh=25", type=parse_quotas,
                   help="recommend.quotas of the 'quotas' run as channel=n,... ('off': not measured)")
    p.add_argument("--redis", choices=("auto", "on", "off"), default="auto",
                   help="also serve with features from a local redis-server (auto: when one is installed)")
    p.add_argument("--redis-timeout-s", type=float, default=0.05,
                   help="the lookup timeout after which serving falls back to the snapshot (redis.timeout_s)")
    args = p.parse_args(argv)
    if args.requests < 200:
        p.error("--requests must be >= 200 for a meaningful p99")
    if args.recent < 0:
        p.error(f"--recent must be >= 0, got {args.recent}")
    if not 0 <= args.cf_share <= 1:
        p.error(f"--cf-share must lie in [0, 1], got {args.cf_share}")
    if args.reuse and not args.workdir:
        p.error("--reuse needs --workdir")
    if not args.user_embeddings or len(set(args.user_embeddings)) != len(args.user_embeddings) or \
            not set(args.user_embeddings) <= {"saves", "closeups"}:
        p.error(f"--user-embeddings must be distinct values of saves, closeups; got {args.user_embeddings}")
    with tempfile.TemporaryDirectory(prefix="pinrec-serve-") as tmp:
        work = Path(args.workdir or tmp)
        built = {} if args.reuse else build(work, args)
        return measure(work, args, built)


def measure(work: Path, args, built: dict) -> int:
    import faiss
    import onnxruntime as ort

    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import STAGES, RecommendConfig, Recommender

    store = str(work / "store")
    cfg = {"ann_candidates": args.ann_candidates, "ann_queries": args.ann_queries,
           "two_tower_candidates": args.two_tower_candidates, "cf_candidates": args.cf_candidates,
           "category_cap": args.category_cap, "mmr_lambda": args.mmr_lambda, "ranker_threads": 1}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cold = subprocess.run([sys.executable, "-c", COLD, store, json.dumps(cfg)], env=env, capture_output=True,
                          text=True, check=True)
    cold_s = json.loads(cold.stdout.strip().splitlines()[-1])
    faiss.omp_set_num_threads(1)
    t = time.perf_counter()
    bundle = load(store, NAME)
    warm_load_s = time.perf_counter() - t
    t = time.perf_counter()
    rec = Recommender(bundle, RecommendConfig(**cfg))
    rec_s = time.perf_counter() - t
    rng = np.random.default_rng(SEED + 1)
    users = np.where(rng.uniform(size=args.requests + args.warmup) < 0.05, -1,
                     rng.integers(0, args.users, args.requests + args.warmup))
    contexts = [{"surface": SURFACES[i % 4], "device": DEVICES[i % 3], "country": COUNTRIES[i % 5],
                 "now": CUTOFF + dt.timedelta(minutes=int(m))} for i, m in enumerate(rng.integers(0, 600, len(users)))]
    variants = {"snapshot": (rec, None)}
    if args.baseline and set(rec.channels) - set(args.baseline):  # the channels served before, re-measured beside
        variants["baseline"] = (Recommender(bundle, RecommendConfig(**cfg, channels=args.baseline)), None)
    variants |= session_and_quota_variants(rec, bundle, cfg, contexts, args)
    merged_sizes = {name: [len(r.candidates(int(u), c)) for u, c in zip(users, contexts)]
             for name, (r, _) in variants.items() if name in ("snapshot", "baseline")}
    channels_note = "".join(f"column {name}: channels {', '.join(r.channels)}; merged candidates per request: mean "
                            f"{np.mean(merged_sizes[name]):.0f}, p50 {np.median(merged_sizes[name]):.0f}, min {min(merged_sizes[name])}\n"
                            for name, (r, _) in variants.items() if name in merged_sizes)
    prerank_note = ""
    if args.prerank_keep:  # the same requests, the pre-ranker cutting the candidates to --prerank-keep
        t = time.perf_counter()
        with_prerank = Recommender(bundle, RecommendConfig(**cfg, prerank_keep=args.prerank_keep))
        built_s = time.perf_counter() - t
        variants[f"prerank {args.prerank_keep}"] = (with_prerank, None)
        merged = merged_sizes["snapshot"]
        prerank_note = (f"pre-ranker: {len(with_prerank.prerank.encoder.categorical_names)} categorical + "
                        f"{len(with_prerank.prerank.encoder.dense_names)} dense inputs; merged candidates per "
                        f"request: mean {np.mean(merged):.0f}, p50 {np.median(merged):.0f}, min {min(merged)}; "
                        f"Recommender() in this process: {rec_s * 1e3:.0f} ms without it, {built_s * 1e3:.0f} ms "
                        "with it\n")
    runs = serve(variants, users, contexts, args)
    costs = channel_costs(bundle, cfg, rec.channels, users, contexts, args) if args.channel_costs else {}
    redis_note = "Redis: not measured (--redis off)"
    if args.redis != "off":
        measured = with_redis(bundle, RecommendConfig(**cfg), users, contexts, args)
        if isinstance(measured, str):
            if args.redis == "on":
                raise SystemExit(f"--redis on: {measured}")
            redis_note = f"Redis: not measured ({measured})"
        else:
            runs["redis"], redis_note = measured
    wall, _, stages, sizes = runs["snapshot"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}; faiss {faiss.__version__} (1 thread), onnxruntime {ort.__version__} (1 thread)")
    print(f"bundle: {bundle!r}; index {bundle.index_meta['factory']} {bundle.index_meta.get('search_params')}; "
          f"{bundle.manifest.total_bytes / 2**20:.0f} MiB; users={args.users}; ranker inputs C="
          f"{len(rec.encoder.categorical_names)}, F={len(rec.encoder.dense_names)}")
    if built:
        print("build: " + ", ".join(f"{k}={v:.1f}" for k, v in built.items()))
    print(f"{rec!r}; {args.requests} requests (5 % unknown users), k={args.k}, returned "
          f"{np.mean(sizes):.1f} on average\n")
    cols = list(runs)
    print(redis_note + "\n")
    for c in (c for c in ("recent", "quotas") if c in runs):
        print(f"column {c}: the same requests with {RUN_NOTES[c](args)}")
    print(channels_note + prerank_note, end="")
    print("| step | " + " | ".join(f"{c}: p50 (ms) | {c}: p99 (ms)" for c in cols) + " |")
    print("|---|" + "---:|---:|" * len(cols))
    for name, key in (("import loader + recommend (fresh process)", "import_s"), ("load (fresh process)", "load_s"),
                      ("Recommender() (fresh process)", "recommender_s"), ("first request", "first_request_s")):
        print(f"| {name} | {cold_s[key] * 1e3:.1f} | - |" + " - | - |" * (len(cols) - 1))
    print(f"| load (same process, again) | {warm_load_s * 1e3:.1f} | - |" + " - | - |" * (len(cols) - 1))
    rows = [(f"stage: {s}", lambda r, s=s: r[2][s]) for s in STAGES]
    rows += [("recommend (wall)", lambda r: r[0]), ("recommend (CPU of the thread)", lambda r: r[1])]
    for name, pick in rows:
        print(f"| {name} | " + " | ".join("{:.3f} | {:.3f}".format(*percentiles(pick(runs[c]))) for c in cols) + " |")
    if costs:
        print("\n| candidates() of one channel alone, CPU time of the thread | p50 (ms) | p99 (ms) | pins (mean) |\n"
              "|---|---:|---:|---:|")
        for c, (cpu, n) in costs.items():
            print(f"| {c} | " + "{:.3f} | {:.3f}".format(*percentiles(cpu)) + f" | {np.mean(n):.0f} |")
    p99 = percentiles(wall)[1]
    print(f"\ntargets: load <= 1 s: {'met' if cold_s['load_s'] <= 1 else 'NOT met'} ({cold_s['load_s']:.2f} s); "
          f"recommend p99 <= 15 ms: {'met' if p99 <= 15 else 'NOT met'} ({p99:.2f} ms)")
    for c in (c for c in runs if c not in ("snapshot", "redis")):
        p99_c = percentiles(runs[c][0])[1]
        what = RUN_NOTES[c](args) if c in RUN_NOTES else f"the column {c}"
        print(f"recommend p99 <= 15 ms with {what}: {'met' if p99_c <= 15 else 'NOT met'} ({p99_c:.2f} ms)")
    print("recommend p99, CPU time of the thread: " + ", ".join(f"{c} {percentiles(runs[c][1])[1]:.2f} ms" for c in runs))
    if "redis" in runs:
        print(f"per-request feature lookups from Redis: p50 {percentiles(runs['redis'][2]['features'])[0]:.3f} ms vs "
              f"{percentiles(stages['features'])[0]:.3f} ms from the bundle snapshot")
    return 0


def serve(variants: dict, users, contexts, args) -> dict:
    """Run the requests (the first ``args.warmup`` untimed) on each variant (name -> (recommender,
    per-request session actions or None)), interleaved: request i goes to every variant in turn, the
    first one rotating, so that a shared machine's load hits them alike. Name -> (wall s, CPU s,
    {stage: s}, sizes)."""
    from pinrec.export.serving.recommend import STAGES

    runs = {name: ([], [], {s: [] for s in STAGES}, []) for name in variants}
    names = list(variants)
    for i, (user, ctx) in enumerate(zip(users.tolist(), contexts)):
        for name in names[i % len(names):] + names[:i % len(names)]:
            rec, recent = variants[name]
            wall, cpu, stages, sizes = runs[name]
            timings: dict[str, float] = {}
            session = recent[i] if recent is not None else None
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            out = rec.recommend(user, ctx, k=args.k, recent=session, timings=timings)
            c1, t1 = time.thread_time_ns(), time.perf_counter_ns()
            if i >= args.warmup:
                wall.append((t1 - t0) / 1e9)
                cpu.append((c1 - c0) / 1e9)
                sizes.append(len(out))
                for s in STAGES:
                    stages[s].append(timings.get(s, 0.0))
    return runs


def channel_costs(bundle, cfg: dict, channels, users, contexts, args) -> dict:
    """Channel -> (CPU seconds of ``candidates()`` per timed request, pins it returned) on a
    Recommender serving that channel alone (built one at a time: each holds the bundle's encodings)."""
    import gc

    from pinrec.export.serving.recommend import RecommendConfig, Recommender

    out = {}
    for channel in channels:
        rec = Recommender(bundle, RecommendConfig(**cfg, channels=(channel,)))
        cpu, sizes = [], []
        for i, (user, ctx) in enumerate(zip(users.tolist(), contexts)):
            c0 = time.thread_time_ns()
            n = len(rec.candidates(user, ctx))
            if i >= args.warmup:
                cpu.append((time.thread_time_ns() - c0) / 1e9)
                sizes.append(n)
        out[channel] = (cpu, sizes)
        del rec
        gc.collect()
    return out


def parse_channels(value: str) -> tuple[str, ...]:
    """``a,b,...`` -> channel names; ``off`` -> ()."""
    from pinrec.export.serving.candidates import CHANNELS

    names = () if value.strip() == "off" else tuple(c.strip() for c in value.split(",") if c.strip())
    if (value.strip() != "off" and not names) or not set(names) <= set(CHANNELS) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--baseline must be distinct channels of {CHANNELS} or off, got {value!r}")
    return names


def parse_quotas(value: str) -> dict[str, int]:
    """``channel=n,...`` -> {channel: n}; ``off`` -> {}."""
    if value.strip() == "off":
        return {}
    try:
        return {c.strip(): int(n) for c, n in (part.split("=") for part in value.split(",") if part.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--quotas must be channel=n,... or off, got {value!r}") from None


RUN_NOTES = {"recent": lambda a: f"{a.recent} session actions per request",
             "quotas": lambda a: "quotas " + ",".join(f"{c}={n}" for c, n in a.quotas.items())}


def session_and_quota_variants(rec, bundle, cfg: dict, contexts, args) -> dict:
    """Variants of :func:`serve`: ``recent``, the same requests with ``args.recent`` session actions
    each (random pins, saved or closed up 1-60 s before ``now``, newest last), and ``quotas``, with
    ``recommend.quotas`` = ``args.quotas``."""
    from pinrec.export.serving.recommend import RecommendConfig, Recommender

    variants = {}
    if args.recent:
        rng = np.random.default_rng(SEED + 2)
        ids = rec.pins.ids
        variants["recent"] = (rec, [[(int(ids[rng.integers(len(ids))]), ("save", "closeup")[int(rng.integers(2))],
                                      ctx["now"] - dt.timedelta(seconds=float(s)))
                                     for s in sorted(rng.uniform(1, 60, args.recent))[::-1]] for ctx in contexts])
    if args.quotas:
        variants["quotas"] = (Recommender(bundle, RecommendConfig(**cfg, quotas=args.quotas)), None)
    return variants


def with_redis(bundle, config, users, contexts, args):
    """The same requests with features from a real ``redis-server`` (started here on 127.0.0.1 and
    stopped by PID) holding the bundle's snapshot: the run and a note, or why it could not run."""
    import shutil
    import socket

    server = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install 'pinrec[redis]')"
    if server is None:
        return "no redis-server on PATH"
    from pinrec.export.serving.feature_snapshot import FeatureSnapshot
    from pinrec.export.serving.recommend import Recommender
    from pinrec.export.serving.redis_format import RedisConfig
    from pinrec.export.serving.redis_store import RedisFeatureStore
    from pinrec.jobs.features.redis_export import export_snapshot

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        cfg = RedisConfig(url=f"redis://127.0.0.1:{port}/0", timeout_s=args.redis_timeout_s)
        snapshot = FeatureSnapshot.from_bundle(bundle)
        exported = export_snapshot(snapshot, bundle.version, cfg)
        store = RedisFeatureStore(snapshot, bundle.version, cfg)
        run = serve({"redis": (Recommender(bundle, config, features=store), None)}, users, contexts, args)["redis"]
        info = client.info("memory")["used_memory_human"]
        fell_back = (f"; {store.fallbacks} lookups FELL BACK to the snapshot ({store.last_error}): the Redis "
                     "column mixes both" if store.fallbacks else "; no fallbacks")
        return run, (f"Redis: redis-server {client.info('server')['redis_version']} on 127.0.0.1, "
                     f"{exported.render()}, {info} used; timeout {cfg.timeout_s * 1e3:.0f} ms; "
                     f"{store.redis_lookups} lookups served by Redis{fell_back}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
