import dataclasses
import datetime as dt
import json
import subprocess
import sys

import pytest

from pinrec.schemas import bundle_manifest, bundle_names, manifest_parts
from pinrec.schemas import manifest as manifest_module
from pinrec.schemas.manifest import (
    FORMAT_VERSION,
    Blessing,
    ChannelPointer,
    FileEntry,
    Lineage,
    Manifest,
    ManifestError,
    Metrics,
    bundle_prefix,
    channel_key,
    check_channel,
    check_relpath,
    is_channel_name,
)

SHA = "ab" * 32


def _manifest(**changes) -> Manifest:
    files = (FileEntry("index/index.json", 10, SHA, "index_meta"), FileEntry("index/shard_000.faiss", 4096, SHA,
                                                                            "index_shard"),
             FileEntry("index/shard_001.faiss", 4000, "cd" * 32, "index_shard"),
             FileEntry("ranker/ranker.onnx", 300, SHA, "ranker"), FileEntry("ranker/encoder.json", 50, SHA, "encoder"),
             FileEntry("pins/pins.parquet", 900, SHA, "pins"))
    base = {"name": "homefeed", "version": "20260110T120000Z-abc",
            "created_at": dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC),
            "lineage": Lineage("deadbeef", "c0ffee", {"ranker": "run1"}, {"impressions": 3, "pins": 0}),
            "metrics": Metrics(k=100, recall_at_k=0.31, latency_p50_ms=2.5, latency_p99_ms=9,
                               auc={"closeup": 0.71, "save": 0.68}, calibration_error={"closeup": 0.02, "save": 0.03}),
            "blessing": Blessing(False, ("recall@100 0.3100 < baseline 0.3500 - 0.0100",), "v0"), "files": files}
    base.update(changes)
    return Manifest(**base)


def test_round_trip_is_exact():
    m = _manifest()
    text = m.to_json()
    back = Manifest.from_json(text)
    assert back == m
    assert back.to_json() == text
    data = json.loads(text)
    assert data["format_version"] == FORMAT_VERSION == 1
    assert data["created_at"] == "2026-01-10T12:00:00+00:00"
    assert data["lineage"]["delta_versions"] == {"impressions": 3, "pins": 0}
    assert back.metrics.latency_p99_ms == 9.0 and isinstance(back.metrics.latency_p99_ms, float)
    assert [f.path for f in back.of_role("index_shard")] == ["index/shard_000.faiss", "index/shard_001.faiss"]
    assert back.total_bytes == 10 + 4096 + 4000 + 300 + 50 + 900


def test_created_at_is_normalised_to_utc_and_must_be_aware():
    paris = dt.timezone(dt.timedelta(hours=1))
    assert _manifest(created_at=dt.datetime(2026, 1, 10, 13, tzinfo=paris)).created_at == \
        dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC)
    with pytest.raises(ManifestError, match="timezone-aware"):
        _manifest(created_at=dt.datetime(2026, 1, 10, 12))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(extra=1), r"unknown keys \['extra'\]"),
    (lambda d: d.pop("lineage"), r"missing keys \['lineage'\]"),
    (lambda d: d["files"][0].update(size="10"), r"manifest.files\[0\].size: expected int, got str"),
    (lambda d: d["files"][0].update(size=True), "expected int, got bool"),
    (lambda d: d["blessing"].update(blessed=1), "expected bool, got int"),
    (lambda d: d.update(created_at="yesterday"), "ISO-8601"),
    (lambda d: d.update(created_at="0001-01-01T00:00:00+01:00"), "out of the representable range"),
    (lambda d: d["metrics"].update(recall_at_k=10**400), "too large for a float"),
    (lambda d: d.update(format_version=2), "format_version 2 is not supported"),
    (lambda d: d.pop("format_version"), "format_version None is not supported"),
    (lambda d: d["files"][1].update(path="../../etc/passwd"), "unsafe"),
    (lambda d: d["files"][1].update(path="/etc/passwd"), "unsafe"),
    (lambda d: d["files"][1].update(sha256="AB" * 32), "64 lowercase hex"),
    (lambda d: d["files"][1].update(size=-1), "size must be >= 0"),
    (lambda d: d["files"][1].update(role="script"), "unknown role"),
    (lambda d: d["files"].pop(3), "role 'ranker'"),
    (lambda d: d["files"].append(dict(d["files"][0], role="extra")), "lists a path twice"),
    (lambda d: d["metrics"].update(recall_at_k=1.5), "recall_at_k must be <= 1"),
    (lambda d: d["metrics"]["auc"].pop("save"), "differ"),
    (lambda d: d["blessing"].update(reasons=[]), "needs at least one reason"),
])
def test_from_json_refuses_bad_manifests(edit, message):
    data = json.loads(_manifest().to_json())
    edit(data)
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(data))


def test_from_json_refuses_truncated_and_non_object_input():
    text = _manifest().to_json()
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json(text[: len(text) // 2])
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json(b"\xff\xfe")
    with pytest.raises(ManifestError, match="expected an object"):
        Manifest.from_json("[1, 2]")


@pytest.mark.parametrize("path", ["../x", "a/../b", "/abs", "a//b", "./a", "a/", "a\\b", "C:x", "", "a b",
                                  "index/\x00", ".."])
def test_unsafe_paths_are_refused(path):
    with pytest.raises(ManifestError, match="unsafe|non-empty"):
        check_relpath(path)


def test_safe_paths_pass():
    assert check_relpath("index/shard_000.faiss") == "index/shard_000.faiss"
    assert check_relpath(".hidden/x-1.json") == ".hidden/x-1.json"


def test_layout_keys_validate_names():
    assert bundle_prefix("homefeed", "v1") == "bundles/homefeed/v1/"
    assert channel_key("homefeed", "prod") == "channels/homefeed/prod"
    for bad in ("../prod", "a/b", "", ".x"):
        with pytest.raises(ManifestError, match="not a valid name"):
            channel_key("homefeed", bad)


def test_blessed_verdict_has_no_reasons():
    with pytest.raises(ManifestError, match="no failure reasons"):
        Blessing(True, ("x",))
    assert Blessing(True).reasons == ()


def test_metrics_refuse_nan_and_negative():
    with pytest.raises(ManifestError, match="finite"):
        Metrics(k=10, recall_at_k=float("nan"), latency_p50_ms=1, latency_p99_ms=2)
    with pytest.raises(ManifestError, match="finite and >= 0"):
        Metrics(k=10, recall_at_k=0.2, latency_p50_ms=-1, latency_p99_ms=2)
    with pytest.raises(ManifestError, match="k must be an integer >= 1"):
        Metrics(k=0, recall_at_k=0.2, latency_p50_ms=1, latency_p99_ms=2)


@pytest.mark.parametrize("changes, message", [
    ({"k": 10.5}, r"metrics.k must be an integer >= 1, got 10.5"),
    ({"k": True}, r"metrics.k must be an integer >= 1, got True"),
    ({"recall_at_k": "abc"}, r"metrics.recall_at_k must be a number, got 'abc'"),
    ({"recall_at_k": "0.3"}, r"metrics.recall_at_k must be a number, got '0.3'"),
    ({"recall_at_k": None}, r"metrics.recall_at_k must be a number, got None"),
    ({"auc": {"save": True}}, r"metrics.auc\['save'\] must be a number, got True"),
    ({"funnel": [("a", 1.0)]}, r"metrics.funnel must be a mapping with string keys"),
])
def test_metrics_of_the_wrong_type_are_refused_naming_the_field(changes, message):
    """What publish writes must read back: a manifest with k=10.5 or a string recall was written and then
    refused by every loader (or a string was coerced, or a TypeError named nothing)."""
    kwargs = {"k": 10, "recall_at_k": 0.2, "latency_p50_ms": 1, "latency_p99_ms": 2, **changes}
    with pytest.raises(ManifestError, match=message):
        Metrics(**kwargs)


@pytest.mark.parametrize("changes, message", [
    ({"code_version": 123}, r"lineage.code_version must be a non-empty string, got 123"),
    ({"delta_versions": {"pins": 3.0}}, r"lineage.delta_versions values must be integers >= 0, got \{'pins': 3.0\}"),
    ({"delta_versions": {"pins": -1}}, r"integers >= 0"),
    ({"mlflow_run_ids": {"ranker": None}}, r"lineage.mlflow_run_ids values must be strings"),
])
def test_lineage_of_the_wrong_type_is_refused_naming_the_field(changes, message):
    with pytest.raises(ManifestError, match=message):
        Lineage(**{"code_version": "abc", "config_hash": "def", **changes})


def test_numpy_numbers_are_numbers():
    import numpy as np

    m = Metrics(k=np.int64(10), recall_at_k=np.float32(0.25), latency_p50_ms=1, latency_p99_ms=2,
                auc={"save": np.float64(0.7)}, calibration_error={"save": 0.01})
    assert (m.k, m.recall_at_k, m.auc) == (10, 0.25, {"save": 0.7}) and type(m.k) is int
    assert Lineage("a", "b", delta_versions={"pins": np.int64(3)}).delta_versions == {"pins": 3}


def test_channel_pointer_round_trip_and_checks():
    p = ChannelPointer("homefeed", "prod", "v2", SHA, dt.datetime(2026, 1, 10, tzinfo=dt.UTC), "rollback", "v1")
    assert ChannelPointer.from_json(p.to_json()) == p
    with pytest.raises(ManifestError, match="reason"):
        dataclasses.replace(p, reason="yolo")
    with pytest.raises(ManifestError, match="not a sha256"):
        dataclasses.replace(p, manifest_sha256="0")
    with pytest.raises(ManifestError, match="not valid JSON"):
        ChannelPointer.from_json(p.to_json()[:-3])
    early = json.loads(p.to_json())
    early["moved_at"] = "0001-01-01T00:00:00+01:00"
    with pytest.raises(ManifestError, match="moved_at .* out of the representable range"):
        ChannelPointer.from_json(json.dumps(early))


def test_schemas_import_with_the_base_install_only():
    code = ("import sys, pinrec.schemas.manifest, pinrec.schemas.catalog\n"
            "heavy = {'torch', 'pyspark', 'pandas', 'mlflow', 'airflow', 'onnx', 'boto3', 'great_expectations'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_drift_metrics_are_optional_and_round_trip():
    plain = _manifest()
    assert "drift" not in json.loads(plain.to_json())["metrics"]  # old readers still parse it
    drifted = _manifest(metrics=dataclasses.replace(plain.metrics, drift={"score_psi.closeup": 0.12,
                                                                         "feature_drift.user__saves_7d": 1}))
    data = json.loads(drifted.to_json())
    assert data["metrics"]["drift"] == {"score_psi.closeup": 0.12, "feature_drift.user__saves_7d": 1.0}
    assert Manifest.from_json(drifted.to_json()) == drifted
    with pytest.raises(ManifestError, match=r"drift\[score_psi.save\] must be finite and >= 0"):
        dataclasses.replace(plain.metrics, drift={"score_psi.save": float("nan")})


def test_funnel_metrics_and_blessing_notes_are_optional_and_round_trip():
    plain = _manifest()
    data = json.loads(plain.to_json())
    assert "funnel" not in data["metrics"] and "notes" not in data["blessing"]  # old readers still parse it
    funnel = {"candidates.merged.recall@500.saves": 0.4, "served.cosine": -0.25, "users": 12}
    replayed = _manifest(metrics=dataclasses.replace(plain.metrics, funnel=funnel),
                         blessing=dataclasses.replace(plain.blessing, notes=("funnel not compared: v1 has none",)))
    data = json.loads(replayed.to_json())
    assert data["metrics"]["funnel"] == {**funnel, "users": 12.0}  # a mean cosine may be negative
    assert data["blessing"]["notes"] == ["funnel not compared: v1 has none"]
    assert Manifest.from_json(replayed.to_json()) == replayed
    with pytest.raises(ManifestError, match=r"metrics.funnel values must be finite, got \{'served.hr@50': inf\}"):
        dataclasses.replace(plain.metrics, funnel={"served.hr@50": float("inf")})


def test_embedding_stability_is_optional_and_round_trips():
    plain = _manifest()
    assert "stability" not in json.loads(plain.to_json())["metrics"]
    moved = _manifest(metrics=dataclasses.replace(plain.metrics, stability={"overlap_at_10": 0.6,
                                                                            "procrustes_cosine": 0.9}))
    assert json.loads(moved.to_json())["metrics"]["stability"] == {"overlap_at_10": 0.6, "procrustes_cosine": 0.9}
    assert Manifest.from_json(moved.to_json()) == moved


@pytest.mark.parametrize("name", ["canary.lock", "exp.tmp-1", "prod.tmp-0123abcd", "a.lock"])
def test_channel_names_cannot_look_like_the_stores_own_files(name):
    """The store keeps ``<channel>.lock`` and ``<channel>.tmp-*`` files beside the pointers, and
    ``list_channels`` skips them: a channel may not have such a name, or prune would not see it."""
    assert not is_channel_name(name)
    with pytest.raises(ManifestError, match="reserved"):
        check_channel("channel", name)
    with pytest.raises(ManifestError, match="reserved"):
        channel_key("homefeed", name)
    with pytest.raises(ManifestError, match="reserved"):
        ChannelPointer("homefeed", name, "v1", SHA, dt.datetime(2026, 1, 10, tzinfo=dt.UTC), "publish")


def test_channel_name_rule():
    assert [n for n in ("prod", "canary-2", "exp.1", "lock", "x.locked", "tmp-1", "a.tmp") if is_channel_name(n)] == \
        ["prod", "canary-2", "exp.1", "lock", "x.locked", "tmp-1", "a.tmp"]
    assert [n for n in ("", ".x", "a/b", None, "a" * 129) if is_channel_name(n)] == []
    assert check_channel("channel", "prod") == "prod"


DEEP = "[" * 200_000 + "]" * 200_000


def test_deeply_nested_json_is_refused_clearly():
    with pytest.raises(ManifestError, match="manifest is nested too deeply"):
        Manifest.from_json(DEEP)
    with pytest.raises(ManifestError, match="channel pointer is nested too deeply"):
        ChannelPointer.from_json('{"name": ' + DEEP + "}")


def test_duplicate_json_keys_are_refused():
    text = _manifest().to_json()
    with pytest.raises(ManifestError, match="duplicate key 'format_version'"):
        Manifest.from_json('{"format_version": 1, ' + text[1:])
    doubled = text.replace('"blessed": false', '"blessed": false, "blessed": true')
    assert doubled != text
    with pytest.raises(ManifestError, match=r"duplicate key 'blessed'"):
        Manifest.from_json(doubled)
    p = ChannelPointer("homefeed", "prod", "v2", SHA, dt.datetime(2026, 1, 10, tzinfo=dt.UTC), "publish")
    with pytest.raises(ManifestError, match="duplicate key 'version'"):
        ChannelPointer.from_json('{"version": "v9", ' + p.to_json()[1:])


#: Every public name manifest.py defined before the split, and the module that defines it now.
HOME = {
    "MANIFEST_FILE": bundle_names, "ManifestError": bundle_names, "is_name": bundle_names,
    "check_name": bundle_names, "RESERVED_CHANNEL_SUFFIX": bundle_names, "RESERVED_CHANNEL_PART": bundle_names,
    "is_channel_name": bundle_names, "check_channel": bundle_names, "check_relpath": bundle_names,
    "bundle_prefix": bundle_names, "channel_key": bundle_names,
    "ROLES": manifest_parts, "PIN_COLUMNS": manifest_parts, "FileEntry": manifest_parts, "Metrics": manifest_parts,
    "Lineage": manifest_parts, "Blessing": manifest_parts,
    "FORMAT_VERSION": bundle_manifest, "Manifest": bundle_manifest, "ChannelPointer": bundle_manifest,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(manifest_module.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(manifest_module, name) is getattr(module, name), name
        if callable(module.__dict__[name]):
            assert module.__dict__[name].__module__ == module.__name__, name


def test_the_facade_imports_with_the_base_install_only():
    """The loader imports it: nothing outside the standard library (and pinrec) is loaded."""
    code = ("import sys\n"
            "before = set(sys.modules)\n"
            "import pinrec.schemas.manifest\n"
            "loaded = {m.split('.')[0] for m in set(sys.modules) - before}\n"
            "print(sorted(loaded - set(sys.stdlib_module_names) - {'pinrec'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
