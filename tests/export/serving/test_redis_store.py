"""Redis in front of the feature snapshot: served from Redis when its export matches, from the
snapshot when Redis is down, slow, or holds another export or values of another type."""
from __future__ import annotations

import json
import logging
import socket
import threading

import pytest

from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.redis_format import (
    RedisConfig,
    encode_rows,
    redis_key,
    redis_meta,
    redis_meta_key,
)
from pinrec.export.serving.redis_store import RedisFeatureStore
from tests.support.feature_snapshots import UCS, USERS, h, snap, uc_table, user_table

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
    # the logger keeps the name it had before feature_store.py was split into modules
    assert {r.name for r in caplog.records} == {"pinrec.export.serving.feature_store"}


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

