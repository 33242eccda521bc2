"""Inputs of the ranker job: the training set at a pinned Delta version (or a ready frame), the
synthetic world's truth, and the PinSage embedding features added to a frame."""
from __future__ import annotations

from pinrec.jobs.io.lake import Location, as_location

#: The columns the job reads besides features and labels.
KEYS = ("event_id", "session_id", "split", "sample_weight")


def needed_columns(spec, tasks) -> list[str]:
    cols: list[str] = []
    for f in spec.features:
        cols += [f.left, f.right] if hasattr(f, "left") else [f.name]
    if spec.position:
        cols.append(spec.position)
    return list(dict.fromkeys([*cols, *tasks, *KEYS]))


def read_training_set(source, warehouse, columns: list[str]):
    """(pandas frame, metadata). ``source``: a SparkSession (reads the ``training_set`` table of
    ``warehouse``, a path, Location or catalog, at its current Delta version, as its newest build
    defines it: :func:`~pinrec.jobs.io.training_set.current_training_set`; rows in ``event_id`` order, so that training does not depend on
    how Spark laid the table out) or a pandas DataFrame / pyarrow Table."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(source, (pd.DataFrame, pa.Table)):
        frame = source.to_pandas() if isinstance(source, pa.Table) else source
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the training frame lacks columns {missing}")
        return frame[columns].reset_index(drop=True), {}
    if not hasattr(source, "read") or not warehouse:
        raise ValueError("source must be a SparkSession (with warehouse) or a pandas/pyarrow frame")
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.training_set import current_training_set

    catalog = Catalog.of(source, warehouse)
    path = catalog.path("training_set")
    if not catalog.exists("training_set"):
        raise FileNotFoundError(f"no training set at {path}: run `pinrec training-set` first")
    df = current_training_set(catalog)
    version = catalog.reads["training_set"]
    meta = catalog.user_metadata("training_set", version)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"the training set at {path} lacks columns {missing}")
    table = df.select(*columns).toArrow()
    if "event_id" in columns:
        table = table.sort_by("event_id")
    return table.to_pandas(), {**meta, "training_set_version": version}


def read_truth(truth_dir: str | Location):
    """The synthetic world's impression truth (``_truth/impressions/dt=*/part-0.parquet``)."""
    import pyarrow.dataset as ds

    from .ranker_eval import TRUTH_COLUMNS

    where = as_location(truth_dir) / "impressions"
    return ds.dataset(where.path, format="parquet", partitioning="hive", filesystem=where.arrow_fs).to_table(
        columns=list(TRUTH_COLUMNS)).to_pandas()


def infer_negative_rate(frame, tasks) -> float:
    negative = (frame[list(tasks)].sum(axis=1) == 0).to_numpy()
    return float(1.0 / frame["sample_weight"].to_numpy()[negative].max()) if negative.any() else 1.0


def with_embeddings(frame, table, users: tuple[str, ...]):
    """The encoder's input: ``frame``'s columns plus (B, D) ``pin_embedding`` and the user
    embeddings ``users`` (:data:`pinrec.export.serving.embedding_features.USER_EMBEDDINGS`)."""
    if table is None:
        return frame
    return {**{c: frame[c] for c in frame.columns}, **table.columns(frame["pin_id"], frame, users)}

