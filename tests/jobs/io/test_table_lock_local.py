"""A local Delta table has one writer process at a time: the OS lock of :mod:`pinrec.jobs.io.table_lock`."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pinrec.jobs.io.table_lock import ConcurrentWriterError, table_writer

HOLDER = """
import sys, time
from pinrec.jobs.io.table_lock import table_writer
with table_writer(None, sys.argv[1]):
    open(sys.argv[2], "w").close()
    time.sleep(float(sys.argv[3]))
    last = time.time()  # the holder's last moment with the lock
print(last, flush=True)
"""


def _hold(table, ready, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(table), str(ready), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the holder did not start"
        time.sleep(0.05)
    return proc


def test_a_second_process_waits_for_the_writer_and_gives_up_naming_the_lock(tmp_path):
    table = tmp_path / "warehouse" / "impressions"
    proc = _hold(table, tmp_path / "ready", 1.5)
    with (pytest.raises(ConcurrentWriterError, match=r"impressions: another process has been writing it for over 0 s "
                                                     r"\(it holds .*warehouse/\.impressions\.writer-lock\)"),
          table_writer(None, str(table), ttl_s=0.2)):
        pass
    with table_writer(None, str(table), ttl_s=30):  # waits its turn
        entered = time.time()
    released = float(proc.communicate(timeout=30)[0])
    assert entered >= released and not table.exists()  # the lock lives beside the table, not in it


def test_a_killed_writer_releases_the_table(tmp_path):
    table = tmp_path / "warehouse" / "pins"
    proc = _hold(table, tmp_path / "ready", 60)
    proc.kill()
    proc.wait()
    start = time.monotonic()
    with table_writer(None, f"file://{table}", ttl_s=5):
        pass
    assert time.monotonic() - start < 2


def test_a_file_uri_locks_the_folder_it_names_even_with_a_hash(tmp_path):
    # Catalog.path gives local tables as file:// + the path as written ('#' is a name, not a fragment)
    table = tmp_path / "lake#2" / "pins"
    with table_writer(None, f"file://{table}"):
        assert (tmp_path / "lake#2" / ".pins.writer-lock").is_file()
    assert not (tmp_path / ".lake.writer-lock").exists()
