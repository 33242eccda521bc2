"""The real Feast side of ``benchmarks/pit_join.py``: its environment, its repo, its timed worker.

Feast's pins clash with pinrec's, so it lives in its own virtual environment, by default
``~/.cache/pinrec/feast-venv``; create it with ``python benchmarks/pit_join.py --make-feast-env``
or by hand with the one line in :data:`FEAST_ENV_COMMAND`. pit_join.py runs this file with that
environment's Python as a worker subprocess; it imports nothing of pinrec (only pit_join.py's
stdlib-only view list and these packages: feast, pandas, pyarrow).

What a timed call is: read the spine's Parquet file into pandas (Feast's entity DataFrame), then
``FeatureStore.get_historical_features(entity_df, <every feature of the 3 views>,
full_feature_names=True, filter_by_created_timestamp=True).to_df()`` on Feast's local file offline
store (``offline_store: file``, i.e. its Dask store) reading the same Parquet files as the other
engines. ``filter_by_created_timestamp`` is Feast's switch for pinrec's ``created_ts <= t`` rule, so
the values it returns are comparable with ours. Two behaviours of that store change the row count:

* per view, it left-merges the spine with *every* feature row of the key, keeps the rows with
  ``t - ttl <= feature_ts <= t`` (or no feature row at all), and so drops a spine row whose key has
  feature rows but none in that window (the merge's size is the sum over keys of spine rows x
  feature rows, which is what sinks it on hot keys);
* it de-duplicates on (join keys, t), so spine rows sharing their keys and timestamp become one.

Rows returned are therefore reported per engine, and compared per row returned.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pit_join import DEFAULT_FEAST_PYTHON, FEAST_PIN, VIEWS, BenchView

#: the one-line set-up of Feast's environment (what ``pit_join.py --make-feast-env`` does)
FEAST_ENV_COMMAND = (f"python3.11 -m venv {DEFAULT_FEAST_PYTHON.parents[1]} && "
                     f"{DEFAULT_FEAST_PYTHON.parent}/pip install " + " ".join(f"'{r}'" for r in FEAST_PIN))
_FEAST_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String"}
_ENTITY_TYPES = {"user_id": "INT64", "pin_id": "INT64", "category": "STRING"}


def feature_refs(views: tuple[BenchView, ...] = VIEWS) -> list[str]:
    """Feast's references ``view:feature`` for every feature of ``views``, in view order."""
    return [f"{v.name}:{c}" for v in views for c, _ in v.features]


def output_feature_columns(views: tuple[BenchView, ...] = VIEWS) -> list[str]:
    """The feature columns Feast returns with ``full_feature_names=True``: ``view__feature``
    (the same names pinrec's join gives them)."""
    return [f"{v.name}__{c}" for v in views for c, _ in v.features]


def feast_definitions(data_dir: Path, ttl: dt.timedelta, views: tuple[BenchView, ...] = VIEWS) -> list:
    """Feast Entities (one per join key) and one FeatureView per benchmark view, each over a
    FileSource on ``data_dir/<table>.parquet`` with ``feature_ts`` as its timestamp field,
    ``created_ts`` as its created timestamp and ``ttl``."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast import types as ft

    keys = sorted({k for v in views for k in v.keys})
    entities = {k: Entity(name=k, join_keys=[k], value_type=getattr(ValueType, _ENTITY_TYPES[k])) for k in keys}
    out: list = list(entities.values())
    for v in views:
        src = FileSource(name=f"{v.table}_src", path=str((data_dir / f"{v.table}.parquet").resolve()),
                         timestamp_field="feature_ts", created_timestamp_column="created_ts")
        schema = [Field(name=c, dtype=getattr(ft, _FEAST_TYPES[t])) for c, t in v.features]
        out.append(FeatureView(name=v.name, entities=[entities[k] for k in v.keys], ttl=ttl, schema=schema,
                               source=src, online=False))
    return out


def open_store(repo_dir: Path, data_dir: Path, ttl: dt.timedelta, views: tuple[BenchView, ...] = VIEWS):
    """A FeatureStore with a local file registry under ``repo_dir``, the file offline store and the
    views of ``data_dir`` applied to it."""
    from feast import FeatureStore, RepoConfig

    repo_dir.mkdir(parents=True, exist_ok=True)
    cfg = RepoConfig(project="pitbench", provider="local", registry=str(repo_dir / "registry.db"),
                     offline_store={"type": "file"},
                     online_store={"type": "sqlite", "path": str(repo_dir / "online.db")},
                     entity_key_serialization_version=3, repo_path=repo_dir)
    store = FeatureStore(config=cfg)
    store.apply(feast_definitions(data_dir, ttl, views))
    return store


def historical_features(store, spine_path: Path, views: tuple[BenchView, ...] = VIEWS):
    """One timed call: the spine read into pandas and Feast's PIT join of ``views`` onto it,
    materialised as a pandas DataFrame (columns: the spine's + ``view__feature``)."""
    import pyarrow.parquet as pq

    entity_df = pq.read_table(spine_path).to_pandas()
    job = store.get_historical_features(entity_df=entity_df, features=feature_refs(views),
                                        full_feature_names=True, filter_by_created_timestamp=True)
    return job.to_df()


def worker(argv=None) -> None:
    """Worker protocol of pit_join.py: JSON lines ``ready`` (with ``setup_s``: import + registry
    apply), then ``start``/``end`` per run (``seconds``, ``rows``); with ``--save`` one run on
    the given spine, written as Parquet for the spot check."""
    p = argparse.ArgumentParser()
    for a in ("--events", "--data", "--spine", "--repo", "--save"):
        p.add_argument(a)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--ttl-days", type=float, default=2.0)
    args = p.parse_args(argv)
    events = open(args.events, "a", buffering=1)  # noqa: SIM115 -- open for the whole worker process

    def emit(**kw):
        events.write(json.dumps(kw) + "\n")
        events.flush()

    t0 = time.perf_counter()
    import feast

    store = open_store(Path(args.repo), Path(args.data), dt.timedelta(days=args.ttl_days))
    emit(event="ready", feast=feast.__version__, setup_s=time.perf_counter() - t0)
    spine = Path(args.spine)
    if args.save:
        emit(event="start", run="sample")
        t = time.perf_counter()
        df = historical_features(store, spine)
        df.to_parquet(args.save, index=False)
        emit(event="end", run="sample", seconds=time.perf_counter() - t, rows=len(df))
        return
    for r in range(args.repeats):
        emit(event="start", run=r)
        t = time.perf_counter()
        df = historical_features(store, spine)
        emit(event="end", run=r, seconds=time.perf_counter() - t, rows=len(df))
        del df


if __name__ == "__main__":
    worker()
