"""Export fixtures: stores on both backends (S3: the SeaweedFS ``s3_server`` of tests/support/s3.py), tiny bundles.

``store`` is parametrised: ``local`` (a tmp directory) and ``s3`` (a fresh prefix in the session's
SeaweedFS bucket; marked ``integration``).
"""
from __future__ import annotations

import uuid

import pytest

from pinrec.export.serving.store import Store
from tests.support.bundles import write_bundle_files
from tests.support.s3 import BUCKET


@pytest.fixture()
def _private_tmp(tmp_path, monkeypatch):
    """The loader's default download cache lives under the temp dir: one per test."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path, _private_tmp) -> Store:
    """An empty bundle store: a local directory, or a fresh prefix on the S3 server."""
    if request.param == "local":
        return Store(str(tmp_path / "store"))
    server = request.getfixturevalue("s3_server")
    return Store(f"s3://{BUCKET}/{uuid.uuid4().hex}", server.options)


@pytest.fixture()
def candidate(tmp_path):
    """``candidate(seed)`` -> (BundleFiles, vectors, W) of a fresh tiny bundle."""
    def make(seed: int = 0, **kwargs):
        return write_bundle_files(tmp_path / f"candidate_{seed}", seed=seed, **kwargs)
    return make
