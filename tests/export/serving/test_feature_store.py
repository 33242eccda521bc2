"""The facade: every public name of the feature store still imports from
``pinrec.export.serving.feature_store``, as the very object its own module defines; base install only."""
from __future__ import annotations

import subprocess
import sys

from pinrec.export.serving import (
    feature_snapshot,
    feature_store,
    redis_format,
    redis_store,
    snapshot_meta,
    view_snapshot,
)

#: Every public name feature_store.py defined before the split, and the module that defines it now.
HOME = {
    "META_KEY": snapshot_meta, "SnapshotError": snapshot_meta, "SnapshotMeta": snapshot_meta,
    "snapshot_file_name": snapshot_meta, "to_micros": snapshot_meta, "with_meta": snapshot_meta,
    "ViewSnapshot": view_snapshot, "FeatureSnapshot": feature_snapshot,
    "RedisConfig": redis_format, "encode_rows": redis_format, "redis_generation_pattern": redis_format,
    "redis_key": redis_format, "redis_meta": redis_format, "redis_meta_key": redis_format,
    "RedisFeatureStore": redis_store,
}


def test_every_public_name_imports_from_the_facade_as_the_same_object():
    assert sorted(feature_store.__all__) == sorted(HOME)
    for name, module in HOME.items():
        assert getattr(feature_store, name) is getattr(module, name), name
        if callable(module.__dict__[name]):
            assert module.__dict__[name].__module__ == module.__name__, name


def test_imports_with_the_base_install_only():
    code = ("import sys, pinrec.export.serving.feature_store\n"
            "heavy = {'torch', 'pyspark', 'pandas', 'mlflow', 'redis', 'onnx', 'boto3'}\n"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
