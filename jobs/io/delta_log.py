"""A Delta table's commits read straight from its ``_delta_log``, without a Spark job.

Delta's ``DESCRIBE HISTORY`` (the Python API's ``history()``) reads the commit files in a Spark job: on a
small local session that is 0.1-0.8 s per call, and the catalog asks for a table's version on
every first read and after every write (a fresh demo asked 137 times). The Delta protocol
(PROTOCOL.md, "Delta Log Entries") makes the same facts plain files: version ``N`` of a table is
the file ``_delta_log/<N as 20 digits>.json``, created atomically once (the table's newest
version is the highest such file), and each holds one ``commitInfo`` action with the commit's
``operation``, ``operationMetrics`` (string values) and ``userMetadata`` -- what ``DESCRIBE
HISTORY`` shows. Checkpoints, checksums and compacted logs (other names) are ignored.

Files are read through Hadoop's FileSystem of the Spark session (its ``s3a`` settings included),
as Delta itself reads them.
"""
from __future__ import annotations

import json
import re

__all__ = ["commit_info", "commit_versions"]

_COMMIT = re.compile(r"^(\d{20})\.json$")


def _fs(spark, log_dir: str):
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(log_dir)
    return jvm, path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def commit_versions(spark, table_path: str) -> list[int]:
    """The versions whose commit files ``table_path``'s log holds, ascending ([] when there is no
    log: not a Delta table)."""
    _, path, fs = _fs(spark, f"{table_path.rstrip('/')}/_delta_log")
    if not fs.exists(path):
        return []
    versions = []
    for status in fs.listStatus(path):
        match = _COMMIT.match(status.getPath().getName())
        if match and status.isFile():
            versions.append(int(match.group(1)))
    return sorted(versions)


def commit_info(spark, table_path: str, version: int) -> dict:
    """The ``commitInfo`` action of commit ``version`` (a dict as Delta wrote it: ``operation``,
    ``operationMetrics``, ``userMetadata``...); {} when the commit carries none. The commit file
    must exist (:func:`commit_versions`): Hadoop's FileNotFoundException names it otherwise."""
    jvm, path, fs = _fs(spark, f"{table_path.rstrip('/')}/_delta_log/{version:020d}.json")
    stream = fs.open(path)
    try:
        text = str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()
    for line in text.splitlines():
        if line.strip():
            action = json.loads(line)
            if "commitInfo" in action:
                return action["commitInfo"]
    return {}
