"""Location and the checks of a lake folder's URI (jobs/io/lake.py)."""
from __future__ import annotations

import pytest

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.lake import Location, as_location, check_storage_uri


@pytest.mark.parametrize("uri", ["s3://lake/wh#2", "s3a://lake/wh?v=2", "s3://lake/w%20h", "file:///tmp/wh#2",
                                 "file:///tmp/w%20h"])
def test_a_uri_with_a_query_fragment_or_escape_is_refused(uri):
    with pytest.raises(ValueError, match=r"storage URI .* holds '[?#%]'"):
        check_storage_uri(uri)
    with pytest.raises(ValueError, match="holds"):  # a library caller's warehouse: every table would be lake/wh
        Catalog(None, uri)


@pytest.mark.parametrize("uri", ["s3://lake//landing", "s3a://lake/a/../b", "s3://lake/./b", "s3://lake/a//b/"])
def test_an_s3_uri_with_an_empty_or_dot_segment_is_refused(uri):
    with pytest.raises(ValueError, match="empty, '.' or '..' path segment"):
        as_location(uri)


def test_local_paths_and_plain_s3_uris_pass_and_keep_every_table_apart(tmp_path):
    for ok in ("s3://lake/wh/", "s3a://lake", "./var/warehouse", "../lake//wh", str(tmp_path / "a#b?c%d")):
        check_storage_uri(ok)
    catalog = Catalog(None, "s3://lake/wh")
    assert (catalog.path("pins"), catalog.path("users")) == ("s3a://lake/wh/pins", "s3a://lake/wh/users")
    local = as_location(tmp_path / "a#b")
    assert local.path == f"{tmp_path}/a#b"


def test_a_child_name_is_taken_literally_and_must_be_plain():
    child = Location("s3://lake/landing") / "odd#name?.csv"
    assert child.path == "lake/landing/odd#name?.csv"  # not cut at '#' / '?'
    assert child.spark == "s3a://lake/landing/odd#name?.csv"
    for bad in ("a//b", "./a", "a/..", ""):
        with pytest.raises(ValueError, match="not a relative name"):
            Location("s3://lake/landing") / bad


def test_spark_gets_a_local_location_as_an_absolute_file_uri(tmp_path, monkeypatch):
    # a bare path would be resolved against fs.defaultFS (HDFS on a YARN node)
    monkeypatch.chdir(tmp_path)
    assert Location("./var/landing").spark == f"file://{tmp_path}/var/landing"
    assert Location(f"file://{tmp_path}/wh").spark == f"file://{tmp_path}/wh"
    assert (Location(str(tmp_path / "a#b")) / "pins").spark == f"file://{tmp_path}/a#b/pins"  # not encoded
    assert Catalog(None, "./wh").path("pins") == f"file://{tmp_path}/wh/pins"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_s3_endpoint_is_named_in_seconds_not_a_jvm_trace():
    import time

    from pinrec.export.serving.store import S3Options
    from pinrec.jobs.io.lake import LakeUnreachableError, check_buckets

    s3 = S3Options(f"http://127.0.0.1:{_closed_port()}", access_key="a", secret_key="b")
    start = time.monotonic()
    with pytest.raises(LakeUnreachableError, match=r"^bucket 'lake' \(storage.landing, storage.warehouse\) on "
                                                   r"http://127.0.0.1:\d+ cannot be reached: .*connect.*Check "
                                                   r"storage.s3_endpoint_url \(else AWS_ENDPOINT_URL_S3 / "
                                                   r"AWS_ENDPOINT_URL\) and that the server runs \(keys: "
                                                   r"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"):
        check_buckets({"storage.landing": Location("s3://lake/landing", s3),
                       "storage.warehouse": Location("s3a://lake/warehouse", s3),
                       "storage.artifacts": Location("./var/artifacts")})
    assert time.monotonic() - start < 5


def test_the_cli_names_an_unreachable_lake_in_one_line(capsys):
    from pinrec.jobs.orchestration.cli import main

    port = _closed_port()
    code = main(["features", "--date", "2026-01-05", "--set", "storage.warehouse=s3://lake/wh",
                 "--set", f"storage.s3_endpoint_url=http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"pinrec features: bucket 'lake' (storage.warehouse) on http://127.0.0.1:{port} "
                                        "cannot be reached")
    assert "Traceback" not in err and "Py4J" not in err


@pytest.mark.integration
def test_a_missing_bucket_and_refused_keys_are_named_on_a_real_s3_server(s3_server):
    import dataclasses

    from pinrec.jobs.io.lake import LakeUnreachableError, check_buckets
    from tests.support.s3 import BUCKET

    s3 = s3_server.options
    check_buckets({"storage.warehouse": Location(f"s3a://{BUCKET}/wh", s3)})  # there: nothing raised
    with pytest.raises(LakeUnreachableError, match=rf"^bucket 'no-such-bucket' \(storage.landing\) on "
                                                   rf"{s3.endpoint_url} does not exist: create it, or correct the "
                                                   r"bucket of storage.landing or storage.s3_endpoint_url"):
        check_buckets({"storage.landing": Location("s3://no-such-bucket/landing", s3),
                       "storage.warehouse": Location(f"s3a://{BUCKET}/wh", s3)})
    wrong = dataclasses.replace(s3, secret_key="not-the-secret")
    with pytest.raises(LakeUnreachableError, match=rf"^bucket '{BUCKET}' \(storage.warehouse\) on .* refused access: "
                                                   r".*SIGNATURE_DOES_NOT_MATCH.*Check the keys in AWS_ACCESS_KEY_ID / "
                                                   r"AWS_SECRET_ACCESS_KEY") as caught:
        check_buckets({"storage.warehouse": Location(f"s3a://{BUCKET}/wh", wrong)})
    assert "not-the-secret" not in str(caught.value)
