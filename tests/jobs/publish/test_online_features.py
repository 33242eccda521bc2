"""`pinrec publish online-features` / export_bundle_features / the DAG task online_features: the served
bundle's own snapshot, written to a real redis-server, is what RedisFeatureStore then serves."""
from __future__ import annotations

import pyarrow as pa
import pytest

from pinrec.export.build.publish import publish, rollback
from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.loader import load
from pinrec.export.serving.redis_format import RedisConfig
from pinrec.export.serving.redis_store import RedisFeatureStore
from pinrec.export.serving.store import Store
from pinrec.jobs.config import ConfigError, load_config, parse_overrides
from pinrec.jobs.orchestration.cli import main
from pinrec.jobs.orchestration.tasks import online_features
from pinrec.jobs.publish.online_features import export_bundle_features
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import GATE, write_candidate


@pytest.fixture()
def store(tmp_path):
    """A bundle store with homefeed v1 and v2 published (channel prod -> v2)."""
    store = Store(str(tmp_path / "store"))
    for version in ("v1", "v2"):
        publish(store, "homefeed", write_candidate(tmp_path / version), metrics(), LINEAGE, version=version, now=T0,
                blessing=GATE)
    return store


def _cfg(store, *more):
    return load_config(None, parse_overrides([f"publish.store_uri={store.uri}", "publish.name=homefeed", *more]))


def _served_from_redis(bundle, url) -> dict[str, int]:
    """view -> rows Redis answers for every key of the bundle's snapshot (each lookup must come from Redis)."""
    snapshot = FeatureSnapshot.from_bundle(bundle)
    features = RedisFeatureStore(snapshot, bundle.version, RedisConfig(url=url))
    rows = {}
    for view in snapshot.views:
        keys = snapshot.view(view).key_tuples()
        entities = snapshot.meta(view).entities
        table = features.lookup(view, {e: pa.array([k[i] for k in keys]) for i, e in enumerate(entities)})
        assert features.last_source == "redis", (view, features.last_error)
        assert table.equals(snapshot.lookup(view, {e: pa.array([k[i] for k in keys]) for i, e in enumerate(entities)}))
        rows[view] = table.num_rows
    return rows


def test_the_channels_bundle_is_exported_and_served_from_redis(store, redis_url):
    out = export_bundle_features(_cfg(store, f"redis.url={redis_url}"))
    bundle = load(store.uri, "homefeed")
    assert (out["version"], out["url"]) == ("v2", redis_url) == (bundle.version, redis_url)
    snapshot = FeatureSnapshot.from_bundle(bundle)
    assert out["rows"] == {v: snapshot.view(v).num_rows for v in snapshot.views} and sum(out["rows"].values()) > 0
    assert _served_from_redis(bundle, redis_url) == out["rows"]
    # after a rollback the task exports the version now served; a second export replaces the first whole
    rollback(store, "homefeed", "prod", "v1")
    first = online_features(_cfg(store, f"redis.url={redis_url}"))
    again = online_features(_cfg(store, f"redis.url={redis_url}"))
    assert first["version"] == again["version"] == "v1" and again["generation"] != first["generation"]
    assert again["replaced"] == first["rows"]  # the first export's keys, deleted after the switch
    assert _served_from_redis(load(store.uri, "homefeed"), redis_url) == first["rows"]


def test_a_given_version_through_the_cli(store, redis_url, capsys):
    code = main(["publish", "online-features", "--version", "v1", "--redis-url", redis_url,
                 "--set", f"publish.store_uri={store.uri}", "--set", "publish.name=homefeed"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("redis export of version v1 (generation ")
    assert sum(_served_from_redis(load(store.uri, "homefeed", version="v1"), redis_url).values()) > 0


def test_without_redis_or_a_served_version(store, tmp_path, capsys):
    assert online_features(_cfg(store)) == {"skipped": "redis.url is not set: serving reads the bundle's own snapshot"}
    empty = Store(str(tmp_path / "empty"))
    assert online_features(_cfg(empty, "redis.url=redis://127.0.0.1:9/0")) == {
        "skipped": "channel prod of homefeed points to no version yet"}
    with pytest.raises(ConfigError, match="redis.url is not set"):
        export_bundle_features(_cfg(store))
    # a Redis that is down: exit 2 naming the URL (RedisExportError)
    code = main(["publish", "online-features", "--redis-url", "redis://127.0.0.1:9/0",
                 "--set", f"publish.store_uri={store.uri}", "--set", "publish.name=homefeed"])
    assert code == 2 and "redis://127.0.0.1:9/0" in capsys.readouterr().err
