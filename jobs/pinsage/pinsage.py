"""Train PinSage on the Pin–Board graph snapshot and write every pin's embedding to Delta.

1. read ``graph_edges``, ``graph_pin_nodes`` and ``graph_board_nodes`` (:mod:`pinrec.jobs.graph.graph`) at their
   current Delta versions through the catalog, pinned for the whole run;
2. :func:`graph_inputs` (pure, pyarrow in, tensors out): the training graph (``split = 'train'``
   edges only, so evaluation edges stay unseen), the graph of all edges, the (N, F) pin features
   standardised per column, the pin ids in ``pin_idx`` order;
3. :class:`pinrec.models.pinsage_trainer.PinSageTrainer` trains (on CUDA when there is one; under
   ``torchrun`` with DDP), logging every epoch's metrics to MLflow through :mod:`pinrec.jobs.io.tracking`,
   warm-started from the previous version's weights when they fit (:mod:`pinrec.jobs.pinsage.pinsage_versions`,
   which also keeps this version's weights under ``<artifacts>/pinsage/<model_version>/``);
4. layer-wise inference of all N pins over the training graph (``inference_edges="all"`` uses every
   edge up to the cut-off instead: better for serving, unfair for evaluating on ``eval`` edges);
5. replace the Delta table ``pin_embeddings`` (pin_id bigint, embedding array<float>, model_version
   string); ``model_version`` = ``pinsage-`` + a content hash of the trained weights and the
   config, so the same inputs and seed give the same version. The commit's ``userMetadata``
   records the model version, the input Delta versions, the training config, the MLflow run id,
   the version it warm-started from (``warm_start_from``, with the reason in ``warm_start``) and its
   ``stability`` against the previous embeddings (and the catalog's lineage under ``read``).

Under ``torchrun`` (``python -m torch.distributed.run --nproc_per_node=K -m pinrec.jobs.orchestration.cli pinsage``) only
rank 0 starts Spark, reads, logs and writes; the other ranks receive the tensors from it.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.lake import Location

from .pinsage_versions import (
    choose_warm_start,
    previous_embeddings,
    save_model,
    stability,
)

if TYPE_CHECKING:  # importing models pulls in torch: only when the job runs
    from pinrec.jobs.io.tracking import ArtifactRoot
    from pinrec.models.pinsage_trainer import PinSageTrainConfig

GRAPH_TABLES = ("graph_edges", "graph_pin_nodes", "graph_board_nodes")
EXPERIMENT = "pinrec-pinsage"


@dataclass(frozen=True)
class GraphInputs:
    """Tensors for training: ``train_graph`` / ``full_graph`` (PinBoardGraph), ``features`` (N, F),
    ``pin_ids`` (N,) int64 in ``pin_idx`` order, the edge counts by split, and the held-out
    (``split != 'train'``) edges' ``heldout_pins`` / ``heldout_boards`` (H,) int64."""

    train_graph: object
    full_graph: object
    features: object
    pin_ids: object
    edges_by_split: dict[str, int]
    heldout_pins: object = None
    heldout_boards: object = None


@dataclass(frozen=True)
class PinSageReport:
    pins: int
    boards: int
    edges_by_split: dict[str, int]
    epochs: int
    losses: tuple[float, ...]
    model_version: str
    seconds: float
    input_versions: dict[str, int] = field(default_factory=dict)
    run_id: str | None = None
    delta_version: int | None = None
    warm_start_from: str | None = None
    warm_start: str = ""
    stability: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        splits = ", ".join(f"{k}={v}" for k, v in sorted(self.edges_by_split.items()))
        loss = " -> ".join(f"{x:.4f}" for x in (self.losses[0], self.losses[-1])) if self.losses else "-"
        version = "-" if self.delta_version is None else self.delta_version
        moved = "".join(f", {k} {self.stability[k]:.3f}" for k in ("overlap_at_10", "procrustes_cosine")
                        if k in self.stability)
        return (f"pin_embeddings   pins={self.pins} boards={self.boards} edges ({splits}); {self.epochs} epoch(s), "
                f"loss {loss}; {self.model_version}; {self.seconds:.1f} s; delta_v={version}; "
                f"{self.warm_start or 'cold start'}{moved}")


def graph_inputs(edges, pin_nodes, num_boards: int) -> GraphInputs:
    """Pure transform: ``edges`` (pyarrow: pin_idx, board_idx, split, and optionally the first
    ``saved_at`` timestamp, which the sequence/next-item positives need) and ``pin_nodes`` (pyarrow:
    pin_id, pin_idx, features) -> :class:`GraphInputs`. Raises ``ValueError`` when ``pin_idx`` is not
    dense 0..N-1, feature vectors differ in length, or an edge names an unknown node."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import torch

    from pinrec.models.random_walk import PinBoardGraph

    n = pin_nodes.num_rows
    if n == 0:
        raise ValueError("graph_pin_nodes is empty: run `pinrec graph` on a warehouse with pins")
    order = pc.sort_indices(pin_nodes, [("pin_idx", "ascending")])
    nodes = pin_nodes.take(order)
    pin_idx = nodes.column("pin_idx").to_numpy()
    if not np.array_equal(pin_idx, np.arange(n)):
        raise ValueError(f"graph_pin_nodes.pin_idx must be dense 0..{n - 1}")
    feats = nodes.column("features").combine_chunks()
    lengths = pc.list_value_length(feats).to_numpy(zero_copy_only=False)
    if feats.null_count or lengths.min() != lengths.max():
        raise ValueError(f"pin feature vectors must all have one length, got {sorted(set(lengths.tolist()))[:5]}")
    x = torch.from_numpy(feats.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, -1))
    if not bool(torch.isfinite(x).all()):  # one inf or null element would make the whole column NaN below
        rows, cols = (~torch.isfinite(x)).nonzero(as_tuple=True)
        raise ValueError(f"graph_pin_nodes.features hold {len(rows)} value(s) that are NaN, inf or null, e.g. "
                         f"feature {int(cols[0])} of pin_id {nodes.column('pin_id')[int(rows[0])].as_py()} "
                         f"(columns {sorted(set(cols.tolist()))[:10]}): fix the pins' features")
    x = (x - x.mean(0)) / torch.where(x.std(0) > 0, x.std(0), torch.ones(()))  # constant columns become 0

    pins = torch.from_numpy(edges.column("pin_idx").to_numpy().astype(np.int64))
    boards = torch.from_numpy(edges.column("board_idx").to_numpy().astype(np.int64))
    split = np.asarray(edges.column("split").to_pylist(), dtype=object)
    train = torch.from_numpy(split == "train")
    counts = {str(s): int((split == s).sum()) for s in sorted(set(split.tolist()))}
    times = None
    if "saved_at" in edges.column_names:
        saved = edges.column("saved_at")
        if saved.null_count:
            raise ValueError("graph_edges.saved_at has nulls")
        times = torch.from_numpy(saved.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy().astype(np.int64))
    return GraphInputs(train_graph=PinBoardGraph(pins[train], boards[train], n, num_boards,
                                                 None if times is None else times[train]),
                       full_graph=PinBoardGraph(pins, boards, n, num_boards, times), features=x,
                       pin_ids=torch.from_numpy(nodes.column("pin_id").to_numpy().astype(np.int64)),
                       edges_by_split=counts, heldout_pins=pins[~train], heldout_boards=boards[~train])


def model_hash(state_dict, cfg: PinSageTrainConfig) -> str:
    """``pinsage-`` + 16 hex digits of sha256 over the config and every tensor of the state dict."""
    digest = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True, default=str).encode())
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return "pinsage-" + digest.hexdigest()[:16]


def _read_inputs(catalog: Catalog) -> tuple[GraphInputs, dict[str, int], list[str]]:
    missing = [name for name in GRAPH_TABLES if not catalog.exists(name)]
    if missing:
        raise ValueError(f"missing Delta table(s) {missing} under {catalog.warehouse}: run `pinrec graph` first")
    read = {name: catalog.read(name) for name in GRAPH_TABLES}
    num_boards = read["graph_board_nodes"].count()
    inputs = graph_inputs(read["graph_edges"].select("pin_idx", "board_idx", "split", "saved_at").toArrow(),
                          read["graph_pin_nodes"].select("pin_id", "pin_idx", "features").toArrow(), num_boards)
    feature_names = catalog.user_metadata("graph_pin_nodes").get("feature_names", [])
    return inputs, {name: catalog.reads[name] for name in GRAPH_TABLES}, feature_names


def _share(obj):
    """Rank 0's ``obj`` on every rank (identity outside ``torch.distributed``)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def train_pinsage(spark, warehouse, cfg: PinSageTrainConfig, tracking_uri: str | None,
                  experiment: str = EXPERIMENT, inference_edges: str = "train", *,
                  artifact_root: ArtifactRoot | None = None, artifacts: str | Location | None = None) -> PinSageReport:
    """Read the graph tables, train, embed every pin, replace ``pin_embeddings`` (module docstring).

    ``tracking_uri`` None logs nothing to MLflow; ``artifact_root``: the MLflow experiment's
    artifact root if the run creates it. ``artifacts`` (``storage.artifacts``) keeps every
    version's weights and lets the next version warm-start from them
    (:mod:`pinrec.jobs.pinsage.pinsage_versions`; None: neither). Under ``torch.distributed``
    ``spark`` is only used (and may be None elsewhere) on rank 0.
    """
    import contextlib

    import pyarrow as pa
    import torch.distributed as dist

    from pinrec.jobs.io.tracking import tracked_run
    from pinrec.models.pinsage_trainer import PinSageTrainer
    from pinrec.models.warm_start import row_map

    if inference_edges not in ("train", "all"):
        raise ValueError(f"inference_edges must be 'train' or 'all', got {inference_edges!r}")
    start = time.perf_counter()
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    catalog = Catalog.of(spark, warehouse) if rank == 0 else None
    inputs, versions, feature_names = _share(_read_inputs(catalog) if rank == 0 else None)
    previous = previous_embeddings(catalog) if rank == 0 else None
    warm = _share(choose_warm_start(catalog.user_metadata("pin_embeddings") if previous is not None else {},
                                    artifacts, cfg, versions, feature_names) if rank == 0 else None)
    run_cfg = replace(cfg, epochs=cfg.warm_start_epochs or cfg.epochs) if warm.from_version else cfg
    params = {"pinsage": asdict(cfg), "input_versions": versions, "inference_edges": inference_edges,
              "num_pins": int(inputs.features.size(0)), "num_features": int(inputs.features.size(1)),
              "edges": inputs.edges_by_split, "warm_start_from": warm.from_version, "epochs_run": run_cfg.epochs}
    track = tracked_run(tracking_uri, experiment, "pinsage", params, {"job": "pinsage"}, artifact_root=artifact_root) \
        if tracking_uri and rank == 0 else contextlib.nullcontext()
    with track as run:
        hook = None if run is None else (lambda epoch, metrics: run.log_metrics(metrics, step=epoch))
        trainer = PinSageTrainer(inputs.train_graph, inputs.features, run_cfg, on_epoch_end=hook)
        if warm.state is not None:
            trainer.warm_start(warm.state, row_map(warm.pin_ids, inputs.pin_ids))
        history = trainer.fit()
        version = model_hash(trainer.model.state_dict(), cfg)
        if rank != 0:
            return PinSageReport(inputs.features.size(0), inputs.train_graph.num_boards, inputs.edges_by_split,
                                 len(history), tuple(h["loss"] for h in history), version,
                                 time.perf_counter() - start, versions)
        embeddings = trainer.embed(inputs.full_graph if inference_edges == "all" else None)
        moved = stability(previous, inputs, embeddings)
        if artifacts is not None:
            save_model(artifacts, version, trainer.model.state_dict(), cfg, inputs.pin_ids, feature_names)
        meta = {"model_version": version, "input_versions": versions, "train_config": asdict(cfg),
                "inference_edges": inference_edges, "feature_names": feature_names,
                "mlflow_run_id": None if run is None else run.run_id, "warm_start_from": warm.from_version,
                "warm_start": warm.reason, "stability": moved}
        table = pa.table({
            "pin_id": pa.array(inputs.pin_ids.numpy(), pa.int64()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.numpy().reshape(-1), pa.float32()),
                                                           embeddings.size(1)).cast(pa.list_(pa.float32())),
            "model_version": pa.array([version] * embeddings.size(0), pa.string()),
        })
        written = catalog.write("pin_embeddings", spark.createDataFrame(table), user_metadata=meta)
        report = PinSageReport(int(inputs.features.size(0)), inputs.train_graph.num_boards, inputs.edges_by_split,
                               len(history), tuple(h["loss"] for h in history), version,
                               time.perf_counter() - start, versions,
                               None if run is None else run.run_id, written.version, warm.from_version,
                               warm.reason, moved)
        if run is not None:
            final = history[-1] if history else {}
            run.log_metrics({"final_loss": final.get("loss", float("nan")), "seconds": report.seconds,
                             **{f"stability_{k}": v for k, v in moved.items()}})
            run.log_dict(history, "loss_curve.json")
            run.log_dict(meta, "pin_embeddings.json")
            run.set_tags({"model_version": version, "pin_embeddings_delta_version": report.delta_version})
    return report


def run_job(cfg, inference_edges: str = "train", echo=print) -> PinSageReport | None:
    """:func:`train_pinsage` with a Spark session from ``cfg.spark``, alone or as one rank under
    torchrun: rank 0 starts Spark, reads, logs, writes and returns the report (``echo`` gets it);
    the other ranks train with it and return None. ``pinrec pinsage`` comes here, alone or under torchrun."""
    from pinrec.jobs.io.distributed import process_group
    from pinrec.jobs.io.spark import job_spark
    from pinrec.jobs.io.tracking import mlflow_artifact_root

    with process_group() as rank:
        spark = job_spark(cfg) if rank == 0 else None
        report = train_pinsage(spark, cfg.storage.warehouse, cfg.pinsage, cfg.storage.mlflow_tracking_uri,
                               inference_edges=inference_edges, artifact_root=mlflow_artifact_root(cfg.storage),
                               artifacts=cfg.storage.location("artifacts"))
    if rank > 0:
        echo(f"[pinsage] rank {rank}: trained with rank 0 ({report.epochs} epoch(s), model {report.model_version})")
        return None
    echo("[pinsage] " + report.render())
    return report
