"""The serving-side feature snapshot: exact lookups, missing/expired encoding, bad input, Redis fallback."""
from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import subprocess
import sys
import threading
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinrec.export.serving.feature_store import (
    FeatureSnapshot,
    RedisConfig,
    RedisFeatureStore,
    SnapshotError,
    SnapshotMeta,
    encode_rows,
    redis_key,
    redis_meta,
    redis_meta_key,
    snapshot_file_name,
    with_meta,
)
from pinrec.schemas.features import Feature, FeatureView

T0 = dt.datetime(2026, 1, 10)  # the cut-off
TS = pa.timestamp("us", tz="UTC")
USER = FeatureView("u", ("user_id",), (Feature("saves", "int64"), Feature("rate", "float64"),
                                        Feature("last", "array<int64>")), ttl=dt.timedelta(hours=10))
UC = FeatureView("uc", ("user_id", "category"), (Feature("clicks", "int64"),), ttl=dt.timedelta(hours=10))


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def user_table(rows, view=USER, cutoff=T0) -> pa.Table:
    """rows: (user_id, saves, rate, last, feature_ts)."""
    cols = list(zip(*rows)) if rows else [[]] * 5
    table = pa.table({"user_id": pa.array(cols[0], pa.int64()), "u__saves": pa.array(cols[1], pa.int64()),
                      "u__rate": pa.array(cols[2], pa.float64()), "u__last": pa.array(cols[3], pa.list_(pa.int64())),
                      "u__feature_ts": pa.array(cols[4], TS)})
    return with_meta(table, SnapshotMeta.from_view(view, cutoff))


def uc_table(rows) -> pa.Table:
    cols = list(zip(*rows))
    table = pa.table({"user_id": pa.array(cols[0], pa.int64()), "category": pa.array(cols[1], pa.string()),
                      "uc__clicks": pa.array(cols[2], pa.int64()), "uc__feature_ts": pa.array(cols[3], TS)})
    return with_meta(table, SnapshotMeta.from_view(UC, T0))


USERS = [(5, 50, 0.5, [1, 2], h(-2)), (1, 10, 0.1, [], h(-9)), (3, 30, None, None, h(-1))]  # unsorted on purpose
UCS = [(1, "art", 4, h(-2)), (1, "food", 6, h(-3)), (2, "art", 9, h(-1))]


def snap() -> FeatureSnapshot:
    return FeatureSnapshot.open([user_table(USERS), uc_table(UCS)])


def test_lookup_returns_the_training_columns_with_missing_encoding():
    out = snap().lookup("u", np.array([3, 1, 99, 5]))
    assert out.column_names == ["u__saves", "u__rate", "u__last", "u__feature_ts", "u__missing"]
    assert out.schema.types == [pa.int64(), pa.float64(), pa.list_(pa.int64()), TS, pa.bool_()]
    assert out.to_pydict() == {
        "u__saves": [30, 10, None, 50], "u__rate": [None, 0.1, None, 0.5], "u__last": [None, [], None, [1, 2]],
        "u__feature_ts": [h(-1).replace(tzinfo=dt.UTC), h(-9).replace(tzinfo=dt.UTC), None,
                          h(-2).replace(tzinfo=dt.UTC)],
        "u__missing": [False, False, True, False]}


def test_values_expire_with_the_ttl_at_serving_time():
    s = snap()
    # at h(1): the h(-9) row is exactly 10 h old (still fresh); at h(1.5) it is stale
    assert s.lookup("u", [1, 5], now=h(1))["u__missing"].to_pylist() == [False, False]
    late = s.lookup("u", [1, 5], now=h(1.5))
    assert late["u__missing"].to_pylist() == [True, False] and late["u__saves"].to_pylist() == [None, 50]
    # one time per key, as numpy datetime64 or aware datetimes
    per_key = s.lookup("u", [1, 1, 3], now=np.array([h(0), h(2), h(9)], dtype="datetime64[us]"))
    assert per_key["u__missing"].to_pylist() == [False, True, False]
    aware = s.lookup("u", [1], now=h(2).replace(tzinfo=dt.UTC))
    assert aware["u__missing"].to_pylist() == [True]
    with pytest.raises(ValueError, match="cannot serve an earlier time"):
        s.lookup("u", [1], now=h(-0.5))
    with pytest.raises(ValueError, match="2 times for 3 keys"):
        s.lookup("u", [1, 2, 3], now=[h(0), h(1)])


def test_null_keys_and_an_empty_batch():
    s = snap()
    out = s.lookup("u", pa.array([None, 5], pa.int64()))
    assert out["u__missing"].to_pylist() == [True, False] and out["u__saves"].to_pylist() == [None, 50]
    assert s.lookup("u", []).num_rows == 0
    negative = FeatureSnapshot.open(user_table([(-1, 4, 0.0, [], h(-1)), (0, 5, 0.0, [], h(-1))]))
    assert negative.lookup("u", pa.array([-1, None, 0, -2]))["u__saves"].to_pylist() == [4, None, 5, None]


def test_composite_keys():
    s = snap()
    out = s.lookup("uc", {"user_id": [1, 1, 2, 2, 1], "category": ["food", "art", "art", "food", None]})
    assert out.to_pydict()["uc__clicks"] == [6, 4, 9, None, None]
    assert out["uc__missing"].to_pylist() == [False, False, False, True, True]
    unsorted = FeatureSnapshot.open(uc_table(UCS[::-1]))
    assert unsorted.lookup("uc", {"user_id": [2, 1, 3], "category": ["art", "food", "art"]}) \
        .column("uc__clicks").to_pylist() == [9, 6, None]
    with pytest.raises(SnapshotError, match="pass keys as a mapping"):
        s.lookup("uc", [1, 2])
    with pytest.raises(SnapshotError, match="keys lack"):
        s.lookup("uc", {"user_id": [1]})
    with pytest.raises(SnapshotError, match="differ in length"):
        s.lookup("uc", {"user_id": [1, 2], "category": ["art"]})


def test_bad_keys_and_unknown_views_are_clear_errors():
    s = snap()
    with pytest.raises(SnapshotError, match="keys 'user_id' must be int"):
        s.lookup("u", ["1"])
    with pytest.raises(SnapshotError, match=r"no view 'pin' \(it has \['u', 'uc'\]\)"):
        s.lookup("pin", [1])


def test_duplicate_and_null_keys_refuse_to_open():
    with pytest.raises(SnapshotError, match=r"duplicate keys \(5,\)"):
        FeatureSnapshot.open(user_table([*USERS, (5, 1, 0.0, [], h(-1))]))
    with pytest.raises(SnapshotError, match=r"duplicate keys \(1, 'art'\)"):
        FeatureSnapshot.open(uc_table([*UCS, (1, "art", 1, h(-1))]))
    with pytest.raises(SnapshotError, match=r"null keys in \['user_id'\]"):
        FeatureSnapshot.open(user_table([*USERS, (None, 1, 0.0, [], h(-1))]))
    with pytest.raises(SnapshotError, match="appears twice"):
        FeatureSnapshot.open([user_table(USERS), user_table(USERS)])


def test_missing_columns_features_and_metadata_are_clear_errors():
    with pytest.raises(SnapshotError, match=r"lacks columns \['u__rate'\]"):
        FeatureSnapshot.open(user_table(USERS).drop_columns(["u__rate"]))
    with pytest.raises(SnapshotError, match="no pinrec snapshot metadata"):
        FeatureSnapshot.open(user_table(USERS).replace_schema_metadata(None))
    newer = FeatureView("u", ("user_id",), (*USER.features, Feature("pins_7d", "int64")), ttl=USER.ttl)
    with pytest.raises(SnapshotError, match=r"lacks features \['pins_7d'\]"):
        FeatureSnapshot.open(user_table(USERS), expected=[newer])
    with pytest.raises(SnapshotError, match="no view 'uc'"):
        FeatureSnapshot.open(user_table(USERS), expected=[USER, UC])
    longer = FeatureView("u", ("user_id",), USER.features, ttl=dt.timedelta(days=1))
    with pytest.raises(SnapshotError, match="ttl"):
        FeatureSnapshot.open(user_table(USERS), expected=[longer])


def test_parquet_round_trip_from_a_folder_and_from_a_bundle(tmp_path):
    pq.write_table(user_table(USERS), tmp_path / snapshot_file_name("u"))
    pq.write_table(uc_table(UCS), tmp_path / snapshot_file_name("uc"))
    s = FeatureSnapshot.open(str(tmp_path), expected=[USER, UC])
    assert s.views == ("u", "uc") and repr(s) == "FeatureSnapshot(u=3, uc=3; cutoff=2026-01-10T00:00:00+00:00)"
    assert s.lookup("u", [5, 3])["u__saves"].to_pylist() == [50, 30]
    entries = [types.SimpleNamespace(path=f"extra/{snapshot_file_name(v)}") for v in ("u", "uc")]
    (tmp_path / "extra").mkdir()
    for e in entries:
        (tmp_path / e.path).write_bytes((tmp_path / e.path.split("/")[1]).read_bytes())
    bundle = types.SimpleNamespace(root=str(tmp_path), name="homefeed", version="v1",
                                   manifest=types.SimpleNamespace(of_role=lambda role: entries))
    assert FeatureSnapshot.from_bundle(bundle).lookup("uc", {"user_id": [2], "category": ["art"]}) \
        .column("uc__clicks").to_pylist() == [9]
    with pytest.raises(FileNotFoundError):
        FeatureSnapshot.open(str(tmp_path / "nope"))


def test_an_empty_snapshot_serves_everything_as_missing():
    out = FeatureSnapshot.open(user_table([])).lookup("u", [1, 2])
    assert out["u__missing"].to_pylist() == [True, True] and out["u__saves"].to_pylist() == [None, None]


def test_imports_with_the_base_install_only():
    code = ("import sys, pinrec.export.serving.feature_store\n"
            "heavy = {'torch', 'pyspark', 'pandas', 'mlflow', 'redis', 'onnx', 'boto3'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_redis_config_validation():
    with pytest.raises(ValueError, match="redis.url"):
        RedisConfig(url="http://x")
    with pytest.raises(ValueError, match="key_prefix"):
        RedisConfig(key_prefix="a:b")
    with pytest.raises(ValueError, match="batch_size"):
        RedisConfig(batch_size=0)


# --- fallback when Redis is unusable (no server needed) -----------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_redis_that_is_down_falls_back_to_the_snapshot(caplog):
    pytest.importorskip("redis")
    cfg = RedisConfig(url=f"redis://127.0.0.1:{_free_port()}/0", timeout_s=0.2, retry_after_s=0.0)
    store = RedisFeatureStore(snap(), "v1", cfg)
    with caplog.at_level(logging.WARNING, logger="pinrec.export.serving.feature_store"):
        out = store.lookup("u", [5, 99])
    assert out.equals(snap().lookup("u", [5, 99]))
    assert store.fallbacks == 1 and store.redis_lookups == 0 and store.last_source == "snapshot"
    assert "ConnectionError" in store.last_error
    assert "serving features from the bundle snapshot" in caplog.text


def test_a_slow_redis_times_out_and_falls_back():
    pytest.importorskip("redis")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True)
    thread.start()
    try:
        cfg = RedisConfig(url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=0.2, retry_after_s=0.0)
        store = RedisFeatureStore(snap(), "v1", cfg)
        out = store.lookup("u", [3])
        assert out["u__saves"].to_pylist() == [30]
        assert store.fallbacks == 1 and "Timeout" in store.last_error
    finally:
        silent.close()
        for conn, _ in accepted:
            conn.close()


class FlakyClient:
    """A stand-in client whose MGET fails while ``down``; counts calls."""

    def __init__(self) -> None:
        self.calls, self.down = 0, True

    def mget(self, names):
        import redis

        self.calls += 1
        if self.down:
            raise redis.exceptions.ConnectionError("connection refused")
        return [None] * len(names)  # reachable, but no export of this version


def test_after_a_failure_redis_is_left_alone_for_retry_after_s():
    pytest.importorskip("redis")
    now = [0.0]
    client = FlakyClient()
    store = RedisFeatureStore(snap(), "v1", RedisConfig(retry_after_s=5.0), client=client, clock=lambda: now[0])
    store.lookup("u", [5])
    assert client.calls == 1 and store.degraded
    now[0] = 4.9
    store.lookup("u", [5])
    assert client.calls == 1 and store.fallbacks == 2
    now[0], client.down = 5.0, False
    out = store.lookup("u", [5])  # tried again: reachable, but the version was never exported -> snapshot
    assert client.calls == 2 and store.fallbacks == 3 and "no complete export" in store.last_error
    assert out["u__saves"].to_pylist() == [50]


class DictRedis:
    """A stand-in for redis-py's MGET over a dict of raw values; counts the MGETs."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data, self.calls = data, 0

    def mget(self, names):
        self.calls += 1
        return [self.data.get(n) for n in names]


def exported(snapshot: FeatureSnapshot, version: str = "v1") -> dict[str, bytes]:
    """What :func:`pinrec.jobs.features.redis_export.export_snapshot` writes, as key -> raw value."""
    data = {}
    for name in snapshot.views:
        view = snapshot.view(name)
        data[redis_meta_key("pinrec", version, name)] = redis_meta(view, "g1").encode()
        data |= {redis_key("pinrec", version, name, "g1", key): value.encode() for key, value in encode_rows(view)}
    return data


def _tampered(key: str, change) -> dict[str, bytes]:
    data = exported(snap())
    data[key] = json.dumps(change(json.loads(data[key]))).encode()
    return data


@pytest.mark.parametrize("key, change, message", [
    # user 5's row is [saves, rate, last, feature_ts]
    ("pinrec:v1:u:g1:[5]", lambda r: [1.5, *r[1:]], "column 'u__saves' under pinrec:v1:u:g1:[5] holds 1.5, not a int64 value"),
    ("pinrec:v1:u:g1:[5]", lambda r: [True, *r[1:]], "column 'u__saves' under pinrec:v1:u:g1:[5] holds True"),
    ("pinrec:v1:u:g1:[5]", lambda r: ["3", *r[1:]], "column 'u__saves' under pinrec:v1:u:g1:[5] holds '3'"),
    ("pinrec:v1:u:g1:[5]", lambda r: [[50], *r[1:]], "column 'u__saves' under pinrec:v1:u:g1:[5] holds [50]"),
    ("pinrec:v1:u:g1:[5]", lambda r: [r[0], True, *r[2:]], "column 'u__rate' under pinrec:v1:u:g1:[5] holds True"),
    ("pinrec:v1:u:g1:[5]", lambda r: [*r[:2], [1.5], r[3]], "column 'u__last' under pinrec:v1:u:g1:[5] holds [1.5]"),
    ("pinrec:v1:u:g1:[5]", lambda r: [*r[:3], None], "column 'u__feature_ts' under pinrec:v1:u:g1:[5] is null"),
    ("pinrec:v1:u:g1:[5]", lambda r: [*r[:3], 1.5e15], "column 'u__feature_ts' under pinrec:v1:u:g1:[5] holds 1500000000000000.0"),
    ("pinrec:v1:u:g1:[5]", lambda r: [2 ** 70, *r[1:]], "column 'u__saves' under pinrec:v1:u:g1:[5] holds 1180591620717411303424"),
    ("pinrec:v1:u:_meta", lambda h: [h], "pinrec:v1:u:_meta is not an export header (a JSON object)"),
    ("pinrec:v1:u:_meta", lambda h: {**h, "types": ["double", *h["types"][1:]]},
     "does not match the snapshot (pinrec:v1:u:_meta: types differ)"),
], ids=["float-for-int", "bool-for-int", "string-for-int", "list-for-int", "bool-for-float", "float-in-int-list",
        "null-feature_ts", "float-feature_ts", "int-overflow", "header-a-list", "header-types-differ"])
def test_redis_values_of_another_type_fall_back_to_the_snapshot_naming_key_and_column(key, change, message, caplog):
    """A value of another type than its column's was truncated (1.5 served as 1, [1.5] as [1]) or
    crashed the request (a bool, a string, a list, a null feature_ts, a header that is a list)."""
    store = RedisFeatureStore(snap(), "v1", RedisConfig(retry_after_s=0.0), client=DictRedis(_tampered(key, change)))
    with caplog.at_level(logging.WARNING, logger="pinrec.export.serving.feature_store"):
        out = store.lookup("u", [5, 1])
    assert out.equals(snap().lookup("u", [5, 1]))
    assert out["u__saves"].to_pylist() == [50, 10] and out["u__last"].to_pylist() == [[1, 2], []]
    assert store.last_source == "snapshot" and store.fallbacks == 1 and store.redis_lookups == 0
    assert message in store.last_error and message in caplog.text
    assert store.lookup("uc", {"user_id": [2], "category": ["art"]})["uc__clicks"].to_pylist() == [9]
    assert store.last_source == "redis"  # only the view with the bad value fell back


def test_an_untampered_export_is_served_from_redis_with_its_types():
    store = RedisFeatureStore(snap(), "v1", RedisConfig(), client=DictRedis(exported(snap())))
    for now in (None, h(1.5)):
        got, want = store.lookup("u", [5, 1, 3, 99], now), snap().lookup("u", [5, 1, 3, 99], now)
        assert got.equals(want) and store.last_source == "redis"
    assert store.fallbacks == 0


def test_a_lookup_reads_only_the_generation_meta_names_and_follows_a_switch():
    """Keys of a half-written export (another generation) are never read; after the switch of _meta
    the next lookup reads the new generation whole, and a snapshot of another row count is not matched."""
    data = exported(snap())  # generation g1
    client = DictRedis(data)
    store = RedisFeatureStore(snap(), "v1", RedisConfig(retry_after_s=0.0), client=client)
    assert store.lookup("u", [5])["u__saves"].to_pylist() == [50] and client.calls == 2  # learns g1, reads it
    assert store.lookup("u", [5, 1])["u__saves"].to_pylist() == [50, 10] and client.calls == 3  # one MGET now
    g2 = {k.replace(":g1:", ":g2:"): json.dumps([r[0] + 1, *r[1:]]).encode()
          for k, r in ((k, json.loads(v)) for k, v in data.items() if k.startswith("pinrec:v1:u:g1:"))}
    data |= g2  # a second export half-way: its keys are there, _meta still names g1
    assert store.lookup("u", [5])["u__saves"].to_pylist() == [50] and store.last_source == "redis"
    data["pinrec:v1:u:_meta"] = json.dumps({**json.loads(data["pinrec:v1:u:_meta"]), "generation": "g2"}).encode()
    for k in [k for k in data if k.startswith("pinrec:v1:u:g1:")]:
        del data[k]  # the switch, then the old generation deleted
    before = client.calls
    assert store.lookup("u", [5, 1, 3])["u__saves"].to_pylist() == [51, 11, 31] and client.calls == before + 2
    assert store.fallbacks == 0
    fewer = FeatureSnapshot.open([user_table(USERS[:2]), uc_table(UCS)])
    other = RedisFeatureStore(fewer, "v1", RedisConfig(retry_after_s=0.0), client=client)
    assert other.lookup("u", [3])["u__missing"].to_pylist() == [True] and other.last_source == "snapshot"
    assert "rows differ" in other.last_error  # an export of another snapshot of the same version


def test_a_published_bundle_carries_the_snapshot_to_the_loader(tmp_path, candidate):
    import dataclasses

    from pinrec.export.build.publish import publish
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.store import Store
    from tests.support.bundles import LINEAGE, metrics
    from tests.support.bundles import T0 as PUBLISHED

    folder = tmp_path / "snapshot"
    folder.mkdir()
    pq.write_table(user_table(USERS), folder / snapshot_file_name("u"))
    pq.write_table(uc_table(UCS), folder / snapshot_file_name("uc"))
    files, _, _ = candidate(0)
    files = dataclasses.replace(files, extras=(str(folder / snapshot_file_name("u")),
                                               str(folder / snapshot_file_name("uc"))))
    publish(Store(str(tmp_path / "store")), "homefeed", files, metrics(), LINEAGE, version="v1", now=PUBLISHED)
    bundle = load(str(tmp_path / "store"), "homefeed")
    served = FeatureSnapshot.from_bundle(bundle, expected=[USER, UC])
    assert served.lookup("u", [5, 4])["u__saves"].to_pylist() == [50, None]
