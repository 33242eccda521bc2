"""The step cache's fingerprints: code closure, config digest, file digests."""
from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass

import pytest

from pinrec.jobs.io.fingerprint import (
    code_hash,
    config_digest,
    file_digest,
    fingerprint,
    module_closure,
)
from pinrec.jobs.io.lake import Location


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throwaway namespace ``fpt`` with a sub-package ``fpt.jobs`` (as pinrec maps its stages)."""
    root = tmp_path / "src"
    (root / "fpt" / "jobs" / "sub").mkdir(parents=True)
    (root / "fpt" / "jobs" / "__init__.py").write_text("")
    (root / "fpt" / "jobs" / "sub" / "__init__.py").write_text("")
    (root / "fpt" / "jobs" / "entry.py").write_text(
        "import json\nfrom .helper import f\n\ndef run():\n    from fpt.jobs.sub.late import g\n    return f() + g()\n")
    (root / "fpt" / "jobs" / "helper.py").write_text("def f():\n    return 1\n")
    (root / "fpt" / "jobs" / "sub" / "late.py").write_text("from fpt.jobs import helper\n\ndef g():\n    return 2\n")
    (root / "fpt" / "jobs" / "unrelated.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(root))
    yield root / "fpt" / "jobs"
    for name in [m for m in sys.modules if m == "fpt" or m.startswith("fpt.")]:
        del sys.modules[name]


def test_the_closure_follows_relative_absolute_and_in_function_imports_within_the_root(package):
    names = [name for name, _ in module_closure("fpt.jobs.entry", root="fpt")]
    assert names == ["fpt.jobs", "fpt.jobs.entry", "fpt.jobs.helper", "fpt.jobs.sub", "fpt.jobs.sub.late"]
    assert "fpt.jobs.entry" not in sys.modules  # found on disk, nothing imported


def test_editing_any_module_of_the_closure_changes_the_code_hash_and_others_do_not(package):
    before = code_hash("fpt.jobs.entry", root="fpt")
    (package / "unrelated.py").write_text("X = 2\n")
    assert code_hash("fpt.jobs.entry", root="fpt") == before
    late = package / "sub" / "late.py"
    late.write_text(late.read_text() + "\n# edited\n")
    os.utime(late, ns=(1, 1))  # even with an old mtime: the bytes are hashed
    assert code_hash("fpt.jobs.entry", root="fpt") != before


def test_a_package_imported_from_a_zip_has_the_same_closure_and_code_hash(package, tmp_path, monkeypatch):
    """As pinrec runs under spark-submit (``--py-files pinrec.zip``): sources read from the archive."""
    import shutil
    import zipfile

    on_disk = ([n for n, _ in module_closure("fpt.jobs.entry", root="fpt")], code_hash("fpt.jobs.entry", root="fpt"))
    archive = tmp_path / "fpt.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(package.rglob("*.py")):
            z.write(f, f"fpt/jobs/{f.relative_to(package).as_posix()}")
        z.writestr("fpt/", "")  # the namespace's folder entry: zipimport then finds the namespace
    shutil.rmtree(package.parent)
    for name in [m for m in sys.modules if m == "fpt" or m.startswith("fpt.")]:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(archive))
    closure = module_closure("fpt.jobs.entry", root="fpt")
    assert closure[0][1].startswith(str(archive) + os.sep)  # really read from the zip
    assert ([n for n, _ in closure], code_hash("fpt.jobs.entry", root="fpt")) == on_disk


def test_a_module_without_source_is_refused():
    with pytest.raises(ModuleNotFoundError, match="no Python source for module 'pinrec.jobs.nope'"):
        module_closure("pinrec.jobs.nope")


def test_the_real_jobs_closure_holds_their_imports():
    names = dict(module_closure("pinrec.jobs.features.features"))
    assert "pinrec.jobs.io.catalog" in names and "pinrec.schemas.features" in names
    assert "pinrec.jobs.ranking.ranker" not in names


@dataclass(frozen=True)
class _Section:
    a: int = 1
    days: tuple = (dt.date(2026, 1, 1),)


def test_config_digest_is_canonical_and_sensitive():
    assert config_digest({"x": _Section(), "y": [1, 2]}) == config_digest({"y": [1, 2], "x": _Section()})
    assert config_digest(_Section(a=2)) != config_digest(_Section())
    assert config_digest({1, 2}) == config_digest({2, 1})
    assert fingerprint("s", code="c", config=_Section(), inputs={"t": 3}) != \
        fingerprint("s", code="c", config=_Section(), inputs={"t": 4})
    assert fingerprint("s", code="c") != fingerprint("t", code="c")


def test_file_digest_is_the_content_locally(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert file_digest(Location(str(a))) == file_digest(Location(str(b))) == "md5:" + __import__("hashlib").md5(b"same").hexdigest()
    b.write_bytes(b"other")
    assert file_digest(Location(str(a))) != file_digest(Location(str(b)))


@pytest.mark.spark
@pytest.mark.integration
def test_file_digest_on_s3_is_the_etag_read_through_spark(spark, any_location):
    """On the SeaweedFS server the digest is the object's ETag (through s3a): equal for equal bytes,
    different for different bytes; without a Spark session it says what it needs."""
    from pinrec.jobs.io.spark import configure_s3a

    if not any_location.is_s3:
        pytest.skip("the local case is test_file_digest_is_the_content_locally")
    configure_s3a(spark, any_location.s3)
    a, b, c = (any_location / n for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    a.write_text('{"x": 1}\n')
    b.write_text('{"x": 1}\n')
    c.write_text('{"x": 2}\n')
    digests = [file_digest(f, spark) for f in (a, b, c)]
    assert digests[0].startswith("etag:") and digests[0].endswith(":9")
    assert digests[0] == digests[1] != digests[2]
    with pytest.raises(ValueError, match="pass the Spark session"):
        file_digest(a)
