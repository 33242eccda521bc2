"""The online snapshot: exact cases by the training join's rules, and training-serving skew on the synthetic world."""
from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest

from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.jobs.features.feature_snapshot import (
    PrebuiltSnapshot,
    build_feature_snapshot,
    open_snapshot,
    prebuild_snapshot,
    snapshot_frame,
    snapshot_table,
    write_snapshot,
)
from pinrec.jobs.features.pit_join import FeatureTableError, point_in_time_join
from pinrec.schemas.features import FEATURE_VIEWS, Feature, FeatureView
from tests.support.timezones import ZONES, driver_time_zone

pytestmark = pytest.mark.spark

T0 = dt.datetime(2026, 1, 1)
VIEW = FeatureView("u", ("user_id",), (Feature("saves", "int64"), Feature("last", "array<int64>")),
                   ttl=dt.timedelta(hours=10))
UC = FeatureView("uc", ("user_id", "category"), (Feature("clicks", "int64"),), ttl=dt.timedelta(hours=10))
FEATURE_SCHEMA = "user_id bigint, feature_ts timestamp, created_ts timestamp, saves bigint, last array<bigint>"
FEATURES = [
    (1, T0, T0, 10, [1]),
    (1, T0 + dt.timedelta(hours=5), T0 + dt.timedelta(hours=5), 50, [5]),
    (1, T0 + dt.timedelta(hours=6), T0 + dt.timedelta(hours=9), 60, [6]),  # written late: unknown before h9
    (2, T0, T0, 7, []),
    (3, T0 + dt.timedelta(hours=20), T0 + dt.timedelta(hours=20), 99, None),  # from the future
    (None, T0, T0, 5, None),  # keyless rows are ignored
]


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC)


def snapshot(spark, cutoff, rows=FEATURES, view=VIEW, schema=FEATURE_SCHEMA):
    features = spark.createDataFrame(rows, schema)
    return snapshot_table(snapshot_frame(features, view, cutoff), view, cutoff)


def test_snapshot_follows_the_join_rules(spark):
    assert snapshot(spark, h(8)).to_pydict() == {
        "user_id": [1, 2], "u__saves": [50, 7], "u__last": [[5], []],
        "u__feature_ts": [utc(h(5)), utc(h(0))]}  # the h6 row is not known at h8; user 3 only in the future
    assert snapshot(spark, h(9))["u__saves"].to_pylist() == [60, 7]  # known now
    late = snapshot(spark, h(10.5))  # user 2's row expired (10.5 h old)
    assert late["user_id"].to_pylist() == [1] and late["u__saves"].to_pylist() == [60]


def test_snapshot_boundaries_to_the_microsecond(spark):
    """A row valid and written exactly at the cut-off is served; one written a microsecond later is
    not (the entity falls back to its older known row, or is left out); a row valid after the cut-off
    but written before is not; exactly ``ttl`` old is served, a microsecond older is not."""
    us = dt.timedelta(microseconds=1)
    cutoff = h(24) + 5 * us
    ttl = VIEW.ttl
    rows = [
        (1, cutoff, cutoff, 1, None),
        (2, cutoff, cutoff + us, 2, None), (2, cutoff - ttl, cutoff - ttl, 20, None),
        (3, cutoff + us, cutoff - dt.timedelta(hours=2), 3, None),
        (4, cutoff - ttl - us, cutoff - ttl, 4, None),
        (5, cutoff - dt.timedelta(hours=3), cutoff + dt.timedelta(hours=5), 5, None),
        (6, cutoff - dt.timedelta(hours=1), cutoff - dt.timedelta(hours=1), 6, None),
        (6, cutoff - dt.timedelta(hours=2), cutoff, 60, None),  # written last, but older: never served
    ]
    table = snapshot(spark, cutoff, rows)
    assert table.select(["user_id", "u__saves", "u__feature_ts"]).to_pylist() == [
        {"user_id": 1, "u__saves": 1, "u__feature_ts": utc(cutoff)},
        {"user_id": 2, "u__saves": 20, "u__feature_ts": utc(cutoff - ttl)},
        {"user_id": 6, "u__saves": 6, "u__feature_ts": utc(cutoff - dt.timedelta(hours=1))}]


def test_snapshot_of_a_view_whose_created_ts_is_its_feature_ts(spark, tmp_path):
    """One column for both times: the snapshot of a small stored table (the broadcast path, as
    Spark knows its size) answers."""
    view = FeatureView("u", ("user_id",), (Feature("saves", "int64"),), ttl=dt.timedelta(hours=10),
                       feature_ts="valid_at", created_ts="valid_at")
    rows = [(1, h(0), 10), (1, h(5), 50), (1, h(9), 90), (2, h(0), 7)]
    spark.createDataFrame(rows, "user_id bigint, valid_at timestamp, saves bigint").write.parquet(str(tmp_path / "f"))
    features = spark.read.parquet(str(tmp_path / "f"))
    table = snapshot_table(snapshot_frame(features, view, h(8)), view, h(8))
    assert table.to_pydict() == {"user_id": [1, 2], "u__saves": [50, 7], "u__feature_ts": [utc(h(5)), utc(h(0))]}
    assert snapshot(spark, h(-1)).num_rows == 0


@pytest.mark.parametrize("zone", ZONES)
def test_the_cut_off_is_the_same_instant_on_a_driver_in_any_time_zone(spark, zone):
    """An hour before and after a midnight-UTC cut-off: only the earlier row is served, whether the cut-off
    is naive (UTC) or aware, wherever the driver runs (PySpark reads naive datetimes in the local zone)."""
    rows = [(1, utc(h(23)), utc(h(23)), 10, [1]), (1, utc(h(25)), utc(h(25)), 99, [9])]
    with driver_time_zone(zone):
        for cutoff in (h(24), utc(h(24)), utc(h(24)).astimezone(dt.timezone(dt.timedelta(hours=-5)))):
            assert snapshot(spark, cutoff, rows)["u__saves"].to_pylist() == [10]


def test_served_values_equal_the_join_at_later_times(spark):
    """Between two knowledge changes the snapshot serves exactly what the join attaches."""
    features = spark.createDataFrame(FEATURES, FEATURE_SCHEMA)
    snap = FeatureSnapshot.open(snapshot(spark, h(9)))
    events = [(f"e{i}", k, h(t)) for i, (k, t) in enumerate([(1, 9), (1, 15.5), (1, 16.5), (2, 9.5), (2, 10.5),
                                                              (3, 12), (None, 9), (4, 9)])]
    joined = point_in_time_join(spark.createDataFrame(events, "event_id string, user_id bigint, ts timestamp"),
                                features, VIEW).orderBy("event_id").toArrow()
    served = snap.lookup("u", joined["user_id"], now=joined["ts"])
    for column in served.column_names:
        assert served[column].to_pylist() == joined[column].to_pylist(), column
    assert served["u__missing"].to_pylist() == [False, False, True, False, True, True, True, True]


UC_SCHEMA = "user_id bigint, category string, feature_ts timestamp, created_ts timestamp, clicks bigint"
UC_ROWS = [(1, "art", h(0), h(0), 3), (1, "food", h(1), h(1), 4), (1, "art", h(2), h(2), 5), (2, "art", h(0), h(0), 1)]


def test_composite_keys_and_duplicates(spark):
    schema, rows = UC_SCHEMA, UC_ROWS
    table = snapshot(spark, h(3), rows, UC, schema)
    assert table.select(["user_id", "category", "uc__clicks"]).to_pylist() == [
        {"user_id": 1, "category": "art", "uc__clicks": 5}, {"user_id": 1, "category": "food", "uc__clicks": 4},
        {"user_id": 2, "category": "art", "uc__clicks": 1}]
    with pytest.raises(FeatureTableError, match="duplicate"):
        snapshot(spark, h(3), [*rows, (1, "art", h(2), h(2), 6)], UC, schema)


def test_write_snapshot_round_trips(spark, tmp_path):
    paths = write_snapshot({"u": snapshot(spark, h(9))}, str(tmp_path / "snap"))
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == ["features_u.parquet"]
    snap = FeatureSnapshot.open(paths["u"], expected=[VIEW])
    assert snap.lookup("u", [2, 1])["u__saves"].to_pylist() == [7, 60]


@pytest.mark.integration
def test_snapshot_written_to_s3_and_opened_from_there(spark, s3_server):
    """The same snapshot as a folder on S3 (SeaweedFS): one object per view, opened by
    ``open_snapshot`` from the folder and from the listed files; no file is left locally."""
    import uuid

    from pinrec.jobs.io.lake import Location
    from tests.support.s3 import BUCKET

    folder = Location(f"s3a://{BUCKET}/snap-{uuid.uuid4().hex[:12]}/feature_snapshot/x", s3_server.options)
    paths = write_snapshot({"u": snapshot(spark, h(9)), "uc": snapshot(spark, h(3), UC_ROWS, UC, UC_SCHEMA)}, folder)
    assert paths == {"u": f"{folder}/features_u.parquet", "uc": f"{folder}/features_uc.parquet"}
    assert folder.entries() == [("features_u.parquet", False), ("features_uc.parquet", False)]
    snap = open_snapshot(folder, expected=(VIEW, UC))
    assert snap.lookup("u", [2, 1])["u__saves"].to_pylist() == [7, 60]
    assert snap.lookup("uc", {"user_id": [1], "category": ["food"]})["uc__clicks"].to_pylist() == [4]
    only_u = open_snapshot([folder / "features_u.parquet"], expected=(VIEW,))
    assert only_u.lookup("u", [1])["u__saves"].to_pylist() == [60]
    with pytest.raises(FileNotFoundError, match="no features_<view>.parquet files in"):
        open_snapshot(folder / "elsewhere")


# --- training-serving skew on the synthetic world ------------------------------------------------

def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@pytest.mark.slow
def test_online_features_equal_the_training_join(spark, tiny_world, tmp_path):
    """Impressions of the last day: features served from snapshots equal what the point-in-time
    join attached to the same impressions, row by row. Knowledge changes only when a feature row
    becomes known, so a snapshot as of the last such moment before an impression serves it
    exactly; a mid-day snapshot is checked on the later impressions too."""
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog
    from pinrec.schemas.catalog import feature_table

    cfg, _ = tiny_world
    warehouse = cfg.storage.warehouse
    training = spark.read.format("delta").load(f"{warehouse}/training_set")
    last = training.agg(F.max("dt")).collect()[0][0]
    rows = training.where(F.col("dt") == F.lit(last)).orderBy("event_id").toArrow()
    assert rows.num_rows > 500
    known = sorted({r[0] for v in FEATURE_VIEWS for r in Catalog(spark, warehouse).read(feature_table(v))
                    .select(F.greatest("feature_ts", "created_ts")).distinct().collect()})
    times = rows["ts"].to_pylist()  # aware (UTC)
    boundary = [max(k for k in known if utc(k) <= t) for t in times]
    midday = dt.datetime.combine(last, dt.time(12))
    cutoffs = sorted(set(boundary)) + [midday]
    assert len(cutoffs) >= 3
    checked = 0
    for i, cutoff in enumerate(cutoffs):
        report = build_feature_snapshot(spark, warehouse, cutoff, str(tmp_path / f"snap{i}"))
        snap = FeatureSnapshot.open(report.out_dir, expected=FEATURE_VIEWS)
        take = [j for j, t in enumerate(times) if (boundary[j] == cutoff if cutoff != midday else t >= utc(midday))]
        assert take, cutoff
        part = rows.take(pa.array(take))
        now = part["ts"]
        keys = {"user": part["user_id"], "pin": part["pin_id"],
                "user_category": {"user_id": part["user_id"], "category": part["category"]}}
        for view in FEATURE_VIEWS:
            served = snap.lookup(view.name, keys[view.name], now=now)
            trained = [c for c in rows.column_names if c.startswith(f"{view.name}__")]
            assert served.column_names == trained  # exactly the training set's columns, in its order
            for column in trained:
                got, want = served[column].to_pylist(), part[column].to_pylist()
                bad = [(part["event_id"][j].as_py(), g, w) for j, (g, w) in enumerate(zip(got, want)) if not _same(g, w)]
                assert not bad, f"{column} as of {cutoff}: {len(bad)} of {len(got)} differ, e.g. {bad[:3]}"
            assert served.schema.types == part.select(trained).schema.types
            checked += part.num_rows
        missing = sum(part["user__missing"].to_pylist())
        assert 0 <= missing < part.num_rows
    assert checked >= 3 * rows.num_rows


@pytest.mark.slow
@pytest.mark.full  # 20-25 s; make test's demo tests serve from prebuilt snapshots
def test_prebuilt_tables_serve_only_their_cutoff_and_version(spark, tiny_world, tmp_path):
    """Tables built ahead equal those built in place, and a build takes a prebuilt view's table only
    for the same cut-off and Delta version (marked tables show which were taken)."""
    import pyarrow.parquet as pq

    from pinrec.jobs.io.catalog import Catalog
    from pinrec.schemas.catalog import feature_table

    cfg, _ = tiny_world
    warehouse = cfg.storage.warehouse
    versions = {v.name: Catalog(spark, warehouse).version(feature_table(v)) for v in FEATURE_VIEWS}
    last = dt.datetime.combine(max(r.dt for r in spark.read.format("delta").load(f"{warehouse}/training_set")
                                   .select("dt").distinct().collect()), dt.time(18))
    cutoffs = (last, last - dt.timedelta(hours=12))
    ahead = prebuild_snapshot(spark, warehouse, cutoffs + cutoffs[:1])  # a repeated cut-off is built once
    assert sorted(ahead.tables) == sorted((v.name, c.isoformat(), versions[v.name]) for v in FEATURE_VIEWS
                                          for c in cutoffs)
    built = build_feature_snapshot(spark, warehouse, cutoffs[1], str(tmp_path / "fresh"))  # (one cut-off: time)
    for view in FEATURE_VIEWS:
        assert pq.read_table(built.files[view.name]).equals(ahead.get(view.name, cutoffs[1], versions[view.name]))
        assert ahead.get(view.name, cutoffs[1], versions[view.name] + 1) is None
    assert built.rows["user"] > 1

    def marked(cutoff, version_shift=0):  # one row per view: a table taken from it is recognisable
        return PrebuiltSnapshot({(v.name, cutoff.isoformat(), versions[v.name] + version_shift):
                                 ahead.get(v.name, cutoffs[0], versions[v.name]).slice(0, 1) for v in FEATURE_VIEWS})

    taken = build_feature_snapshot(spark, warehouse, cutoffs[0], str(tmp_path / "taken"), prebuilt=marked(cutoffs[0]))
    assert set(taken.rows.values()) == {1}
    fresh = build_feature_snapshot(spark, warehouse, cutoffs[0], str(tmp_path / "other-version"),
                                   prebuilt=marked(cutoffs[0], version_shift=-1))
    other = build_feature_snapshot(spark, warehouse, cutoffs[0], str(tmp_path / "other-cutoff"),
                                   prebuilt=marked(cutoffs[1]))
    assert fresh.rows == other.rows and fresh.rows["user"] > 1


@pytest.mark.slow
def test_ranker_scores_through_the_loader_equal_the_training_path(spark, tiny_world, tmp_path):
    """The demo's published ranker scores the last day's impressions twice: through the serving
    loader (``Recommender.frame`` from a snapshot as of the impression's knowledge boundary, the
    bundle's encoder, embeddings and ONNX session) and through the training path (the training
    set's rows, the ranker job's embedding columns, the exported encoder and ONNX). Same numbers."""
    from pyspark.sql import functions as F

    from pinrec.export.build.onnx_ranker import run, session
    from pinrec.export.encoding import FeatureEncoder
    from pinrec.export.serving.embedding_features import (
        EmbeddingTable,
        user_embeddings_of,
    )
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.recommend import Recommender
    from pinrec.jobs.index.pin_index import read_embeddings
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.ranking.ranker_inputs import with_embeddings
    from pinrec.schemas.catalog import feature_table

    cfg, result = tiny_world
    warehouse = cfg.storage.warehouse
    bundle = load(cfg.publish.store_uri, cfg.publish.name, cfg.publish.channel)
    training = spark.read.format("delta").load(f"{warehouse}/training_set")
    last = training.agg(F.max("dt")).collect()[0][0]
    rows = training.where(F.col("dt") == F.lit(last)).orderBy("event_id").toArrow()
    frame = rows.to_pandas()
    ids, vectors, version, _ = read_embeddings(spark, warehouse)
    assert version == result.ranker.embedding_version
    encoder = FeatureEncoder.from_dict(bundle.encoder)
    batch = encoder.transform(with_embeddings(frame, EmbeddingTable(ids, vectors, version),
                                              user_embeddings_of(encoder.spec)))
    sess = session(f"{result.ranker.artifacts}/ranker.onnx")
    trained = run(sess, batch.categorical, batch.dense)

    known = sorted({r[0] for v in FEATURE_VIEWS for r in Catalog(spark, warehouse).read(feature_table(v))
                    .select(F.greatest("feature_ts", "created_ts")).distinct().collect()})
    times = rows["ts"].to_pylist()
    boundary = [max(k for k in known if utc(k) <= t) for t in times]
    context_columns = ("surface", "device", "country", "hour", "day_of_week")
    checked = 0
    for i, cutoff in enumerate(sorted(set(boundary))):
        report = build_feature_snapshot(spark, warehouse, cutoff, str(tmp_path / f"snap{i}"))
        rec = Recommender(bundle, cfg.recommend, features=FeatureSnapshot.open(report.out_dir, expected=FEATURE_VIEWS))
        for j in [j for j, b in enumerate(boundary) if b == cutoff][:150]:
            context = {c: frame[c].iloc[j] for c in context_columns} | {"now": times[j]}
            served = rec.score(rec.frame(int(frame["user_id"].iloc[j]), [int(frame["pin_id"].iloc[j])], context))
            for task in result.ranker.tasks:
                assert served[f"p_{task}"][0] == pytest.approx(float(trained[f"p_{task}"][j]), abs=1e-6), (
                    frame["event_id"].iloc[j], task)
            checked += 1
    assert checked >= 150  # 190 impressions over the last day's knowledge boundaries (tiny world)


def test_a_snapshot_with_no_row_in_any_view_is_refused_where_asked_and_nothing_is_written(spark, tmp_path):
    """feature-snapshot --cutoff before any feature row was created printed pin=0, user=0, ... and exited 0."""
    from pinrec.jobs.io.spark import spark_type
    from pinrec.schemas.catalog import feature_table

    warehouse = tmp_path / "warehouse"
    for view in FEATURE_VIEWS:
        columns = [*(f"{e} bigint" if e.endswith("_id") else f"{e} string" for e in view.entities),
                   "feature_ts timestamp", "created_ts timestamp",
                   *(f"{f.name} {spark_type(f.dtype).simpleString()}" for f in view.features), "dt date"]
        spark.createDataFrame([], ", ".join(columns)).write.format("delta").save(str(warehouse / feature_table(view)))
    cutoff = dt.datetime(2026, 1, 6)
    assert build_feature_snapshot(spark, str(warehouse), cutoff, str(tmp_path / "allowed")).rows == {
        v.name: 0 for v in FEATURE_VIEWS}  # publish and the funnel replay still may
    with pytest.raises(ValueError, match=r"no feature row is servable at the cut-off 2026-01-06T00:00:00 .*"
                                         r"`pinrec features`"):
        build_feature_snapshot(spark, str(warehouse), cutoff, str(tmp_path / "refused"), allow_empty=False)
    assert not (tmp_path / "refused").exists()
