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
