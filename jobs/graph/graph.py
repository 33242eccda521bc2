"""The Pin–Board bipartite graph for PinSage, as of a cut-off, with a time split of its edges.

* edges: ``pin_board_edges`` saved before the cut-off, de-duplicated on (pin, board) keeping the
  first save; ``split`` = ``train`` before ``eval_from``, ``eval`` from then on, so evaluation
  never sees an edge from after the training cut-off during training;
* pin nodes: every pin created before the cut-off (pins without edges too: cold-start pins still
  get an embedding from their features), with a dense index ``pin_idx`` (0..N-1, ordered by
  pin_id) and a feature vector: category one-hot (the :data:`MAX_CATEGORIES` most frequent, the others
  as one ``category=other``: a brand-like column must not give thousands of features), ``log1p(age_days)``, the latest daily pin
  features (smoothed closeup/save rates, ``log1p`` impressions and board count; zeros when none)
  and the content embedding (zeros plus a "has content" flag when absent);
* board nodes: every board an edge touches, ``board_idx`` (0..M-1, ordered by board_id) and topic.

No pin created before the cut-off, or no save of one, is a ``ValueError``: an empty graph is never written.

Written as Delta tables ``graph_edges``, ``graph_pin_nodes`` and ``graph_board_nodes`` (each a
whole snapshot, replaced on every build) through the catalog; the ``feature_names`` of the pin
vector go into the commit's ``userMetadata``, beside the catalog's lineage.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pinrec.jobs.io.timestamps import ts_lit

#: categories one-hot encoded in the pin vector (the most frequent among the pins); the rest share one
MAX_CATEGORIES = 64


@dataclass(frozen=True)
class GraphTables:
    edges: object
    pin_nodes: object
    board_nodes: object
    feature_names: tuple[str, ...]


def evaluation_start(days: list[dt.date], test_days: int) -> dt.datetime:
    """Where the graph's evaluation edges start: the first of the ranker's ``test_days`` (at least
    one day, and never every day). PinSage embeddings are ranker features, so their
    neighbourhoods must not hold the saves of the days the ranker is tested on."""
    if len(days) < 2:
        raise ValueError(f"a graph split needs at least 2 days of saves, got {len(days)}")
    held_out = min(max(test_days, 1), len(days) - 1)
    return dt.datetime.combine(sorted(days)[-held_out], dt.time())


def build_graph(pins, boards, edges, pin_features, cutoff: dt.datetime, eval_from: dt.datetime) -> GraphTables:
    """Pure transform (see the module docstring). ``pin_features`` is the ``features_pin`` table."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if eval_from > cutoff:
        raise ValueError(f"eval_from {eval_from} is after the cut-off {cutoff}")
    pins = pins.where(F.col("created_at") < ts_lit(cutoff)).dropDuplicates(["pin_id"])
    pin_nodes = pins.withColumn("pin_idx", F.row_number().over(Window.orderBy("pin_id")) - 1)
    first = (edges.where(F.col("saved_at") < ts_lit(cutoff))
             .groupBy("pin_id", "board_id").agg(F.min("saved_at").alias("saved_at")))
    board_nodes = (first.select("board_id").distinct()
                   .join(boards.select("board_id", "topic").dropDuplicates(["board_id"]), "board_id", "left")
                   .withColumn("board_idx", F.row_number().over(Window.orderBy("board_id")) - 1))
    edge_table = (first.join(pin_nodes.select("pin_id", "pin_idx"), "pin_id")
                  .join(board_nodes.select("board_id", "board_idx"), "board_id")
                  .withColumn("split", F.when(F.col("saved_at") < ts_lit(eval_from), "train").otherwise("eval")))

    counted = pins.groupBy("category").count().collect()  # the most frequent one-hot, the rest "other"
    # an empty graph would replace the current one and fail only in PinSage: refuse it here
    if not counted:
        raise ValueError(f"no pin was created before the cut-off {cutoff}: the graph would be empty; pass a later "
                         "cut-off, or run `pinrec ingest` for the pins first")
    if edge_table.isEmpty():
        raise ValueError(f"no pin was saved to a board before the cut-off {cutoff} (pin_board_edges holds no save "
                         "of a pin created before it): the graph would have no edges; pass a later cut-off, or run "
                         "`pinrec ingest` for the pin_board_edges first")
    ranked = sorted(counted, key=lambda r: (-r["count"], str(r["category"])))
    categories = sorted(r["category"] for r in ranked[:MAX_CATEGORIES])
    other = len(ranked) > MAX_CATEGORIES
    latest = (pin_features.where(F.col("created_ts") <= ts_lit(cutoff))
              .withColumn("_r", F.row_number().over(Window.partitionBy("pin_id").orderBy(F.desc("feature_ts"))))
              .where("_r = 1").select("pin_id", "closeup_rate_30d", "save_rate_30d", "impressions_30d", "board_count"))
    dims = pins.select(F.max(F.size("content_embedding"))).collect()[0][0] or 0
    dims = max(int(dims), 0)
    names = ([f"category={c}" for c in categories] + (["category=other"] if other else [])
             + ["log1p_age_days", "closeup_rate_30d", "save_rate_30d", "log1p_impressions_30d", "log1p_board_count",
                "has_content"] + [f"content_{i}" for i in range(dims)])
    age = (ts_lit(cutoff).cast("double") - F.col("created_at").cast("double")) / 86400.0
    content = F.coalesce(F.col("content_embedding"), F.array_repeat(F.lit(0.0).cast("float"), dims))
    vector = F.concat(
        F.array(*[F.when(F.col("category") == c, 1.0).otherwise(0.0) for c in categories],
                *([F.when(F.col("category").isin(categories), 0.0).otherwise(1.0)] if other else [])),
        F.array(F.log1p(F.greatest(age, F.lit(0.0))),
                F.coalesce("closeup_rate_30d", F.lit(0.0)), F.coalesce("save_rate_30d", F.lit(0.0)),
                F.log1p(F.coalesce("impressions_30d", F.lit(0)).cast("double")),
                F.log1p(F.coalesce("board_count", F.lit(0)).cast("double")),
                F.col("content_embedding").isNotNull().cast("double")),
        F.transform(content, lambda x: x.cast("double")) if dims else F.array().cast("array<double>"),
    ).cast("array<float>")
    pin_out = (pin_nodes.join(latest, "pin_id", "left")
               .select("pin_id", "pin_idx", "category", vector.alias("features")))
    return GraphTables(edge_table.select("pin_id", "board_id", "pin_idx", "board_idx", "saved_at", "split"),
                       pin_out, board_nodes.select("board_id", "board_idx", "topic"), tuple(names))


def write_graph(spark, warehouse, cutoff: dt.datetime, eval_from: dt.datetime) -> dict[str, int]:
    """Build the graph from the warehouse tables and replace the three graph tables; returns the
    rows written per table. ``warehouse``: a path, Location or :class:`~pinrec.jobs.io.catalog.Catalog`."""
    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog.of(spark, warehouse)
    graph = build_graph(catalog.read("pins"), catalog.read("boards"), catalog.read("pin_board_edges"),
                        catalog.read("features_pin"), cutoff, eval_from)
    meta = {"cutoff": cutoff.isoformat(), "eval_from": eval_from.isoformat(),
            "feature_names": list(graph.feature_names)}
    counts = {}
    for name, df in (("graph_edges", graph.edges), ("graph_pin_nodes", graph.pin_nodes),
                     ("graph_board_nodes", graph.board_nodes)):
        counts[name] = catalog.write(name, df, user_metadata=meta).rows
    return counts
