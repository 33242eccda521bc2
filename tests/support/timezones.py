"""Run a block as if the driver process lived in another time zone (``TZ`` + ``time.tzset``)."""
from __future__ import annotations

import contextlib
import os
import time

#: west and east of UTC (a cut-off read in the local zone would move by +5 h / -9 h); every other test
#: runs in the machine's zone, UTC in CI
ZONES = ("America/New_York", "Asia/Tokyo")


@contextlib.contextmanager
def driver_time_zone(name: str):
    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()
