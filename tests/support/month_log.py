"""A tiny timed log over seven days of three calendar months, landed by month or daily by the real writer."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

#: user, item, time, rating (>= 4: a save). Days: Jan 30, Jan 31, Feb 2, Feb 10, Feb 27, Mar 1, Mar 4 (2003).
LOG = """user,item,ts,rating
1,1,2003-01-30T09:00:00Z,5
2,1,2003-01-30T10:00:00Z,3
3,2,2003-01-30T11:00:00Z,4
1,2,2003-01-31T08:00:00Z,2
4,3,2003-01-31T12:00:00Z,5
2,3,2003-02-02T07:30:00Z,5
3,4,2003-02-02T19:00:00Z,1
5,1,2003-02-10T10:00:00Z,4
1,4,2003-02-10T11:00:00Z,5
4,5,2003-02-10T23:59:59Z,3
2,6,2003-02-27T00:00:00Z,5
5,2,2003-02-27T15:00:00Z,2
3,6,2003-03-01T08:00:00Z,4
1,7,2003-03-01T09:00:00Z,5
4,1,2003-03-04T10:00:00Z,4
5,7,2003-03-04T11:00:00Z,1
2,8,2003-03-04T12:00:00Z,5
"""
DAYS = [dt.date(2003, 1, 30), dt.date(2003, 1, 31), dt.date(2003, 2, 2), dt.date(2003, 2, 10),
        dt.date(2003, 2, 27), dt.date(2003, 3, 1), dt.date(2003, 3, 4)]
MONTHS = [dt.date(2003, 1, 1), dt.date(2003, 2, 1), dt.date(2003, 3, 1)]


def land(folder: Path, by_month: bool):
    """Write :data:`LOG` beside ``folder`` and land it into ``folder`` with ``load_log``: by month
    (``max_partitions`` 3 < 7 days) or daily. Returns the landing summary."""
    from pinrec.jobs.ingest.log_reader import LogSpec, load_log

    folder.parent.mkdir(parents=True, exist_ok=True)
    source = folder.parent / f"{folder.name}.csv"
    source.write_text(LOG)
    return load_log(source, folder, LogSpec(user="user", item="item", timestamp="ts", rating="rating"),
                    max_partitions=3 if by_month else 0)


def write_impressions_as_ingested(spark, landing: Path, warehouse: str, extra: tuple[tuple[str, dt.date], ...] = ()):
    """The warehouse's ``impressions`` as ingest leaves it for a coarse landing (each event in the
    partition of its own day), written straight from the landed files (plus ``extra`` (event_id, day)
    rows), event ids and days only: for tests of what reads the days."""
    import pandas as pd

    from pinrec.jobs.io.catalog import Catalog

    frame = pd.concat([pd.read_json(f, lines=True, dtype={"ts": str}) for f in sorted(landing.glob("impressions/*/*.jsonl"))])
    rows = [(e, dt.date.fromisoformat(t[:10])) for e, t in zip(frame["event_id"], frame["ts"], strict=True)] + list(extra)
    df = spark.createDataFrame(rows, "event_id string, dt date")
    Catalog(spark, warehouse).write("impressions", df, days=sorted({d for _, d in rows}))
