"""Stability against the champion bundle's embeddings (what the gate's floor judges)."""
import datetime as dt
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pinrec.export.serving.store import Store
from pinrec.jobs.publish.champion_stability import champion_stability
from pinrec.schemas.manifest import ChannelPointer, bundle_prefix, channel_key


def _champion(store, ids, vectors, version="v1"):
    prefix = bundle_prefix("homefeed", version)
    buf = io.BytesIO()
    np.save(buf, vectors.astype(np.float32), allow_pickle=False)
    store.put_bytes(prefix + "extra/pin_embeddings.npy", buf.getvalue())
    out = io.BytesIO()
    pq.write_table(pa.table({"pin_id": pa.array(ids, pa.int64())}), out)
    store.put_bytes(prefix + "pins/pins.parquet", out.getvalue())
    pointer = ChannelPointer(name="homefeed", channel="prod", version=version, manifest_sha256="0" * 64,
                             moved_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), reason="publish")
    store.put_bytes(channel_key("homefeed", "prod"), pointer.to_json().encode())


def test_the_candidate_is_measured_against_the_bundle_serving(tmp_path):
    store = Store(str(tmp_path / "store"))
    rng = np.random.default_rng(0)
    ids = np.arange(100, 160, dtype=np.int64)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    assert champion_stability(store, "homefeed", "prod", ids, vectors) == {}  # nothing serving yet
    served = vectors.copy()
    served[5] = 0.0  # a pin the champion's PinSage did not embed: left out
    _champion(store, ids[::-1], served[::-1])  # its own row order
    same = champion_stability(store, "homefeed", "prod", ids, vectors)
    assert same == {"champion_common_pins": 59.0, "champion_overlap_at_10": pytest.approx(1.0)}
    moved = champion_stability(store, "homefeed", "prod", ids, rng.normal(size=(60, 8)).astype(np.float32))
    assert moved["champion_common_pins"] == 59.0 and moved["champion_overlap_at_10"] < 0.4
    rekeyed = champion_stability(store, "homefeed", "prod", ids + 1000, vectors)  # no pin in common
    assert rekeyed == {"champion_common_pins": 0.0, "champion_overlap_at_10": 0.0}


def test_a_champion_without_embeddings_is_not_measured_and_a_damaged_one_is_named(tmp_path):
    store = Store(str(tmp_path / "store"))
    ids, vectors = np.arange(20, dtype=np.int64), np.ones((20, 4), np.float32)
    _champion(store, ids, vectors)
    store.delete(bundle_prefix("homefeed", "v1") + "extra/pin_embeddings.npy")
    assert champion_stability(store, "homefeed", "prod", ids, vectors) == {}
    _champion(store, ids[:10], vectors[:12])
    with pytest.raises(ValueError, match=r"champion v1: extra/pin_embeddings.npy has shape \(12, 4\) for 10 pins"):
        champion_stability(store, "homefeed", "prod", ids, vectors)
