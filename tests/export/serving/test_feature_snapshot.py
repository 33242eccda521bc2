"""The serving-side feature snapshot (snapshot_meta, view_snapshot, feature_snapshot, through
:class:`FeatureSnapshot`): exact lookups, missing/expired encoding, bad input, files and bundles."""
from __future__ import annotations

import datetime as dt
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinrec.export.serving.feature_snapshot import FeatureSnapshot
from pinrec.export.serving.snapshot_meta import SnapshotError, snapshot_file_name
from pinrec.schemas.features import Feature, FeatureView
from tests.support.feature_snapshots import (
    TS,
    UC,
    UCS,
    USER,
    USERS,
    h,
    snap,
    uc_table,
    user_table,
)


def test_lookup_returns_the_training_columns_with_missing_encoding():
    out = snap().lookup("u", np.array([3, 1, 99, 5]))
    assert out.column_names == ["u__saves", "u__rate", "u__last", "u__feature_ts", "u__missing"]
    assert out.schema.types == [pa.int64(), pa.float64(), pa.list_(pa.int64()), TS, pa.bool_()]
    assert out.to_pydict() == {
        "u__saves": [30, 10, None, 50], "u__rate": [None, 0.1, None, 0.5], "u__last": [None, [], None, [1, 2]],
        "u__feature_ts": [h(-1).replace(tzinfo=dt.UTC), h(-9).replace(tzinfo=dt.UTC), None,
                          h(-2).replace(tzinfo=dt.UTC)],
        "u__missing": [False, False, True, False]}


def test_values_expire_with_the_ttl_at_serving_time():
    s = snap()
    # at h(1): the h(-9) row is exactly 10 h old (still fresh); at h(1.5) it is stale
    assert s.lookup("u", [1, 5], now=h(1))["u__missing"].to_pylist() == [False, False]
    late = s.lookup("u", [1, 5], now=h(1.5))
    assert late["u__missing"].to_pylist() == [True, False] and late["u__saves"].to_pylist() == [None, 50]
    # one time per key, as numpy datetime64 or aware datetimes
    per_key = s.lookup("u", [1, 1, 3], now=np.array([h(0), h(2), h(9)], dtype="datetime64[us]"))
    assert per_key["u__missing"].to_pylist() == [False, True, False]
    aware = s.lookup("u", [1], now=h(2).replace(tzinfo=dt.UTC))
    assert aware["u__missing"].to_pylist() == [True]
    with pytest.raises(ValueError, match="cannot serve an earlier time"):
        s.lookup("u", [1], now=h(-0.5))
    with pytest.raises(ValueError, match="2 times for 3 keys"):
        s.lookup("u", [1, 2, 3], now=[h(0), h(1)])


def test_null_keys_and_an_empty_batch():
    s = snap()
    out = s.lookup("u", pa.array([None, 5], pa.int64()))
    assert out["u__missing"].to_pylist() == [True, False] and out["u__saves"].to_pylist() == [None, 50]
    assert s.lookup("u", []).num_rows == 0
    negative = FeatureSnapshot.open(user_table([(-1, 4, 0.0, [], h(-1)), (0, 5, 0.0, [], h(-1))]))
    assert negative.lookup("u", pa.array([-1, None, 0, -2]))["u__saves"].to_pylist() == [4, None, 5, None]


def test_composite_keys():
    s = snap()
    out = s.lookup("uc", {"user_id": [1, 1, 2, 2, 1], "category": ["food", "art", "art", "food", None]})
    assert out.to_pydict()["uc__clicks"] == [6, 4, 9, None, None]
    assert out["uc__missing"].to_pylist() == [False, False, False, True, True]
    unsorted = FeatureSnapshot.open(uc_table(UCS[::-1]))
    assert unsorted.lookup("uc", {"user_id": [2, 1, 3], "category": ["art", "food", "art"]}) \
        .column("uc__clicks").to_pylist() == [9, 6, None]
    with pytest.raises(SnapshotError, match="pass keys as a mapping"):
        s.lookup("uc", [1, 2])
    with pytest.raises(SnapshotError, match="keys lack"):
        s.lookup("uc", {"user_id": [1]})
    with pytest.raises(SnapshotError, match="differ in length"):
        s.lookup("uc", {"user_id": [1, 2], "category": ["art"]})


def test_bad_keys_and_unknown_views_are_clear_errors():
    s = snap()
    with pytest.raises(SnapshotError, match="keys 'user_id' must be int"):
        s.lookup("u", ["1"])
    with pytest.raises(SnapshotError, match=r"no view 'pin' \(it has \['u', 'uc'\]\)"):
        s.lookup("pin", [1])


def test_duplicate_and_null_keys_refuse_to_open():
    with pytest.raises(SnapshotError, match=r"duplicate keys \(5,\)"):
        FeatureSnapshot.open(user_table([*USERS, (5, 1, 0.0, [], h(-1))]))
    with pytest.raises(SnapshotError, match=r"duplicate keys \(1, 'art'\)"):
        FeatureSnapshot.open(uc_table([*UCS, (1, "art", 1, h(-1))]))
    with pytest.raises(SnapshotError, match=r"null keys in \['user_id'\]"):
        FeatureSnapshot.open(user_table([*USERS, (None, 1, 0.0, [], h(-1))]))
    with pytest.raises(SnapshotError, match="appears twice"):
        FeatureSnapshot.open([user_table(USERS), user_table(USERS)])


def test_missing_columns_features_and_metadata_are_clear_errors():
    with pytest.raises(SnapshotError, match=r"lacks columns \['u__rate'\]"):
        FeatureSnapshot.open(user_table(USERS).drop_columns(["u__rate"]))
    with pytest.raises(SnapshotError, match="no pinrec snapshot metadata"):
        FeatureSnapshot.open(user_table(USERS).replace_schema_metadata(None))
    newer = FeatureView("u", ("user_id",), (*USER.features, Feature("pins_7d", "int64")), ttl=USER.ttl)
    with pytest.raises(SnapshotError, match=r"lacks features \['pins_7d'\]"):
        FeatureSnapshot.open(user_table(USERS), expected=[newer])
    with pytest.raises(SnapshotError, match="no view 'uc'"):
        FeatureSnapshot.open(user_table(USERS), expected=[USER, UC])
    longer = FeatureView("u", ("user_id",), USER.features, ttl=dt.timedelta(days=1))
    with pytest.raises(SnapshotError, match="ttl"):
        FeatureSnapshot.open(user_table(USERS), expected=[longer])


def test_parquet_round_trip_from_a_folder_and_from_a_bundle(tmp_path):
    pq.write_table(user_table(USERS), tmp_path / snapshot_file_name("u"))
    pq.write_table(uc_table(UCS), tmp_path / snapshot_file_name("uc"))
    s = FeatureSnapshot.open(str(tmp_path), expected=[USER, UC])
    assert s.views == ("u", "uc") and repr(s) == "FeatureSnapshot(u=3, uc=3; cutoff=2026-01-10T00:00:00+00:00)"
    assert s.lookup("u", [5, 3])["u__saves"].to_pylist() == [50, 30]
    entries = [types.SimpleNamespace(path=f"extra/{snapshot_file_name(v)}") for v in ("u", "uc")]
    (tmp_path / "extra").mkdir()
    for e in entries:
        (tmp_path / e.path).write_bytes((tmp_path / e.path.split("/")[1]).read_bytes())
    bundle = types.SimpleNamespace(root=str(tmp_path), name="homefeed", version="v1",
                                   manifest=types.SimpleNamespace(of_role=lambda role: entries))
    assert FeatureSnapshot.from_bundle(bundle).lookup("uc", {"user_id": [2], "category": ["art"]}) \
        .column("uc__clicks").to_pylist() == [9]
    with pytest.raises(FileNotFoundError):
        FeatureSnapshot.open(str(tmp_path / "nope"))


def test_an_empty_snapshot_serves_everything_as_missing():
    out = FeatureSnapshot.open(user_table([])).lookup("u", [1, 2])
    assert out["u__missing"].to_pylist() == [True, True] and out["u__saves"].to_pylist() == [None, None]


def test_a_published_bundle_carries_the_snapshot_to_the_loader(tmp_path, candidate):
    import dataclasses

    from pinrec.export.build.publish import publish
    from pinrec.export.serving.loader import load
    from pinrec.export.serving.store import Store
    from tests.support.bundles import LINEAGE, metrics
    from tests.support.bundles import T0 as PUBLISHED

    folder = tmp_path / "snapshot"
    folder.mkdir()
    pq.write_table(user_table(USERS), folder / snapshot_file_name("u"))
    pq.write_table(uc_table(UCS), folder / snapshot_file_name("uc"))
    files, _, _ = candidate(0)
    files = dataclasses.replace(files, extras=(str(folder / snapshot_file_name("u")),
                                               str(folder / snapshot_file_name("uc"))))
    publish(Store(str(tmp_path / "store")), "homefeed", files, metrics(), LINEAGE, version="v1", now=PUBLISHED)
    bundle = load(str(tmp_path / "store"), "homefeed")
    served = FeatureSnapshot.from_bundle(bundle, expected=[USER, UC])
    assert served.lookup("u", [5, 4])["u__saves"].to_pylist() == [50, None]
