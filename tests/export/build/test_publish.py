"""Publishing, the gate, faults, concurrency, retention and rollback, on a local store and on S3."""
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from pinrec.export.build import (
    channel_moves,
    publish_protocol,
    publish_types,
    retention,
)
from pinrec.export.build import publish as publish_module
from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import (
    PointerConflict,
    PublishConfig,
    PublishError,
    promote,
    prune,
    publish,
    rollback,
)
from pinrec.export.serving import bundle_store
from pinrec.export.serving.loader import BundleError, load
from pinrec.export.serving.store import (
    S3Options,
    Store,
    read_channel,
    read_channel_for_update,
    read_manifest,
)
from pinrec.schemas.manifest import (
    ChannelPointer,
    Manifest,
    ManifestError,
    bundle_prefix,
    channel_key,
)
from tests.support.bundles import LINEAGE, T0, metrics

GATE = BlessingConfig(min_recall=0.1, min_auc=0.55)
HOUR = dt.timedelta(hours=1)


class Killed(BaseException):
    """Stands for the publisher dying: not an Exception, so no handler of the publisher runs."""


def _publish(store, files, version, *, m=None, when=T0, **kwargs):
    return publish(store, "homefeed", files, m or metrics(), LINEAGE, version=version, now=when, blessing=GATE,
                   **kwargs)


def _channel(store):
    pointer = read_channel(store, "homefeed", "prod")
    return pointer.version if pointer else None


def test_first_publish_is_blessed_on_floors_and_promoted(store, candidate):
    files, _, _ = candidate(0)
    res = _publish(store, files, None)
    assert res.promoted and res.manifest.blessing.blessed and res.manifest.blessing.baseline_version is None
    assert res.version.startswith("20260110T120000Z-")
    assert _channel(store) == res.version
    manifest, raw = read_manifest(store, "homefeed", res.version)
    assert manifest == res.manifest
    assert res.pointer.manifest_sha256 == hashlib.sha256(raw).hexdigest()
    assert res.pointer.reason == "publish" and res.pointer.previous is None
    by_path = {f.path: f for f in manifest.files}
    assert sorted(by_path) == ["index/index.json", "index/shard_000.faiss", "index/shard_001.faiss",
                               "pins/pins.parquet", "ranker/encoder.json", "ranker/ranker.onnx"]
    for target, local, role in files.layout():
        data = Path(local).read_bytes()
        assert by_path[target].size == len(data) and by_path[target].role == role
        assert by_path[target].sha256 == hashlib.sha256(data).hexdigest()
        assert store.get_bytes(bundle_prefix("homefeed", res.version) + target) == data
    assert manifest.lineage.delta_versions == {"impressions": 3, "pins": 1, "training_set": 0}
    assert manifest.metrics.recall_at_k == 0.30


def test_first_publish_below_the_floor_is_stored_unblessed(store, candidate):
    files, _, _ = candidate(0)
    res = _publish(store, files, "v1", m=metrics(recall=0.05))
    assert not res.promoted and res.pointer is None and _channel(store) is None
    manifest, _ = read_manifest(store, "homefeed", "v1")
    assert manifest.blessing.reasons == ("recall@100 0.0500 < minimum 0.1000",)


def test_gate_compares_with_what_the_channel_serves(store, candidate, caplog):
    _publish(store, candidate(0)[0], "v1", m=metrics(recall=0.30))
    worse = _publish(store, candidate(1)[0], "v2", m=metrics(recall=0.25, auc=0.69), when=T0 + HOUR)
    assert not worse.promoted and _channel(store) == "v1"
    stored, _ = read_manifest(store, "homefeed", "v2")
    assert not stored.blessing.blessed and stored.blessing.baseline_version == "v1"
    assert stored.blessing.reasons == ("recall@100 0.2500 < v1 0.3000 - 0.0100",
                                       "auc[closeup] 0.6900 < v1 0.7000 - 0.0050",
                                       "auc[save] 0.6400 < v1 0.6500 - 0.0050")
    better = _publish(store, candidate(2)[0], "v3", m=metrics(recall=0.32), when=T0 + 2 * HOUR)
    assert better.promoted and _channel(store) == "v3" and better.pointer.previous == "v1"
    with caplog.at_level(logging.WARNING, logger="pinrec.export.build.publish"):
        forced = _publish(store, candidate(3)[0], "v4", m=metrics(recall=0.2), when=T0 + 3 * HOUR, force=True)
    assert forced.promoted and forced.pointer.reason == "force" and _channel(store) == "v4"
    assert forced.manifest.blessing.forced and not forced.manifest.blessing.blessed
    assert "force=True: promoting homefeed/v4 to prod despite: recall@100 0.2000 < v3 0.3200" in caplog.text


def test_the_funnel_is_judged_against_the_champion_replayed_on_the_same_day(store, candidate):
    import dataclasses

    key = "served.hr@50"
    _publish(store, candidate(0)[0], "v1", m=dataclasses.replace(metrics(), funnel={key: 0.40}))  # its own day
    cand = dataclasses.replace(metrics(), funnel={key: 0.30})
    own_day = _publish(store, candidate(1)[0], "v2", m=cand, when=T0 + HOUR)
    assert own_day.manifest.blessing.reasons == ("funnel served.hr@50 0.3000 < v1 0.4000 - 0.0500",)
    # a harder day: the champion replayed on it scores 0.32, and the candidate's 0.30 is within the tolerance
    same_day = _publish(store, candidate(2)[0], "v3", m=cand, when=T0 + 2 * HOUR, baseline_funnel=("v1", {key: 0.32}))
    assert same_day.promoted and same_day.manifest.blessing.notes == (
        "funnel compared with v1 replayed on the candidate's day",)
    # a replay of another version than the channel's (v3 now) is not used: 0.90 would have failed it
    stale = _publish(store, candidate(3)[0], "v4", m=cand, when=T0 + 3 * HOUR, baseline_funnel=("v1", {key: 0.90}))
    assert stale.promoted and stale.manifest.blessing.notes == (
        "funnel compared with v3's own day: the same-day replay was of v1",)


def test_versions_are_immutable(store, candidate):
    files, _, _ = candidate(0)
    _publish(store, files, "v1")
    with pytest.raises(PublishError, match="already exists"):
        _publish(store, files, "v1")


STEPS = ["claimed", "upload:index/shard_000.faiss", "uploaded", "verified", "manifest", "pointer:before", "pointer:after"]


@pytest.mark.parametrize("step", STEPS)
def test_killed_publisher_leaves_the_channel_on_a_complete_version(store, candidate, step):
    v1 = _publish(store, candidate(0)[0], "v1")

    def hook(done):
        if done == step:
            raise Killed(step)

    with pytest.raises(Killed):
        _publish(store, candidate(1)[0], "v2", m=metrics(recall=0.31), when=T0 + HOUR, hook=hook)
    served = load(store.uri, "homefeed", s3=store.s3, cache_dir=None)
    assert served.version == ("v2" if step == "pointer:after" else "v1")
    assert served.manifest.metrics.recall_at_k == (0.31 if step == "pointer:after" else 0.30)
    if STEPS.index(step) < STEPS.index("manifest"):
        with pytest.raises(BundleError, match="incomplete"):
            load(store.uri, "homefeed", version="v2", s3=store.s3)
    else:  # a complete, blessed candidate whose promotion did not happen (yet): loadable by version
        assert load(store.uri, "homefeed", version="v2", s3=store.s3).version == "v2"
    assert v1.promoted


@pytest.mark.parametrize("step", ["uploaded", "manifest"])
def test_sigkilled_publisher_process(store, candidate, tmp_path, step):
    """A real kill -9 of a publisher process mid-publish; credentials reach it through the environment."""
    _publish(store, candidate(0)[0], "v1")
    files, _, _ = candidate(1)
    script = textwrap.dedent(f"""
        import datetime as dt, os, signal
        from pinrec.export.build.publish import BundleFiles, publish
        from pinrec.export.serving.store import S3Options, Store
        from tests.support.bundles import LINEAGE, metrics
        files = BundleFiles(**{json.dumps(files.__dict__)})
        def hook(step):
            if step == {step!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        endpoint = os.environ.get("PINREC_TEST_S3_ENDPOINT")  # keys: the SDK's chain (AWS_* variables)
        store = Store({store.uri!r}, S3Options(endpoint_url=endpoint) if endpoint else None)
        publish(store, "homefeed", files, metrics(), LINEAGE, version="v2", hook=hook)
    """)
    env = dict(os.environ)
    if store.is_s3:
        env.update(AWS_ACCESS_KEY_ID=store.s3.access_key, AWS_SECRET_ACCESS_KEY=store.s3.secret_key,
                   PINREC_TEST_S3_ENDPOINT=store.s3.endpoint_url)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == -9, proc.stderr
    assert load(store.uri, "homefeed", s3=store.s3).version == "v1"
    assert store.exists(bundle_prefix("homefeed", "v2") + "manifest.json") == (step == "manifest")


def test_concurrent_publishers_exactly_one_wins(store, candidate):
    _publish(store, candidate(0)[0], "v0")
    n = 4
    barrier = threading.Barrier(n)
    outcomes: dict[str, object] = {}
    all_files = [candidate(10 + i)[0] for i in range(n)]

    def hook(step):
        if step == "pointer:before":  # everyone has read the same pointer and judged against v0
            barrier.wait(timeout=60)

    def run(i):
        try:
            outcomes[f"c{i}"] = _publish(store, all_files[i], f"c{i}", when=T0 + HOUR, hook=hook)
        except PointerConflict as e:
            outcomes[f"c{i}"] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, o in outcomes.items() if not isinstance(o, Exception)]
    assert len(outcomes) == n and len(winners) == 1
    assert _channel(store) == winners[0]
    assert read_channel(store, "homefeed", "prod").previous == "v0"
    for i in range(n):  # every loser's candidate stays stored, complete and blessed
        assert read_manifest(store, "homefeed", f"c{i}")[0].blessing.blessed


def test_compare_and_swap_primitive(store):
    key = "channels/homefeed/prod"
    data, token = store.read_pointer(key)
    assert (data, token) == (None, None)
    store.swap(key, b"one", None)
    with pytest.raises(PointerConflict):
        store.swap(key, b"two", None)  # create-if-absent when it exists
    data, token = store.read_pointer(key)
    assert data == b"one"
    store.swap(key, b"two", token)
    with pytest.raises(PointerConflict):
        store.swap(key, b"three", token)  # stale token
    assert store.read_pointer(key)[0] == b"two"
    assert store.put_if_absent("bundles/x/v1/manifest.json", b"m1")
    assert not store.put_if_absent("bundles/x/v1/manifest.json", b"m2")
    assert store.get_bytes("bundles/x/v1/manifest.json") == b"m1"


def test_rollback(store, candidate):
    _publish(store, candidate(0)[0], "v1")
    _publish(store, candidate(1)[0], "v2", when=T0 + HOUR)
    _publish(store, candidate(2)[0], "bad", m=metrics(recall=0.05), when=T0 + 2 * HOUR)
    assert _channel(store) == "v2"
    pointer = rollback(store, "homefeed", "prod", "v1")
    assert (pointer.version, pointer.previous, pointer.reason) == ("v1", "v2", "rollback")
    assert load(store.uri, "homefeed", s3=store.s3).version == "v1"
    with pytest.raises(PublishError, match="was not blessed"):
        rollback(store, "homefeed", "prod", "bad")
    assert rollback(store, "homefeed", "prod", "bad", allow_unblessed=True).version == "bad"
    with pytest.raises(PublishError, match="not a complete version"):
        rollback(store, "homefeed", "prod", "v9")
    store.put_bytes(bundle_prefix("homefeed", "v2") + "index/shard_001.faiss", b"garbage")
    with pytest.raises(PublishError, match="shard_001.faiss does not match its manifest"):
        rollback(store, "homefeed", "prod", "v2")
    assert _channel(store) == "bad"


def test_a_retried_rollback_keeps_the_rollback_target_and_a_forced_version_needs_allow_unblessed(store, candidate):
    _publish(store, candidate(0)[0], "v1")
    _publish(store, candidate(1)[0], "v2", when=T0 + HOUR)
    first = rollback(store, "homefeed", "prod", "v1")
    assert rollback(store, "homefeed", "prod", "v1") == first and first.previous == "v2"  # not v1 -> v1
    assert prune(store, "homefeed", keep_blessed=1, keep_unblessed=0) == []  # v2 is still the rollback target
    forced = _publish(store, candidate(2)[0], "f3", m=metrics(recall=0.05), when=T0 + 2 * HOUR, force=True,
                      channel="canary")  # forced into canary: it never served prod
    assert forced.manifest.blessing.forced and not forced.manifest.blessing.blessed
    with pytest.raises(PublishError, match=r"f3 was not blessed \(it was published with force=True\)"):
        rollback(store, "homefeed", "prod", "f3")
    assert rollback(store, "homefeed", "prod", "f3", allow_unblessed=True).version == "f3"


def test_promote_finishes_a_publish_that_never_moved_the_channel(store, candidate):
    def die_before_the_move(done):
        if done == "pointer:before":
            raise Killed(done)

    _publish(store, candidate(0)[0], "v1")
    with pytest.raises(Killed):
        _publish(store, candidate(1)[0], "v2", when=T0 + HOUR, hook=die_before_the_move)
    assert _channel(store) == "v1"
    pointer = promote(store, "homefeed", "prod", "v2")
    assert (pointer.version, pointer.previous, pointer.reason) == ("v2", "v1", "publish")
    assert promote(store, "homefeed", "prod", "v2") is None and _channel(store) == "v2"  # nothing left to finish
    rollback(store, "homefeed", "prod", "v1")
    assert promote(store, "homefeed", "prod", "v2") is None and _channel(store) == "v1"  # a rollback stays
    _publish(store, candidate(2)[0], "bad", m=metrics(recall=0.05), when=T0 + 2 * HOUR)
    assert promote(store, "homefeed", "prod", "bad") is None and _channel(store) == "v1"  # rejected


def test_promote_refuses_a_stale_verdict_and_a_damaged_version(store, candidate):
    def die_before_the_move(done):
        if done == "pointer:before":
            raise Killed(done)

    _publish(store, candidate(0)[0], "v1")
    for version, hours in (("v2", 1), ("v3", 2)):
        with pytest.raises(Killed):
            _publish(store, candidate(hours)[0], version, when=T0 + hours * HOUR, hook=die_before_the_move)
    store.put_bytes(bundle_prefix("homefeed", "v3") + "index/shard_001.faiss", b"garbage")
    with pytest.raises(PublishError, match="shard_001.faiss does not match its manifest; not promoting it"):
        promote(store, "homefeed", "prod", "v3")
    _publish(store, candidate(4)[0], "v4", when=T0 + 4 * HOUR)  # judged against v1, promoted
    with pytest.raises(PublishError, match="v2 was judged against v1 but channel prod now serves v4"):
        promote(store, "homefeed", "prod", "v2")
    assert _channel(store) == "v4"
    # a rejection is a verdict about the champion it lost to as well: stale once the channel serves another
    _publish(store, candidate(5)[0], "bad", m=metrics(recall=0.05), when=T0 + 5 * HOUR)
    assert promote(store, "homefeed", "prod", "bad") is None  # still against v4: nothing to finish
    rollback(store, "homefeed", "prod", "v1")
    with pytest.raises(PublishError, match="bad was rejected against v4 but channel prod now serves v1: its "
                                           "verdict is stale"):
        promote(store, "homefeed", "prod", "bad")
    assert _channel(store) == "v1"


@pytest.mark.parametrize("kwargs, message", [({"keep_blessed": -1}, "keep_blessed must be an integer >= 0, got -1"),
                                             ({"keep_unblessed": 1.5}, "keep_unblessed must be"),
                                             ({"incomplete_grace_s": -1}, "incomplete_grace_s must be"),
                                             ({"keep_blessed": True}, "keep_blessed must be")])
def test_prune_refuses_impossible_counts(store, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prune(store, "homefeed", **kwargs)


def test_prune_keeps_recent_and_pointed_versions(store, candidate):
    files, _, _ = candidate(0)
    for i in range(4):
        _publish(store, files, f"b{i}", m=metrics(recall=0.30 + 0.01 * i), when=T0 + i * HOUR)
    for i in range(3):
        _publish(store, files, f"r{i}", m=metrics(recall=0.05), when=T0 + (4 + i) * HOUR)
    store.put_bytes(bundle_prefix("homefeed", "dead") + "index/index.json", b"{}")  # a killed publisher's leftovers
    rollback(store, "homefeed", "prod", "b0")
    now = dt.datetime.now(dt.UTC)
    young = prune(store, "homefeed", keep_blessed=2, keep_unblessed=1, incomplete_grace_s=3600, now=now)
    assert young == ["b1", "r0", "r1"]  # b0: the channel's; b2, b3 newest blessed; r2 newest rejected; dead: young
    assert prune(store, "homefeed", keep_blessed=2, keep_unblessed=1, incomplete_grace_s=3600,
                 now=now + dt.timedelta(hours=2)) == ["dead"]
    left = {v for v in store.list_dir("bundles/homefeed") if store.list_files(bundle_prefix("homefeed", v))}
    assert left == {"b0", "b2", "b3", "r2"}
    assert load(store.uri, "homefeed", s3=store.s3).version == "b0"


def test_secrets_never_reach_manifests_pointers_or_logs(store, candidate, caplog):
    secret = store.s3.secret_key if store.is_s3 else "not-a-real-secret-0123"
    with caplog.at_level(logging.DEBUG):
        _publish(store, candidate(0)[0], "v1")
        _publish(store, candidate(1)[0], "v2", m=metrics(recall=0.05), when=T0 + HOUR)
        rollback(store, "homefeed", "prod", "v1")
        bundle = load(store.uri, "homefeed", s3=store.s3)
        logging.getLogger("test").info("loaded %r from %r", bundle, store)
    texts = [caplog.text, repr(store), repr(store.s3), repr(bundle)]
    for version in ("v1", "v2"):
        texts.append(store.get_bytes(bundle_prefix("homefeed", version) + "manifest.json").decode())
    texts.append(store.get_bytes("channels/homefeed/prod").decode())
    assert "loaded Bundle(homefeed/v1" in caplog.text
    assert all(secret not in t for t in texts)
    if store.is_s3:
        assert all(store.s3.access_key not in t for t in texts[1:])
    Manifest.from_json(texts[-2]), ChannelPointer.from_json(texts[-1])


def test_s3_options_from_env_hide_the_keys():
    opts = S3Options.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "eu-west-1",
                               "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI"})
    assert (opts.endpoint_url, opts.region, opts.access_key, opts.secret_key) == (
        "http://127.0.0.1:9000", "eu-west-1", "AKIDEXAMPLE", "wJalrXUtnFEMI")
    assert "wJalr" not in repr(opts) and "AKID" not in repr(opts)
    assert repr(Store("s3://bucket/serving", opts)) == "Store('s3://bucket/serving')"
    assert S3Options.from_env({}) == S3Options()
    with pytest.raises(ValueError, match="credentials in a store URI are refused"):
        Store("s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/serving")
    for bad in (None, "", "/", 5):  # load(None, ...) had failed with an AttributeError inside
        with pytest.raises(ValueError, match="a store URI must be a non-empty path or s3:// URI"):
            Store(bad)
    assert Store(Path("/tmp/x")).uri == "/tmp/x"
    with pytest.raises(ValueError, match="both access_key and secret_key"):
        S3Options.from_env({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE"})
    with pytest.raises(ValueError, match="http:// or https://"):
        S3Options(endpoint_url="127.0.0.1:9000")


def _bytes_and_inodes(store, version):
    """{path: (bytes, inode or None)} of every stored file of a version."""
    prefix = bundle_prefix("homefeed", version)
    return {rel: (store.get_bytes(prefix + rel), os.stat(store.local_path(prefix + rel)).st_ino
                  if store.is_local else None) for rel in store.list_files(prefix)}


def test_a_second_publisher_of_a_version_never_writes_into_it(store, candidate):
    """Two publishers of one explicit version: the late one fails before touching the first one's files,
    whether it starts while the first is uploading or after the first is done."""
    first, second = candidate(0)[0], candidate(1)[0]
    seen = {}

    def hook(step):
        if step == "verified":  # the first publisher's files are in place, its manifest not yet
            seen["before"] = _bytes_and_inodes(store, "v1")
            with pytest.raises(PublishError, match="homefeed/v1 is being published or was published"):
                _publish(store, second, "v1", when=T0 + HOUR)
            seen["after"] = _bytes_and_inodes(store, "v1")

    res = _publish(store, first, "v1", hook=hook)
    assert res.promoted and _channel(store) == "v1"
    assert seen["after"] == seen["before"]
    with pytest.raises(PublishError, match="already exists"):
        _publish(store, second, "v1", when=T0 + HOUR)
    now = _bytes_and_inodes(store, "v1")
    assert {k: v for k, v in now.items() if k != "manifest.json"} == seen["before"]
    for target, local, _ in first.layout():
        assert now[target][0] == Path(local).read_bytes()
    assert load(store.uri, "homefeed", s3=store.s3).encoder["seed"] == 0


@pytest.mark.parametrize("channel", ["canary.lock", "exp.tmp-1"])
def test_channels_hidden_from_list_channels_cannot_be_created(store, candidate, channel):
    """Such a channel was invisible to prune, which then deleted the version it served."""
    _publish(store, candidate(0)[0], "v1")
    with pytest.raises(ManifestError, match="reserved"):
        _publish(store, candidate(1)[0], "v2", when=T0 + HOUR, channel=channel)
    with pytest.raises(ManifestError, match="reserved"):
        rollback(store, "homefeed", channel, "v1")
    with pytest.raises(ManifestError, match="reserved"):
        PublishConfig(channel=channel)
    assert store.list_dir("channels/homefeed") in (["prod"], ["prod", "prod.lock"])


def _doomed_v1(store, candidate):
    """v1 (oldest blessed) is due for pruning with keep_blessed=1; the channel is on v2, and re-pointed
    at v2 so that v1 is not its previous version either (prune keeps that one)."""
    _publish(store, candidate(0)[0], "v1")
    _publish(store, candidate(1)[0], "v2", when=T0 + HOUR)
    current, token = read_channel_for_update(store, "homefeed", "prod")  # as a v2 -> v2 move would leave it
    store.swap(channel_key("homefeed", "prod"),
               dataclasses.replace(current, previous="v2", reason="rollback").to_json().encode(), token)
    assert _channel(store) == "v2"


def test_prune_spares_a_version_a_rollback_moved_to_after_its_pointer_read(store, candidate, monkeypatch):
    _doomed_v1(store, candidate)
    real_list_dir = store.list_dir

    def list_dir(key):  # prune reads the pointers, then lists the versions: the rollback lands in between
        if key == "bundles/homefeed" and not rolled:
            rolled.append(rollback(store, "homefeed", "prod", "v1"))
        return real_list_dir(key)

    rolled = []
    monkeypatch.setattr(store, "list_dir", list_dir)
    assert prune(store, "homefeed", keep_blessed=1, keep_unblessed=0) == []
    assert rolled and _channel(store) == "v1"
    assert load(store.uri, "homefeed", s3=store.s3).version == "v1"
    monkeypatch.undo()
    rollback(store, "homefeed", "prod", "v2")
    assert prune(store, "homefeed", keep_blessed=1, keep_unblessed=0) == []  # v1: prod's previous version, kept
    _publish(store, candidate(2)[0], "v3", when=T0 + 2 * HOUR)
    assert prune(store, "homefeed", keep_blessed=1, keep_unblessed=0) == ["v1"]  # nothing left in the way


def test_a_rollback_landing_just_before_prunes_delete_is_undone(store, candidate, monkeypatch):
    """Whatever prune read, the rollback that lands right before the delete must not leave the
    channel on a deleted version: it sees the version marked for deletion and puts the channel back."""
    _doomed_v1(store, candidate)
    real_delete = store.delete
    outcome = []

    def delete(key):
        if key.startswith(bundle_prefix("homefeed", "v1")) and not outcome:
            try:
                outcome.append(rollback(store, "homefeed", "prod", "v1"))
            except PublishError as e:
                outcome.append(e)
        real_delete(key)

    monkeypatch.setattr(store, "delete", delete)
    assert prune(store, "homefeed", keep_blessed=1, keep_unblessed=0) == ["v1"]
    assert len(outcome) == 1 and isinstance(outcome[0], PublishError)
    assert "being pruned" in str(outcome[0])
    assert _channel(store) == "v2"
    assert load(store.uri, "homefeed", s3=store.s3).version == "v2"
    with pytest.raises(PublishError, match="not a complete version"):
        rollback(store, "homefeed", "prod", "v1")


def test_rollback_refuses_a_version_being_pruned(store, candidate):
    _doomed_v1(store, candidate)
    store.put_bytes(bundle_prefix("homefeed", "v1") + ".pruning", b"{}")  # a prune is deleting it right now
    with pytest.raises(PublishError, match="homefeed/v1 is being pruned"):
        rollback(store, "homefeed", "prod", "v1")
    assert _channel(store) == "v2"


def test_prune_keeps_a_claimed_version_for_the_grace_period(store, candidate):
    """A publisher that died right after claiming its version left only the claim."""
    _publish(store, candidate(0)[0], "v1")

    def hook(step):
        if step == "claimed":
            raise Killed(step)

    with pytest.raises(Killed):
        _publish(store, candidate(1)[0], "v2", when=T0 + HOUR, hook=hook)
    assert store.list_files(bundle_prefix("homefeed", "v2")).keys() == {".claim"}
    with pytest.raises(PublishError, match="homefeed/v2 is being published or was published"):
        _publish(store, candidate(2)[0], "v2", when=T0 + HOUR)
    now = dt.datetime.now(dt.UTC)
    assert prune(store, "homefeed", incomplete_grace_s=3600, now=now) == []
    assert prune(store, "homefeed", incomplete_grace_s=3600, now=now + 2 * HOUR) == ["v2"]
    assert store.list_files(bundle_prefix("homefeed", "v2")) == {}
    assert _publish(store, candidate(2)[0], "v2", when=T0 + HOUR).promoted  # the name is free again


def test_a_version_pruned_while_uploading_is_never_published(store, candidate):
    """A prune whose grace is shorter than an upload deletes the incomplete version under the publisher:
    the publisher must notice (its claim is gone) instead of writing a manifest over missing files."""
    _publish(store, candidate(0)[0], "v1")

    def hook(step):
        if step == "verified":
            assert prune(store, "homefeed", incomplete_grace_s=0, now=dt.datetime.now(dt.UTC) + HOUR) == ["v2"]

    with pytest.raises(PublishError, match="homefeed/v2 was removed while it was being uploaded"):
        _publish(store, candidate(1)[0], "v2", when=T0 + HOUR, hook=hook)
    assert _channel(store) == "v1" and store.list_files(bundle_prefix("homefeed", "v2")) == {}


def test_a_move_to_a_version_whose_claim_went_is_undone(store, candidate):
    """The prune listed the version's files before the manifest arrived: the manifest stays, the rest and
    the claim go. The publisher's move checks its claim after the swap and puts the channel back."""
    _publish(store, candidate(0)[0], "v1")
    prefix = bundle_prefix("homefeed", "v2")

    def hook(step):
        if step == "manifest":
            for rel in store.list_files(prefix):
                if rel != "manifest.json":
                    store.delete(prefix + rel)

    with pytest.raises(PublishError, match="homefeed/v2 was removed while it was being published while channel prod "
                                           "moved to it; the channel was put back on v1"):
        _publish(store, candidate(1)[0], "v2", when=T0 + HOUR, hook=hook)
    assert _channel(store) == "v1"


def test_prune_sweeps_pointer_files_a_killed_swap_left(store, candidate):
    if not store.is_local:
        pytest.skip("S3 swaps leave no temporary objects")
    _publish(store, candidate(0)[0], "v1")
    folder = Path(store.local_path("channels/homefeed/prod")).parent
    old, fresh = folder / "prod.tmp-0123abcd", folder / "prod.tmp-4567ef01"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    an_hour_ago = dt.datetime.now(dt.UTC).timestamp() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    prune(store, "homefeed")
    assert sorted(p.name for p in folder.iterdir()) == ["prod", "prod.lock", "prod.tmp-4567ef01"]


@pytest.mark.parametrize("meanwhile, problem", [
    (lambda s: s.put_bytes(bundle_prefix("homefeed", "v1") + ".pruning", b"{}"), "is being pruned"),
    (lambda s: s.delete(bundle_prefix("homefeed", "v1") + "manifest.json"), "was deleted"),
], ids=["marked", "deleted"])
def test_a_rollback_that_lost_the_race_to_prune_puts_the_channel_back(store, candidate, monkeypatch, meanwhile,
                                                                      problem):
    """The prune marked (or already deleted) v1 after the rollback's checks, before its pointer move:
    the move is undone."""
    _doomed_v1(store, candidate)
    real_swap = store.swap

    def swap(key, data, token):
        if not done:
            done.append(meanwhile(store))
        return real_swap(key, data, token)

    done = []
    monkeypatch.setattr(store, "swap", swap)
    with pytest.raises(PublishError, match=f"homefeed/v1 {problem} while channel prod moved to it; "
                                           "the channel was put back on v2"):
        rollback(store, "homefeed", "prod", "v1")
    pointer = read_channel(store, "homefeed", "prod")
    assert (pointer.version, pointer.reason) == ("v2", "rollback")  # as _doomed_v1 left it
    assert load(store.uri, "homefeed", s3=store.s3).version == "v2"


# --- concurrency and durability (review of session 14) ---------------------------------------


def test_an_undone_move_never_lands_on_a_version_another_prune_deleted(store, candidate, monkeypatch):
    """A rollback undone because its target is being pruned goes back to the version it left; a second
    prune running meanwhile must not delete that version: each pointer's previous version is protected."""
    _publish(store, candidate(0)[0], "v1")
    _publish(store, candidate(1)[0], "v2", when=T0 + HOUR)
    _publish(store, candidate(2)[0], "v3", when=T0 + 2 * HOUR, channel="canary")
    real_swap, done = store.swap, []

    def swap(key, data, token):
        first = not done
        if first:  # prune #1, which read prod -> v2, marks v1
            store.put_bytes(bundle_prefix("homefeed", "v1") + ".pruning", b"{}")
        new = real_swap(key, data, token)
        if first:  # prune #2 reads prod -> v1 (previous v2) and must keep v2
            done.append(prune(store, "homefeed", keep_blessed=1, keep_unblessed=0))
        return new

    monkeypatch.setattr(store, "swap", swap)
    with pytest.raises(PublishError, match="homefeed/v1 is being pruned"):
        rollback(store, "homefeed", "prod", "v1")
    assert "v2" not in done[0]
    assert _channel(store) == "v2"
    read_manifest(store, "homefeed", "v2")
    assert load(store.uri, "homefeed", s3=store.s3).version == "v2"


def test_undoing_a_channels_first_move_never_deletes_a_later_pointer(store, candidate, monkeypatch):
    _publish(store, candidate(0)[0], "v1")
    real_swap, seen = store.swap, []

    def swap(key, data, token):
        new = real_swap(key, data, token)
        if key.endswith("/canary") and not seen:
            seen.append(key)
            store.put_bytes(bundle_prefix("homefeed", "v1") + ".pruning", b"{}")  # a prune marked v1
            assert _publish(store, candidate(1)[0], "v2", when=T0 + HOUR, channel="canary").promoted
        return new

    monkeypatch.setattr(store, "swap", swap)
    with pytest.raises(PublishError, match="homefeed/v1 is being pruned .*moved since by someone else"):
        rollback(store, "homefeed", "canary", "v1")
    pointer = read_channel(store, "homefeed", "canary")
    assert pointer is not None and pointer.version == "v2"


def test_a_channels_first_move_is_undone_when_nobody_moved_it(store, candidate, monkeypatch):
    _publish(store, candidate(0)[0], "v1")
    real_swap = store.swap

    def swap(key, data, token):
        new = real_swap(key, data, token)
        store.put_bytes(bundle_prefix("homefeed", "v1") + ".pruning", b"{}")
        return new

    monkeypatch.setattr(store, "swap", swap)
    with pytest.raises(PublishError, match="the channel was put back on nothing"):
        rollback(store, "homefeed", "canary", "v1")
    assert read_channel(store, "homefeed", "canary") is None


def test_bundle_files_are_durable_before_the_manifest(store, candidate, monkeypatch):
    if not store.is_local:
        pytest.skip("an S3 PUT is durable when it returns")
    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}").split(".tmp-")[0])
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    files = candidate(0)[0]
    _publish(store, files, "v1")
    prefix = os.path.realpath(store.local_path(bundle_prefix("homefeed", "v1")))
    before = synced[:synced.index(os.path.join(prefix, "manifest.json"))]
    layout = [target for target, _, _ in files.layout()]
    assert layout and [t for t in layout if os.path.join(prefix, t) not in before] == []
    assert {os.path.dirname(os.path.join(prefix, t)) for t in layout} <= set(before)  # their folders too


def test_prune_skips_entries_that_are_not_versions(store, candidate):
    _publish(store, candidate(0)[0], "v1")
    store.put_bytes("bundles/homefeed/.DS_Store", b"x")
    assert prune(store, "homefeed") == []
    assert _channel(store) == "v1" and store.exists("bundles/homefeed/.DS_Store")


def test_force_past_an_unreadable_champion_says_so(store, candidate):
    _publish(store, candidate(0)[0], "v1")
    store.put_bytes(bundle_prefix("homefeed", "v1") + "manifest.json", b"{not json")
    with pytest.raises(PublishError, match="the channel's version v1 has no readable manifest"):
        _publish(store, candidate(1)[0], "v2", when=T0 + HOUR)
    res = _publish(store, candidate(2)[0], "v3", when=T0 + HOUR, force=True)
    assert res.promoted and res.pointer.reason == "force" and res.manifest.blessing.forced
    assert res.manifest.blessing.notes[0].startswith("force=True: the champion v1's manifest is unreadable")


#: Every name publish.py exported (and ``promote``, ``Hook``) before the split, and the module that defines it now.
HOME = {
    "publish": publish_protocol, "publish_bundle": publish_protocol,
    "rollback": channel_moves, "promote": channel_moves,
    "PublishConfig": publish_types, "BundleFiles": publish_types, "PublishResult": publish_types,
    "PublishError": publish_types, "Hook": publish_types,
    "prune": retention, "PointerConflict": bundle_store,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(publish_module.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(publish_module, name) is getattr(module, name), name
        if name != "Hook":  # a type alias: no __module__ of its own
            assert module.__dict__[name].__module__ == module.__name__, name


def test_the_split_modules_log_under_the_facades_name():
    assert channel_moves.log is publish_protocol.log is logging.getLogger("pinrec.export.build.publish")
