"""The serving loader: load, verify, refuse, refresh; on a local store and on S3; and the facade: every
public name of ``pinrec.export.serving.loader`` as the object its own module defines."""
import dataclasses
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import faiss
import numpy as np
import onnxruntime as ort
import pytest

from pinrec.export.build.blessing import BlessingConfig
from pinrec.export.build.publish import prune, publish, rollback
from pinrec.export.serving import bundle_fetch, bundle_loader, bundle_open
from pinrec.export.serving import loader as loader_module
from pinrec.export.serving.loader import BundleError, BundleUnavailable, Loader, load
from pinrec.export.serving.store import Store, file_digest, read_channel, read_manifest
from pinrec.schemas.manifest import bundle_prefix
from tests.support.bundles import LINEAGE, T0, metrics
from tests.support.serving import BLOCKER

GATE = BlessingConfig(min_recall=0.1, min_auc=0.55)


def _publish(store, files, version, recall=0.30):
    return publish(store, "homefeed", files, metrics(recall=recall), LINEAGE, version=version, now=T0, blessing=GATE)


def _open(store, **kwargs):
    return load(store.uri, "homefeed", s3=store.s3, **kwargs)


def test_load_opens_every_part(store, candidate):
    files, xb, w = candidate(0)
    _publish(store, files, "v1")
    bundle = _open(store)
    assert (bundle.name, bundle.version, len(bundle.shards), bundle.ntotal) == ("homefeed", "v1", 2, 100)
    assert bundle.index_meta == {"dim": 8, "metric": "ip", "shards": ["shard_000.faiss", "shard_001.faiss"]}
    assert bundle.encoder == {"features": ["a", "b", "c", "d"], "seed": 0}
    q = xb[:3] + 0.01
    exact = faiss.IndexFlatIP(8)
    exact.add(xb)
    want_d, want_i = exact.search(q, 5)
    got = [s.search(q, 5) for s in bundle.shards]  # merge the shards' top-5 by score
    dists = np.concatenate([got[0][0], got[1][0]], axis=1)
    ids = np.concatenate([got[0][1], got[1][1] + bundle.shards[0].ntotal], axis=1)
    order = np.argsort(-dists, axis=1)[:, :5]
    np.testing.assert_array_equal(np.take_along_axis(ids, order, 1), want_i)
    np.testing.assert_allclose(np.take_along_axis(dists, order, 1), want_d, rtol=1e-6)
    x = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
    (p,) = bundle.ranker.run(None, {"x": x})
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(x @ w))), rtol=1e-5)
    assert bundle.pins.num_rows == 20 and bundle.pins.column("pin_id")[3].as_py() == 3
    assert bundle.pins.column("nsfw").to_pylist()[:8] == [True] + [False] * 6 + [True]
    assert repr(bundle) == "Bundle(homefeed/v1, shards=2, vectors=100, pins=20, blessed=True)"
    if not store.is_local:  # downloaded into the cache (per store, per manifest), not read in place
        sha = hashlib.sha256(read_manifest(store, "homefeed", "v1")[1]).hexdigest()
        assert bundle.root == os.path.join(tempfile.gettempdir(), "pinrec-bundles", store.identity, "homefeed",
                                           f"v1.{sha[:16]}")
        assert os.path.isfile(os.path.join(bundle.root, "index", "shard_000.faiss"))


def test_shards_are_memory_mapped(store, candidate, monkeypatch):
    _publish(store, candidate(0)[0], "v1")
    flags = []
    real = faiss.read_index
    monkeypatch.setattr(bundle_open.faiss, "read_index", lambda path, f=0: flags.append(f) or real(path, f))
    _open(store)
    assert flags == [faiss.IO_FLAG_MMAP_IFC] * 2


def test_ivf_shards_open(store, candidate):
    files, xb, _ = candidate(0, factory="IVF4,Flat")
    _publish(store, files, "v1")
    shards = _open(store).shards
    assert [faiss.extract_index_ivf(s).nlist for s in shards] == [4, 4]
    assert sum(s.ntotal for s in shards) == 100
    shards[0].nprobe = 4
    assert shards[0].search(xb[:1], 1)[1][0, 0] == int(np.argmax(xb[:50] @ xb[0]))


def test_load_by_version_and_missing_things(store, candidate):
    _publish(store, candidate(0)[0], "v1")
    _publish(store, candidate(1)[0], "v2", recall=0.05)  # rejected: stored, not served
    assert _open(store).version == "v1"
    unblessed = _open(store, version="v2")
    assert unblessed.version == "v2" and not unblessed.manifest.blessing.blessed
    with pytest.raises(BundleError, match=r"channel homefeed/canary does not exist in .*: nothing published yet "
                                          r"\(`pinrec publish bundle` publishes one\)"):
        _open(store, channel="canary")
    with pytest.raises(BundleError, match="incomplete or not a bundle"):
        _open(store, version="v9")
    with pytest.raises(BundleError, match="not a valid name"):
        _open(store, version="../v1")
    if store.is_local:  # a mistyped local path is named as such, not as an empty channel
        with pytest.raises(BundleError, match=r"bundle store .*/no-such-store does not exist: nothing was ever "
                                              r"published there \(`pinrec publish bundle` publishes one\), or the "
                                              r"store URI is mistyped"):
            load(store.root + "/no-such-store", "homefeed")


def _tamper_file(store, version, path, edit):
    key = bundle_prefix("homefeed", version) + path
    store.put_bytes(key, edit(store.get_bytes(key)))


def _tamper_manifest(store, version, edit):
    def change(raw):
        data = json.loads(raw)
        edit(data)
        return json.dumps(data).encode()
    _tamper_file(store, version, "manifest.json", change)


def _flip(raw: bytes) -> bytes:
    i = len(raw) - 5  # inside the vectors of the flat index
    return raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:]


def _shard_entry(data):
    return next(f for f in data["files"] if f["path"] == "index/shard_001.faiss")


TAMPERING = {
    "corrupt shard": (lambda s, v: _tamper_file(s, v, "index/shard_001.faiss", _flip),
                      "shard_001.faiss sha256 .* does not match"),
    "grown shard": (lambda s, v: _tamper_file(s, v, "index/shard_001.faiss", lambda b: b + b"\0"),
                    r"shard_001.faiss has \d+ bytes, the manifest says"),
    "truncated manifest": (lambda s, v: _tamper_file(s, v, "manifest.json", lambda b: b[: len(b) // 2]),
                           "not valid JSON"),
    "deleted file": (lambda s, v: s.delete(bundle_prefix("homefeed", v) + "ranker/ranker.onnx"),
                     "ranker/ranker.onnx is missing"),
    "tampered checksum": (lambda s, v: _tamper_manifest(s, v, lambda d: _shard_entry(d).update(sha256="0" * 64)),
                          "does not hash to the sha256 recorded by channel"),
    "dot-dot path": (lambda s, v: _tamper_manifest(s, v, lambda d: _shard_entry(d).update(path="../v1/x.faiss")),
                     "unsafe"),
    "absolute path": (lambda s, v: _tamper_manifest(s, v, lambda d: _shard_entry(d).update(path="/etc/passwd")),
                      "unsafe"),
    "future format": (lambda s, v: _tamper_manifest(s, v, lambda d: d.update(format_version=2)),
                      "format_version 2 is not supported"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_refresh_refuses_a_bad_bundle_and_keeps_serving(store, candidate, case):
    files, xb, _ = candidate(0)
    _publish(store, files, "v1")
    loader = Loader(store.uri, "homefeed", s3=store.s3)
    assert loader.refresh() is False  # nothing new
    _publish(store, candidate(1)[0], "v2", recall=0.31)
    tamper, message = TAMPERING[case]
    tamper(store, "v2")
    with pytest.raises(BundleError, match=message):
        loader.refresh()
    assert loader.version == "v1" and loader.failed_refreshes == 1 and isinstance(loader.last_error, BundleError)
    assert loader.bundle.shards[0].search(xb[:1], 1)[1][0, 0] == int(np.argmax(xb[:50] @ xb[0]))
    with pytest.raises(BundleError, match=message.replace("does not hash to the sha256 recorded by channel",
                                                          "sha256 .* does not match")):
        _open(store, version="v2")  # by version there is no pointer hash: the file checksum catches it


def test_an_unreadable_store_or_cache_is_bundle_unavailable(store, candidate, tmp_path, monkeypatch):
    """What the store or the local disk raises reaches the caller as a BundleError naming the store
    and what to check, so a refresh keeps serving (its contract); the next refresh recovers."""
    _publish(store, candidate(0)[0], "v1")
    loader = Loader(store.uri, "homefeed", s3=store.s3, cache_dir=str(tmp_path / "cache"))
    _publish(store, candidate(1)[0], "v2")

    def denied(self, key):
        raise OSError(f"When reading information for key '{key}': AWS Error ACCESS_DENIED during HeadObject")

    monkeypatch.setattr(Store, "get_bytes", denied)
    with pytest.raises(BundleUnavailable, match=r"cannot read channel homefeed/prod from Store\(.*ACCESS_DENIED"):
        loader.refresh()
    with pytest.raises(BundleUnavailable, match="cannot read homefeed/v2 from"):
        _open(store, version="v2")
    assert (loader.version, loader.failed_refreshes) == ("v1", 1)
    monkeypatch.undo()
    if not store.is_local:  # downloads go to the cache: one under a plain file cannot be made
        (tmp_path / "plain").write_text("x")
        with pytest.raises(BundleUnavailable, match=r"download cache .*plain.* cannot be written .*cache_dir="):
            _open(store, cache_dir=str(tmp_path / "plain" / "cache"))
    assert loader.refresh() is True and loader.version == "v2"


@pytest.mark.integration
def test_wrong_s3_credentials_are_named(s3_server, candidate):
    store = Store(f"s3://pinrec/creds-{os.getpid()}", s3_server.options)
    _publish(store, candidate(0)[0], "v1")
    wrong = dataclasses.replace(s3_server.options, secret_key="not-the-secret")
    with pytest.raises(BundleUnavailable, match="access denied: check the S3 credentials"):
        load(store.uri, "homefeed", s3=wrong)


def test_refresh_switches_atomically(store, candidate):
    _publish(store, candidate(0)[0], "v1")
    loader = Loader(store.uri, "homefeed", s3=store.s3)
    old = loader.bundle
    _publish(store, candidate(1)[0], "v2", recall=0.31)
    assert loader.refresh() is True
    assert loader.version == "v2" and loader.bundle.encoder["seed"] == 1
    assert old.version == "v1" and old.shards[0].ntotal == 50  # a request holding the old bundle still works
    assert repr(loader).endswith("homefeed/prod -> v2)")


def test_refresh_switches_only_once_every_check_passes(store, candidate, caplog):
    _publish(store, candidate(0)[0], "v1")
    seen = []

    def check(bundle):
        seen.append(bundle.version)
        if bundle.encoder["seed"] == 1:
            raise ValueError("seed 1 cannot serve")

    loader = Loader(store.uri, "homefeed", s3=store.s3, check=check)
    assert seen == ["v1"] and (loader.failed_refreshes, loader.last_error) == (0, None)  # the first bundle too
    _publish(store, candidate(1)[0], "v2", recall=0.31)
    for attempt in (1, 2):
        with pytest.raises(BundleError, match=r"refusing homefeed/v2: it cannot serve \(ValueError: seed 1 cannot "
                                              r"serve\)") as raised:
            loader.refresh()
        assert loader.version == "v1" and loader.bundle.encoder["seed"] == 0
        assert loader.failed_refreshes == attempt and loader.last_error is raised.value
        assert isinstance(raised.value.__cause__, ValueError) == (attempt == 1)
    assert seen == ["v1", "v2"]  # checked once: not loaded again while the channel points to it
    assert "refresh failed, still serving v1" in caplog.text
    _publish(store, candidate(2)[0], "v3", recall=0.32)
    assert loader.refresh() is True and loader.version == "v3" and seen == ["v1", "v2", "v3"]
    with pytest.raises(ValueError, match="refused"):  # a check added later runs on the serving bundle at once
        loader.add_check(lambda bundle: (_ for _ in ()).throw(ValueError(f"{bundle.version} refused")))
    assert loader.refresh() is False and loader.failed_refreshes == 2


def test_a_broken_cache_copy_is_replaced_by_a_new_one_beside_it(store, candidate):
    """The damaged copy may still be open in a process: it is left alone, a fresh one is downloaded."""
    if store.is_local:
        pytest.skip("a local store is read in place; there is no cache")
    _publish(store, candidate(0)[0], "v1")
    first = _open(store)
    shard = os.path.join(first.root, "index", "shard_000.faiss")
    os.chmod(shard, 0o644)  # what it takes to damage it: the cache's files are read-only
    with open(shard, "r+b") as f:
        f.write(b"\0\0\0\0")
    damaged = Path(shard).read_bytes()
    again = _open(store)
    assert again.root != first.root and again.ntotal == 100
    assert os.path.dirname(again.root) == os.path.dirname(first.root)
    assert Path(shard).read_bytes() == damaged  # never rewritten under a reader
    want = read_manifest(store, "homefeed", "v1")[0].of_role("index_shard")[0].sha256
    assert file_digest(os.path.join(again.root, "index", "shard_000.faiss"))[1] == want
    assert _open(store).root == again.root  # the good copy is found; nothing is downloaded a third time
    assert len(os.listdir(os.path.dirname(first.root))) == 2


def test_the_cache_is_per_store_and_read_only(store, candidate, tmp_path):
    """homefeed/v1 from store A, then a different homefeed/v1 from store B, into one cache: A's
    files stay as they were, and A's ranker reopened from disk (as Recommender does) scores as before."""
    if store.is_local:
        pytest.skip("a local store is read in place; there is no cache")
    other = Store(f"{store.uri}-b", store.s3)
    _publish(store, candidate(0)[0], "v1")
    _publish(other, candidate(1)[0], "v1")
    cache = str(tmp_path / "cache")
    a = load(store.uri, "homefeed", s3=store.s3, cache_dir=cache)
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    (scores,) = a.ranker.run(None, {"x": x})
    before = {e.path: (Path(a.root, e.path).read_bytes(), os.stat(Path(a.root, e.path)).st_ino)
              for e in a.manifest.files}
    b = load(other.uri, "homefeed", s3=other.s3, cache_dir=cache)
    assert (a.encoder["seed"], b.encoder["seed"]) == (0, 1) and a.root != b.root
    assert {e.path: (Path(a.root, e.path).read_bytes(), os.stat(Path(a.root, e.path)).st_ino)
            for e in a.manifest.files} == before
    reopened = ort.InferenceSession(os.path.join(a.root, "ranker", "ranker.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(reopened.run(None, {"x": x})[0], scores)
    for bundle in (a, b):
        for folder, dirs, files in os.walk(bundle.root):
            assert os.stat(folder).st_mode & 0o777 == 0o555, folder
            assert [os.stat(os.path.join(folder, f)).st_mode & 0o777 for f in files] == [0o444] * len(files)


DEEP = b"[" * 200_000 + b"]" * 200_000


def _pointer_edit(store, edit):
    data = json.loads(store.get_bytes("channels/homefeed/prod"))
    edit(data)
    store.put_bytes("channels/homefeed/prod", json.dumps(data).encode())


def _manifest_key(version="v1"):
    return bundle_prefix("homefeed", version) + "manifest.json"


BAD_BUNDLES = {  # (break it, how to load it, what the refusal names)
    "deep manifest": (lambda s: s.put_bytes(_manifest_key(), DEEP), {"version": "v1"}, "nested too deeply"),
    "deep pointer": (lambda s: s.put_bytes("channels/homefeed/prod", DEEP), {}, "nested too deeply"),
    "pointer is a folder": (lambda s: (s.delete("channels/homefeed/prod"),
                                       s.put_bytes("channels/homefeed/prod/x", b"{}")), {},
                            "channels/homefeed/prod is a folder, not a channel pointer"),
    "pointer of another bundle": (lambda s: _pointer_edit(s, lambda d: d.update(name="other")), {},
                                  "channels/homefeed/prod holds the pointer of other/prod"),
    "pointer of another channel": (lambda s: s.put_bytes("channels/homefeed/canary",
                                                         s.get_bytes("channels/homefeed/prod")),
                                   {"channel": "canary"}, "channels/homefeed/canary holds the pointer of homefeed/prod"),
    "duplicate manifest key": (lambda s: s.put_bytes(_manifest_key(), b'{"format_version": 1, ' +
                                                     s.get_bytes(_manifest_key())[1:]),
                               {"version": "v1"}, "duplicate key 'format_version'"),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_manifests_and_pointers_are_refused_by_name(store, candidate, case):
    _publish(store, candidate(0)[0], "v1")
    breakit, how, message = BAD_BUNDLES[case]
    breakit(store)
    with pytest.raises(BundleError, match=message):
        _open(store, **how)


def test_a_version_folder_linked_to_outside_the_store_is_refused(store, candidate, tmp_path):
    if not store.is_local:
        pytest.skip("S3 has no symlinks")
    _publish(store, candidate(0)[0], "v1")
    folder = store.local_path(bundle_prefix("homefeed", "v1"))
    outside = tmp_path / "elsewhere" / "v1"
    shutil.copytree(folder, outside)
    shutil.rmtree(folder)
    os.symlink(outside, folder)
    for how in ({}, {"version": "v1"}):
        with pytest.raises(BundleError, match="bundles/homefeed/v1 resolves outside the store"):
            _open(store, **how)


def test_symlink_escaping_the_bundle_is_refused(store, candidate, tmp_path):
    if not store.is_local:
        pytest.skip("S3 has no symlinks")
    _publish(store, candidate(0)[0], "v1")
    target = store.local_path(bundle_prefix("homefeed", "v1") + "ranker/encoder.json")
    outside = tmp_path / "outside.json"
    outside.write_bytes(Path(target).read_bytes())
    os.remove(target)
    os.symlink(outside, target)
    with pytest.raises(BundleError, match="resolves outside the bundle"):
        _open(store)


def test_nothing_is_unpickled(store, candidate, monkeypatch):
    _publish(store, candidate(0)[0], "v1")

    def refuse(*args, **kwargs):
        raise AssertionError("the loader unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    assert _open(store).version == "v1"


def test_loader_needs_only_the_base_install(store, candidate, tmp_path):
    """Import and use the loader with Spark, torch, MLflow, Airflow, onnx, boto3 and pandas blocked."""
    _publish(store, candidate(0)[0], "v1")
    script = BLOCKER + textwrap.dedent(f"""
        import os
        from pinrec.export.serving.loader import Loader
        from pinrec.export.serving.store import S3Options
        s3 = None
        if os.environ.get("T_ENDPOINT"):
            s3 = S3Options(endpoint_url=os.environ["T_ENDPOINT"], access_key=os.environ["T_KEY"],
                           secret_key=os.environ["T_SECRET"])
        loader = Loader({store.uri!r}, "homefeed", s3=s3, cache_dir={str(tmp_path / "cache")!r})
        print(loader.version, loader.bundle.ntotal, sorted(m for m in BLOCKED if m in sys.modules))
    """)
    env = dict(os.environ)
    if store.is_s3:
        env.update(T_ENDPOINT=store.s3.endpoint_url, T_KEY=store.s3.access_key, T_SECRET=store.s3.secret_key)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "v1 100 []"


SERVER = """
import hashlib, json, os, sys, time
import numpy as np
import onnxruntime as ort
from pinrec.export.serving.loader import BundleError, Loader
from pinrec.export.serving.store import S3Options

s3 = S3Options(endpoint_url=os.environ["T_ENDPOINT"], access_key=os.environ["T_KEY"],
               secret_key=os.environ["T_SECRET"])
uri, cache, stop, ready = sys.argv[1:5]
X = np.array([[0.5, -1.0, 2.0, 0.25]], np.float32)
loader = Loader(uri, "homefeed", s3=s3, cache_dir=cache)

def answer(bundle):
    # every file on disk as the manifest says, and the ranker reopened from disk agrees with the one in memory
    bad = [e.path for e in bundle.manifest.files
           if hashlib.sha256(open(os.path.join(bundle.root, e.path), "rb").read()).hexdigest() != e.sha256]
    disk = ort.InferenceSession(os.path.join(bundle.root, "ranker", "ranker.onnx"), providers=["CPUExecutionProvider"])
    (mem,) = bundle.ranker.run(None, {"x": X})
    return {"version": bundle.version, "seed": bundle.encoder["seed"], "score": float(mem[0, 0]),
            "disk_score": float(disk.run(None, {"x": X})[0][0, 0]), "bad_files": bad}

open(ready, "w").close()
refused, deadline = 0, time.monotonic() + 90
while True:
    last = os.path.exists(stop) or time.monotonic() > deadline
    try:
        loader.refresh()
    except BundleError:  # the version went (pruned, rolled back) while it was being loaded: keep serving
        refused += 1
    print(json.dumps(answer(loader.bundle)), flush=True)
    if last:
        break
    time.sleep(0.02)
print(json.dumps({"refused": refused}), flush=True)
"""


@pytest.mark.integration
def test_two_servers_sharing_a_cache_survive_publish_rollback_and_prune(s3_server, candidate, tmp_path):
    """Two serving processes share one download cache and follow the channel while the test publishes,
    rolls back and prunes: neither crashes, and every answer comes from a published version whose
    files on disk are exactly the manifest's."""
    store = Store(f"s3://pinrec/{tmp_path.name}-{os.getpid()}", s3_server.options)
    rounds = 8
    made = {seed: candidate(seed) for seed in range(rounds + 1)}
    seed_of = {}

    def publish_round(i):
        version = f"v{i:02d}"
        publish(store, "homefeed", made[i][0], metrics(recall=0.30 + 0.005 * i), LINEAGE, version=version,
                now=T0, blessing=GATE)
        seed_of[version] = i

    publish_round(0)
    cache, stop = tmp_path / "cache", tmp_path / "stop"
    env = dict(os.environ, T_ENDPOINT=store.s3.endpoint_url, T_KEY=store.s3.access_key,
               T_SECRET=store.s3.secret_key)
    procs = [subprocess.Popen([sys.executable, "-c", SERVER, store.uri, str(cache), str(stop), str(tmp_path / f"r{i}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"r{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "servers did not start"
            time.sleep(0.1)
        for i in range(1, rounds + 1):
            publish_round(i)
            time.sleep(0.3)
            if i % 2 == 0:
                rollback(store, "homefeed", "prod", f"v{i - 1:02d}")
                time.sleep(0.3)
            prune(store, "homefeed", keep_blessed=2, keep_unblessed=0)
            time.sleep(0.2)
        final = read_channel(store, "homefeed", "prod").version
        stop.touch()
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        stop.touch()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
        lines = [json.loads(line) for line in out.splitlines()]
        answers, summary = lines[:-1], lines[-1]
        assert answers and "refused" in summary
        for a in answers:
            assert a["version"] in seed_of and a["seed"] == seed_of[a["version"]], a
            assert a["bad_files"] == [] and a["disk_score"] == a["score"], a
            w = made[a["seed"]][2]
            x = np.array([[0.5, -1.0, 2.0, 0.25]], np.float32)
            np.testing.assert_allclose(a["score"], float(1 / (1 + np.exp(-(x @ w)[0, 0]))), rtol=1e-5)
        assert answers[-1]["version"] == final
        assert len({a["version"] for a in answers}) >= 2  # it did follow the channel



def test_refresh_follows_a_version_name_published_again(store, candidate):
    """Prune frees a version's name and a later publish may reuse it: the loader compares the manifest's
    sha256 too, so it loads the new bundle instead of serving the old one under the same name."""
    _publish(store, candidate(0)[0], "v1")
    loader = Loader(store.uri, "homefeed", s3=store.s3)
    assert loader.bundle.encoder["seed"] == 0
    _publish(store, candidate(1)[0], "v2")
    assert prune(store, "homefeed", keep_blessed=1, keep_unblessed=0) == []  # v1 is v2's previous: kept
    _publish(store, candidate(3)[0], "v3")  # now v1 is neither pointed to nor anyone's previous
    assert prune(store, "homefeed", keep_blessed=1, keep_unblessed=0) == ["v1"]
    _publish(store, candidate(2)[0], "v1")  # the name is free again
    assert read_channel(store, "homefeed", "prod").version == "v1"
    assert loader.refresh() is True
    assert loader.bundle.version == "v1" and loader.bundle.encoder["seed"] == 2
    assert loader.refresh() is False


#: Every public name loader.py defined before the split, and the module that defines it now.
HOME = {
    "MMAP_FLAGS": bundle_open, "Bundle": bundle_open, "BundleError": bundle_open, "BundleUnavailable": bundle_open,
    "resolve": bundle_fetch, "load": bundle_loader, "Loader": bundle_loader,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(loader_module.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(loader_module, name) is module.__dict__[name], name
        if callable(module.__dict__[name]):
            assert module.__dict__[name].__module__ == module.__name__, name


def test_the_facade_imports_with_the_base_install_only():
    code = ("import sys, pinrec.export.serving.loader\n"
            "heavy = {'torch', 'pyspark', 'pandas', 'mlflow', 'onnx', 'boto3', 'botocore'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
