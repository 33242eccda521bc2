"""The strict landing reader without Spark: which files a partition offers, the JSON type table."""
from __future__ import annotations

import re

import pytest

from pinrec.jobs.ingest.ingest_read import JSON_TYPES, LandingFileError, landing_files
from pinrec.schemas.tables import DTYPES


def test_every_contract_dtype_has_a_json_type_rule():
    assert set(JSON_TYPES) == set(DTYPES)


def test_a_partition_offers_its_visible_files_and_refuses_nested_ones(tmp_path):
    part = tmp_path / "dt=2026-01-05"
    assert landing_files(part) == []
    for name in ("part-1.jsonl.gz", "part-0.jsonl", "_SUCCESS", ".part-0.jsonl.crc", "_temporary/0/x.jsonl"):
        (part / name).parent.mkdir(parents=True, exist_ok=True)
        (part / name).write_text("{}\n")
    (part / "empty").mkdir()  # holds no file: nothing is lost
    assert [f.path for f in landing_files(part)] == [str(part / "part-0.jsonl"), str(part / "part-1.jsonl.gz")]

    for i in range(7):
        (part / "hour=01" / f"p{i}.jsonl").parent.mkdir(exist_ok=True)
        (part / "hour=01" / f"p{i}.jsonl").write_text("{}\n")
    with pytest.raises(LandingFileError, match=r"hour=01/p0\.jsonl, .*hour=01/p4\.jsonl and 2 more are in a "
                                               r"sub-folder of the partition .*dt=2026-01-05, which must be flat"):
        landing_files(part)


def test_a_crashed_landing_write_leaves_nothing_ingestion_reads(tmp_path, monkeypatch):
    """The writer's temporary is hidden and removed when the write fails; a temporary an older version
    left (``<name>.tmp-<pid>``) is refused by name instead of being read as data."""
    import os

    from pinrec.jobs.io.lake import Location

    part = tmp_path / "dt=2026-01-05"
    target = Location(str(part / "part-00000.jsonl"))
    target.write_text('{"a": 1}\n')

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        target.write_text('{"a": 2}\n{"a"')
    monkeypatch.undo()
    assert sorted(p.name for p in part.iterdir()) == ["part-00000.jsonl"] and target.read_text() == '{"a": 1}\n'
    assert [f.path for f in landing_files(part)] == [str(part / "part-00000.jsonl")]

    (part / "part-00000.jsonl.tmp-4242").write_text('{"a": 3}\n')
    with pytest.raises(LandingFileError, match=r"part-00000\.jsonl\.tmp-4242 look like temporaries a crashed write "
                                               r"left .*delete them and re-run"):
        landing_files(part)


@pytest.mark.parametrize("name", ["part-[1].jsonl", "part-?.jsonl", "part-*.jsonl", "part-{1,2}.jsonl",
                                  "part-\\1.jsonl"])
def test_a_file_name_spark_would_read_as_a_glob_pattern_is_refused_by_name(tmp_path, name):
    """Spark globs every path it reads: ``part-[1].jsonl`` beside ``part-1.jsonl`` would read part-1's rows
    twice and its own never, silently; refused instead, naming the file."""
    part = tmp_path / "dt=2026-01-05"
    part.mkdir()
    for n in ("part-1.jsonl", name):
        (part / n).write_text('{"a": 1}\n')
    with pytest.raises(LandingFileError, match=re.escape(f"landing file(s) {part / name} have a glob character")):
        landing_files(part)


def test_a_date_inside_a_month_partition_names_the_partition_to_ingest(tmp_path):
    import datetime as dt

    from pinrec.jobs.ingest.dataset_info import write_dataset_info
    from pinrec.jobs.ingest.ingest_read import LandingPartitionMissingError, read_lines
    from pinrec.jobs.ingest.landing import partition_dir
    from pinrec.schemas.catalog import IMPRESSIONS

    (tmp_path / "impressions" / "dt=2003-07-01").mkdir(parents=True)
    (tmp_path / "impressions" / "dt=2003-07-01" / "part-00000.jsonl").write_text("{}\n")
    with pytest.raises(LandingPartitionMissingError, match="must land every day"):
        read_lines(None, str(tmp_path), IMPRESSIONS, [dt.date(2003, 7, 15)], optional=False)
    write_dataset_info(tmp_path, {"kind": "log", "timestamps": "column", "partition": "month"})
    with pytest.raises(LandingPartitionMissingError, match=r"no landing files for 1 day\(s\): .*dt=2003-07-15\. This "
                                                           r"landing zone is partitioned by month .*\(dt=2003-07-01\)"):
        read_lines(None, str(tmp_path), IMPRESSIONS, [dt.date(2003, 7, 15)], optional=False)
    assert partition_dir(tmp_path, "impressions", dt.date(2003, 7, 1)).is_dir()


def test_a_folder_that_is_not_a_partition_is_named(tmp_path):
    from pinrec.jobs.ingest.landing import list_partitions

    (tmp_path / "pins" / "dt=2026-01-05").mkdir(parents=True)
    (tmp_path / "pins" / "_tmp").mkdir()
    assert [d.isoformat() for d in list_partitions(tmp_path, "pins")] == ["2026-01-05"]
    (tmp_path / "pins" / "dt=2026-01-05.bak").mkdir()
    with pytest.raises(ValueError, match=r"landing folder .*pins/dt=2026-01-05\.bak is not a partition "
                                         r"\(dt=YYYY-MM-DD\): rename or remove it"):
        list_partitions(tmp_path, "pins")
