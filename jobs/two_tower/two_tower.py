"""The two-tower job (``pinrec two-tower``): train on the training set's engaged pairs, index the pin tower.

1. read, through the catalog at pinned Delta versions: the current PinSage embeddings
   (:func:`~pinrec.jobs.index.pin_index.read_embeddings`: ids, vectors, embedding version), the training
   set's engaged impressions (:func:`~pinrec.jobs.two_tower.two_tower_inputs.columns`) and each pin's
   newest pin-view row (``features_pin``);
2. :func:`~pinrec.jobs.two_tower.two_tower_inputs.two_tower_inputs` (pure) -> tensors and fitted encoders;
3. :func:`~pinrec.models.two_tower_trainer.fit_two_tower`: one model per temperature, the best
   validation recall@k kept; every epoch's loss logged to MLflow (experiment ``pinrec-two-tower``);
4. recall@k of the test pairs over every embedded pin; the pin tower's output for every pin;
5. write ``<storage.artifacts>/two_tower/<embedding version>/`` (local: beside it, then renamed into
   place; S3: built locally, uploaded with the report last): the ONNX user tower (parity <= 1e-5
   with torch) and its spec (:mod:`pinrec.export.serving.two_tower`), the FAISS index of the pin-tower
   outputs built and tuned as the PinSage index is (:func:`~pinrec.export.build.ann_build.build_index`,
   tuned on the validation and test users' embeddings), its files renamed with the ``two_tower_``
   prefix the bundle ships them under, and :data:`REPORT_FILE`.

Keyed by the embedding version, as the index is: the publish job takes the folder of the bundle's
embedding version, so the bundle's index, ranker and both towers share one PinSage model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pinrec.jobs.io.folders import replace_folder
from pinrec.jobs.io.lake import Location, as_location

if TYPE_CHECKING:
    from pinrec.export.index_choice import IndexConfig
    from pinrec.jobs.io.tracking import ArtifactRoot
    from pinrec.models.config import TwoTowerConfig

EXPERIMENT = "pinrec-two-tower"
REPORT_FILE = "report.json"  # written last: a folder with it is complete
MAX_QUERIES = 1000


@dataclass(frozen=True)
class TwoTowerReport:
    folder: str
    embedding_version: str
    model_version: str
    pairs: dict[str, int]
    dropped: int
    temperature: float
    validation_recall: dict[str, float]
    test_recall: float
    k: int
    onnx_max_diff: float
    factory: str
    index_recall: float
    seconds: float
    input_versions: dict[str, int]
    run_id: str | None = None

    def render(self) -> str:
        pairs = ", ".join(f"{s}={n}" for s, n in self.pairs.items())
        return (f"two_tower        {self.model_version} on {self.embedding_version}; pairs ({pairs}); tau={self.temperature:g} "
                f"(validation recall@{self.k} {self.validation_recall}); test recall@{self.k}={self.test_recall:.4f}; "
                f"ONNX diff {self.onnx_max_diff:.1e}; index {self.factory} recall={self.index_recall:.4f}; "
                f"{self.seconds:.1f} s; {self.folder}")


def two_tower_folder(artifacts: str | Path | Location, embedding_version: str) -> Location:
    """``<artifacts>/two_tower/<embedding_version>``."""
    return as_location(artifacts) / "two_tower" / embedding_version


def _read(spark, catalog):
    """(training-set frame of engaged rows, newest pin-view row per pin), both pandas."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pinrec.jobs.io.training_set import current_training_set
    from pinrec.schemas.features import PIN_FEATURES

    from .two_tower_inputs import columns

    catalog.require(["training_set", "features_pin"], "run `pinrec features` and `pinrec training-set` first")
    df = current_training_set(catalog)  # as its newest build defines it (days, splits)
    lacking = [c for c in columns() if c not in df.columns]
    if lacking:
        raise ValueError(f"the training set at {catalog.path('training_set')} lacks columns {lacking}")
    frame = (df.where((F.col("save") > 0) | (F.col("closeup") > 0)).select(*columns()).toArrow()
             .sort_by("event_id").to_pandas())
    newest = Window.partitionBy("pin_id").orderBy(F.col("feature_ts").desc())
    pins = (catalog.read("features_pin").withColumn("_r", F.row_number().over(newest)).where("_r = 1")
            .select("pin_id", *(F.col(f.name).alias(PIN_FEATURES.column(f.name)) for f in PIN_FEATURES.features))
            .toArrow().to_pandas())
    return frame, pins


def model_hash(state_dict, cfg, temperature: float, embedding_version: str) -> str:
    """``two-tower-`` + 16 hex digits of sha256 over the config, temperature, embedding version and weights."""
    digest = hashlib.sha256(json.dumps([asdict(cfg), temperature, embedding_version], sort_keys=True,
                                       default=str).encode())
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return "two-tower-" + digest.hexdigest()[:16]


def write_artifacts(out: Path, fit, inputs, cfg: TwoTowerConfig, index_cfg: IndexConfig, version: str,
                    embedding_version: str) -> tuple[float, object]:
    """The user tower, its spec and the pin-tower index into ``out`` (module docstring, step 5);
    returns (the ONNX export's largest difference from torch, the index builder's report)."""
    import numpy as np
    import torch

    from pinrec.export.build.ann_build import build_index
    from pinrec.export.build.onnx_two_tower import export_user_tower
    from pinrec.export.serving.two_tower import (
        INDEX_FILE,
        PREFIX,
        SPEC_FILE,
        USER_TOWER_FILE,
        TwoTowerSpec,
    )

    trainer = fit.trainer
    pin_out = trainer.pin_embeddings(inputs.pins).numpy()
    eval_users = torch.cat([trainer.user_embeddings(inputs.splits[s]) for s in ("validation", "test")]).numpy()
    queries = eval_users[np.random.default_rng(cfg.seed).permutation(len(eval_users))[:MAX_QUERIES]]
    out.mkdir(parents=True)
    diff = export_user_tower(trainer.model.user, out / USER_TOWER_FILE)
    trainer.model.to(trainer.device)
    spec = TwoTowerSpec(inputs.user_encoder.to_dict(), cfg.list_length, int(inputs.pins.embeddings.size(1)),
                        cfg.out_channels, embedding_version, version, fit.temperature, inputs.lists)
    (out / SPEC_FILE).write_text(spec.to_json())
    with tempfile.TemporaryDirectory(prefix="pinrec-two-tower-index-") as scratch:
        built = build_index(pin_out, inputs.pin_ids, queries,
                            dataclasses.replace(index_cfg, embedding_version=embedding_version), Path(scratch, "i"))
        for f in Path(scratch, "i").iterdir():  # the names the bundle ships them under
            shutil.move(f, out / (INDEX_FILE if f.name == "index.json" else PREFIX + f.name))
    return diff, built


def train_two_tower(spark, warehouse, artifacts: str | Path | Location, cfg: TwoTowerConfig, index_cfg: IndexConfig,
                    tracking_uri: str | None, experiment: str = EXPERIMENT, *,
                    artifact_root: ArtifactRoot | None = None) -> TwoTowerReport:
    """Read, train, embed, export and index (module docstring); ``tracking_uri`` None logs nothing."""
    from pinrec.jobs.index.pin_index import read_embeddings
    from pinrec.jobs.io.catalog import Catalog
    from pinrec.jobs.io.tracking import tracked_run
    from pinrec.models.two_tower_trainer import fit_two_tower, recall_at_k

    from .two_tower_inputs import two_tower_inputs

    start = time.perf_counter()
    catalog = Catalog.of(spark, warehouse)
    ids, vectors, emb_version, _ = read_embeddings(spark, catalog)
    frame, pin_frame = _read(spark, catalog)
    inputs = two_tower_inputs(frame, pin_frame, ids, vectors, cfg.list_length, cfg.max_pairs, cfg.seed)
    pairs = {s: len(d) for s, d in inputs.splits.items()}
    versions = catalog.reads
    params = {"two_tower": asdict(cfg), "pairs": pairs, "pins": len(ids), "embedding_version": emb_version,
              "input_versions": versions}
    track = tracked_run(tracking_uri, experiment, "two_tower", params, {"job": "two_tower"},
                        artifact_root=artifact_root) if tracking_uri else contextlib.nullcontext()
    folder = two_tower_folder(artifacts, emb_version)
    with track as run, tempfile.TemporaryDirectory(prefix="pinrec-two-tower-") as scratch:
        hook = None if run is None else \
            (lambda tau, epoch, m: run.log_metrics({f"tau_{tau:g}_{k}": v for k, v in m.items()}, step=epoch))
        fit = fit_two_tower(inputs.splits["train"], inputs.splits["validation"], inputs.pins, cfg,
                            inputs.user_encoder.cardinalities, inputs.pin_encoder.cardinalities, hook)
        test = inputs.splits["test"]
        test_recall = recall_at_k(fit.trainer.user_embeddings(test), fit.trainer.pin_embeddings(), test.pins,
                                  cfg.eval_k)
        version = model_hash(fit.trainer.model.state_dict(), cfg, fit.temperature, emb_version)
        tmp = Path(scratch, "out") if folder.is_s3 else Path(folder.path + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        diff, built = write_artifacts(tmp, fit, inputs, cfg, index_cfg, version, emb_version)
        report = TwoTowerReport(str(folder), emb_version, version, pairs, inputs.dropped, fit.temperature,
                                {f"{t:g}": r for t, r in fit.table.items()}, test_recall, cfg.eval_k, diff,
                                built.factory, built.recall_at_k, time.perf_counter() - start, versions,
                                None if run is None else run.run_id)
        (tmp / REPORT_FILE).write_text(json.dumps(asdict(report), indent=1, sort_keys=True))
        if folder.is_s3:
            replace_folder(tmp, folder, last=(REPORT_FILE,))
        else:
            shutil.rmtree(folder.path, ignore_errors=True)
            tmp.rename(folder.path)
        if run is not None:
            run.log_metrics({"test_recall": test_recall, "temperature": fit.temperature,
                             "onnx_max_diff": diff, "index_recall": built.recall_at_k, "seconds": report.seconds,
                             **{f"validation_recall_tau_{t:g}": r for t, r in fit.table.items()}})
            run.log_dict(asdict(report), "two_tower_report.json")
            run.set_tags({"model_version": version, "embedding_version": emb_version})
    return report


def run_job(cfg, echo=print) -> TwoTowerReport:
    """:func:`train_two_tower` with a Spark session from ``cfg.spark``; ``pinrec two-tower`` comes here."""
    from pinrec.jobs.io.spark import job_spark
    from pinrec.jobs.io.tracking import mlflow_artifact_root

    spark = job_spark(cfg)
    report = train_two_tower(spark, cfg.storage.warehouse, cfg.storage.location("artifacts"), cfg.two_tower,
                             cfg.index_for("two_tower"), cfg.storage.mlflow_tracking_uri,
                             artifact_root=mlflow_artifact_root(cfg.storage))
    echo("[two-tower] " + report.render())
    return report


def locate(artifacts: str | Path | Location, embedding_version: str, folder: str | Location | None = None,
           s3=None) -> Location | None:
    """The two-tower folder a bundle of ``embedding_version`` ships: ``folder`` when given (it must be
    complete), else ``<artifacts>/two_tower/<embedding_version>`` when that is complete, else None
    (the bundle then serves without the two-tower channel). Complete: it holds :data:`REPORT_FILE`."""
    at = as_location(folder, s3) if folder else two_tower_folder(artifacts, embedding_version)
    if (at / REPORT_FILE).is_file():
        return at
    if folder:
        raise FileNotFoundError(f"no complete two-tower model at {at} (no {REPORT_FILE}): run `pinrec two-tower`")
    return None


def bundle_files(local: str | Path, embedding_version: str) -> tuple[tuple[str, ...], dict]:
    """(paths of the files a bundle ships as ``extra``, the job's report) of a local two-tower
    folder; ValueError when it was built on other PinSage embeddings than ``embedding_version``
    (one embedding version per bundle: its index, ranker and both towers)."""
    from pinrec.export.serving.two_tower import FILES, INDEX_FILE, PREFIX, SPEC_FILE

    local = Path(local)
    report = json.loads((local / REPORT_FILE).read_text())
    built_on = json.loads((local / SPEC_FILE).read_text()).get("embedding_version")
    if built_on != embedding_version:
        raise ValueError(f"the two-tower model in {local} was trained on PinSage embeddings {built_on}, the bundle's "
                         f"are {embedding_version}: run `pinrec two-tower` on the current embeddings")
    shards = [PREFIX + s["file"] for s in json.loads((local / INDEX_FILE).read_text())["shards"]]
    return tuple(str(local / name) for name in (*FILES, *shards)), report
