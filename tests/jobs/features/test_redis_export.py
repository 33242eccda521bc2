"""Redis export and the Redis-backed lookup, against a real redis-server on 127.0.0.1."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.redis_format import RedisConfig, redis_key, redis_meta_key
from pinrec.export.serving.redis_store import RedisFeatureStore
from pinrec.export.serving.snapshot_meta import SnapshotMeta, with_meta
from pinrec.jobs.features.redis_export import RedisExportError, export_snapshot
from pinrec.schemas.features import Feature, FeatureView
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration
redis = pytest.importorskip("redis", reason="redis-py is the 'redis' extra")

T0 = dt.datetime(2026, 1, 10)
TS = pa.timestamp("us", tz="UTC")
USER = FeatureView("u", ("user_id",), (Feature("saves", "int64"), Feature("rate", "float64"),
                                        Feature("last", "array<int64>"), Feature("top", "string")),
                   ttl=dt.timedelta(hours=10))
UC = FeatureView("uc", ("user_id", "category"), (Feature("clicks", "int64"),), ttl=dt.timedelta(hours=20))


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def make_snapshot(users_kept: tuple[int, ...] = (5, 1, 3)) -> FeatureSnapshot:
    users = pa.table({"user_id": pa.array([5, 1, 3], pa.int64()), "u__saves": pa.array([50, 10, 30], pa.int64()),
                      "u__rate": pa.array([0.5, float("nan"), None], pa.float64()),
                      "u__last": pa.array([[1, 2], [], None], pa.list_(pa.int64())),
                      "u__top": pa.array(["art", None, "food|x"], pa.string()),
                      "u__feature_ts": pa.array([h(-2), h(-9), h(-1)], TS)})
    users = users.filter(pc.is_in(users["user_id"], pa.array(users_kept, pa.int64())))
    ucs = pa.table({"user_id": pa.array([1, 1, 2], pa.int64()), "category": pa.array(["art", "a:b", "art"]),
                    "uc__clicks": pa.array([4, 6, 9], pa.int64()), "uc__feature_ts": pa.array([h(-2), h(-3), h(-1)], TS)})
    return FeatureSnapshot.open([with_meta(users, SnapshotMeta.from_view(USER, T0)),
                                 with_meta(ucs, SnapshotMeta.from_view(UC, T0))])


@pytest.fixture()
def client(redis_url):
    c = redis.Redis.from_url(redis_url)
    c.flushdb()
    yield c
    c.close()


def test_export_writes_versioned_keys_with_the_ttl_in_batches(redis_url, client):
    snap = make_snapshot()
    report = export_snapshot(snap, "v1", RedisConfig(url=redis_url, batch_size=2))
    assert report.rows == {"u": 3, "uc": 3} and report.round_trips == 4  # 2 + 1 and 2 + 1 SETs per round trip
    g = report.generation
    assert len(g) == 16 and report.replaced == {}
    assert sorted(k.decode() for k in client.keys("*")) == sorted([
        f'pinrec:v1:u:{g}:[1]', f'pinrec:v1:u:{g}:[3]', f'pinrec:v1:u:{g}:[5]', 'pinrec:v1:u:_meta',
        f'pinrec:v1:uc:{g}:[1,"a:b"]', f'pinrec:v1:uc:{g}:[1,"art"]', f'pinrec:v1:uc:{g}:[2,"art"]', 'pinrec:v1:uc:_meta'])
    value = json.loads(client.get(redis_key("pinrec", "v1", "u", g, (5,))))
    assert value == [50, 0.5, [1, 2], "art", (h(-2).replace(tzinfo=dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
                     // dt.timedelta(microseconds=1)]
    assert 36_000 - 60 < client.ttl(redis_key("pinrec", "v1", "u", g, (5,))) <= 36_000
    assert 72_000 - 60 < client.ttl(redis_meta_key("pinrec", "v1", "uc")) <= 72_000
    meta = json.loads(client.get(redis_meta_key("pinrec", "v1", "u")))
    assert (meta["rows"], meta["generation"]) == (3, g)
    assert meta["types"] == ["int64", "double", "list<item: int64>", "string", "timestamp[us, tz=UTC]"]


def test_a_re_export_of_the_version_replaces_the_previous_one_whole(redis_url, client):
    """Re-exporting v1 with only user 1 after {1, 3, 5} left the old keys: Redis still served user 3
    (missing = False). Each export now writes its own generation, switches _meta to it, then deletes
    the previous generation's keys."""
    full, one = make_snapshot(), make_snapshot((1,))
    cfg = RedisConfig(url=redis_url, timeout_s=1.0, retry_after_s=0.0, batch_size=2)
    first = export_snapshot(full, "v1", cfg)
    server = RedisFeatureStore(one, "v1", cfg)  # a server whose bundle holds the new snapshot
    assert server.lookup("u", [1])["u__saves"].to_pylist() == [10] and server.last_source == "snapshot"
    assert "rows differ" in server.last_error  # the export in Redis is of another snapshot
    second = export_snapshot(one, "v1", cfg)
    assert second.generation != first.generation and second.replaced == {"u": 3, "uc": 3}
    got = server.lookup("u", [1, 3, 5])
    assert got["u__missing"].to_pylist() == [False, True, True] and got["u__saves"].to_pylist() == [10, None, None]
    assert server.last_source == "redis"
    g = second.generation
    assert sorted(k.decode() for k in client.keys("*")) == sorted([
        f'pinrec:v1:u:{g}:[1]', 'pinrec:v1:u:_meta', f'pinrec:v1:uc:{g}:[1,"a:b"]', f'pinrec:v1:uc:{g}:[1,"art"]',
        f'pinrec:v1:uc:{g}:[2,"art"]', 'pinrec:v1:uc:_meta'])
    third = export_snapshot(one, "v1", cfg)  # the server read generation `g` last: it follows the switch
    assert third.replaced == {"u": 1, "uc": 3}
    assert server.lookup("u", [1, 3])["u__missing"].to_pylist() == [False, True] and server.last_source == "redis"
    assert server.redis_lookups == 2 and server.fallbacks == 1
    stale = RedisFeatureStore(full, "v1", cfg)  # a server still on the full snapshot: serves it, not Redis
    assert stale.lookup("u", [3])["u__saves"].to_pylist() == [30] and stale.last_source == "snapshot"


def test_redis_serves_exactly_what_the_snapshot_serves(redis_url, client):
    snap = make_snapshot()
    export_snapshot(snap, "v1", RedisConfig(url=redis_url))
    store = RedisFeatureStore(snap, "v1", RedisConfig(url=redis_url, timeout_s=1.0))
    for view, keys, now in [("u", [3, 1, 99, 5, None], None), ("u", [1, 5, 3], h(1.5)),
                            ("u", [1, 1], [h(0), h(2)]), ("u", [], None),
                            ("uc", {"user_id": [1, 1, 2, 2, 1], "category": ["a:b", "art", "art", "food", None]}, h(5))]:
        got = store.lookup(view, keys, now)
        want = snap.lookup(view, keys, now)
        assert got.schema == want.schema
        for column in want.column_names:  # NaN-aware: NaN != NaN in Table.equals
            assert [str(v) for v in got[column].to_pylist()] == [str(v) for v in want[column].to_pylist()], column
        assert store.last_source == "redis"
    assert store.redis_lookups == 5 and store.fallbacks == 0
    assert store.lookup("u", [1])["u__rate"].to_pylist()[0] != store.lookup("u", [1])["u__rate"].to_pylist()[0]  # NaN
    with pytest.raises(ValueError, match="cannot serve an earlier time"):
        store.lookup("u", [1], now=h(-1))  # bad input is an error, not a fallback
    assert store.fallbacks == 0


def test_an_unexported_or_incomplete_version_falls_back(redis_url, client, caplog):
    snap = make_snapshot()
    export_snapshot(snap, "v1", RedisConfig(url=redis_url))
    other = RedisFeatureStore(snap, "v2", RedisConfig(url=redis_url, retry_after_s=0.0))
    assert other.lookup("u", [5])["u__saves"].to_pylist() == [50]
    assert other.fallbacks == 1 and "no complete export of 'u' for version v2" in other.last_error
    client.delete(redis_meta_key("pinrec", "v1", "u"))  # as if an export were cut off before its marker
    store = RedisFeatureStore(snap, "v1", RedisConfig(url=redis_url, retry_after_s=0.0))
    assert store.lookup("u", [5])["u__saves"].to_pylist() == [50] and store.last_source == "snapshot"
    assert store.lookup("uc", {"user_id": [2], "category": ["art"]})["uc__clicks"].to_pylist() == [9]
    assert store.last_source == "redis"


def test_a_slow_redis_falls_back_then_recovers(redis_url, client):
    snap = make_snapshot()
    export_snapshot(snap, "v1", RedisConfig(url=redis_url))
    store = RedisFeatureStore(snap, "v1", RedisConfig(url=redis_url, timeout_s=0.1, retry_after_s=0.0))
    assert store.lookup("u", [5])["u__saves"].to_pylist() == [50] and store.last_source == "redis"
    blocker = threading.Thread(target=lambda: redis.Redis.from_url(redis_url).execute_command("DEBUG", "SLEEP", "0.6"))
    blocker.start()
    time.sleep(0.1)  # the server is now busy for ~0.5 s
    start = time.perf_counter()
    out = store.lookup("u", [5, 3])
    waited = time.perf_counter() - start
    assert out["u__saves"].to_pylist() == [50, 30] and store.last_source == "snapshot"
    assert store.fallbacks == 1 and "Timeout" in store.last_error and waited < 0.4
    blocker.join()
    time.sleep(0.1)
    # the same client again: the timed-out reply must not be read as the answer to the next MGET
    assert store.lookup("uc", {"user_id": [2], "category": ["art"]})["uc__clicks"].to_pylist() == [9]
    assert store.last_source == "redis" and store.redis_lookups == 2


def test_redis_keeps_a_value_at_least_as_long_as_the_snapshot_serves_it_and_the_reader_expires_it(redis_url, client):
    """The module docstring's claim: the key's expiry counts from the export, after the cut-off, so it
    outlives the value's freshness (feature_ts + TTL); the reader serves it as missing past that."""
    snap = make_snapshot()
    exported_at = dt.datetime.now(dt.UTC)
    generation = export_snapshot(snap, "v1", RedisConfig(url=redis_url)).generation
    for user, fts in ((5, h(-2)), (1, h(-9)), (3, h(-1))):
        fresh_until = fts.replace(tzinfo=dt.UTC) + USER.ttl
        assert client.ttl(redis_key("pinrec", "v1", "u", generation, (user,))) > (fresh_until - exported_at).total_seconds()
    store = RedisFeatureStore(snap, "v1", RedisConfig(url=redis_url, timeout_s=1.0))
    late = store.lookup("u", [1, 5], now=h(1.5))  # user 1's value (feature_ts T0 - 9 h) is stale, still in Redis
    assert late["u__missing"].to_pylist() == [True, False] and late["u__saves"].to_pylist() == [None, 50]
    assert store.last_source == "redis" and client.exists(redis_key("pinrec", "v1", "u", generation, (1,)))


def test_a_redis_that_is_down_is_an_export_error_naming_the_url():
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    with pytest.raises(RedisExportError, match=rf"redis export of version v1 to {url} failed: ConnectionError: ") as err:
        export_snapshot(make_snapshot(), "v1", RedisConfig(url=url))
    assert isinstance(err.value.__cause__, redis.exceptions.ConnectionError)
