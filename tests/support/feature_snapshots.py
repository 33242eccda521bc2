"""Two tiny feature views (``u`` by user_id, ``uc`` by user_id x category) and their snapshot tables,
as the tests of the serving feature snapshot and of Redis in front of it use them."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa

from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.snapshot_meta import SnapshotMeta, with_meta
from pinrec.schemas.features import Feature, FeatureView

T0 = dt.datetime(2026, 1, 10)  # the cut-off
TS = pa.timestamp("us", tz="UTC")
USER = FeatureView("u", ("user_id",), (Feature("saves", "int64"), Feature("rate", "float64"),
                                        Feature("last", "array<int64>")), ttl=dt.timedelta(hours=10))
UC = FeatureView("uc", ("user_id", "category"), (Feature("clicks", "int64"),), ttl=dt.timedelta(hours=10))


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def user_table(rows, view=USER, cutoff=T0) -> pa.Table:
    """rows: (user_id, saves, rate, last, feature_ts)."""
    cols = list(zip(*rows)) if rows else [[]] * 5
    table = pa.table({"user_id": pa.array(cols[0], pa.int64()), "u__saves": pa.array(cols[1], pa.int64()),
                      "u__rate": pa.array(cols[2], pa.float64()), "u__last": pa.array(cols[3], pa.list_(pa.int64())),
                      "u__feature_ts": pa.array(cols[4], TS)})
    return with_meta(table, SnapshotMeta.from_view(view, cutoff))


def uc_table(rows) -> pa.Table:
    cols = list(zip(*rows))
    table = pa.table({"user_id": pa.array(cols[0], pa.int64()), "category": pa.array(cols[1], pa.string()),
                      "uc__clicks": pa.array(cols[2], pa.int64()), "uc__feature_ts": pa.array(cols[3], TS)})
    return with_meta(table, SnapshotMeta.from_view(UC, T0))


USERS = [(5, 50, 0.5, [1, 2], h(-2)), (1, 10, 0.1, [], h(-9)), (3, 30, None, None, h(-1))]  # unsorted on purpose
UCS = [(1, "art", 4, h(-2)), (1, "food", 6, h(-3)), (2, "art", 9, h(-1))]


def snap() -> FeatureSnapshot:
    return FeatureSnapshot.open([user_table(USERS), uc_table(UCS)])
