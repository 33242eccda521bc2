"""The collaborative-filtering job (``pinrec cf``): ALS on engagement before the cut-off, served as channel ``cf``.

1. read ``actions`` through the catalog (pinned at its current Delta version: the lineage), keep the
   action types ``cf.actions`` (saves and closeups) before ``cutoff``;
2. :func:`pinrec.jobs.cf.cf_model.fit_cf` chooses ALS's settings on the held-out last
   ``cf.validation_days`` and fits them on all the engagement before the cut-off;
3. write ``<storage.artifacts>/cf/<version>/`` (:func:`cf_folder`): ``cf_items.faiss`` (exact
   inner-product index over the pin factors, ids = pin ids), ``cf_items.parquet``,
   ``cf_users.parquet`` (:mod:`pinrec.export.serving.cf_channel` reads them) and, last, ``cf.json``
   (version, cut-off, settings chosen, the held-out table, input versions, MLflow run): a folder with
   ``cf.json`` is complete. ``version`` = ``cf-`` + a hash of the cut-off, the settings, the input
   versions and the factors, so the same inputs and seed rebuild the same folder;
4. log the settings, the held-out table and the counts to MLflow (experiment ``pinrec-cf``).

The demo and the training DAG pass the graph's ``eval_from`` (the start of the ranker's test days)
as the cut-off, as PinSage trains on the edges before it: the channel never saw the days the
pipeline evaluates on. :func:`newest_cf` is what publish puts in the bundle.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pinrec.export.serving.cf_channel import (
    FILES,
    INDEX_FILE,
    ITEMS_FILE,
    USERS_FILE,
    factor_table,
)
from pinrec.jobs.io.catalog import Catalog
from pinrec.jobs.io.folders import replace_folder
from pinrec.jobs.io.lake import Location, as_location
from pinrec.jobs.io.timestamps import ts_lit

if TYPE_CHECKING:
    from pinrec.jobs.io.tracking import ArtifactRoot

    from .cf_model import CfFit
    from .config import CfConfig

EXPERIMENT = "pinrec-cf"
META_FILE = "cf.json"


@dataclass(frozen=True)
class CfReport:
    folder: str
    version: str
    cutoff: str
    users: int
    pins: int
    interactions: int
    params: dict
    validation: tuple[dict, ...]
    popularity_recall: float | None
    validation_users: int
    k: int
    input_versions: dict
    seconds: float
    run_id: str | None = None

    @property
    def recall(self) -> float | None:
        """Held-out recall@k of the settings chosen (None: nothing was measured)."""
        rows = [r for r in self.validation if all(r[k] == self.params[k] for k in self.params)]
        return rows[0]["recall"] if rows else None

    def render(self) -> str:
        held = "no held-out slice measured: the configured settings" if self.recall is None else (
            f"held-out recall@{self.k} {self.recall:.4f} (popularity {self.popularity_recall:.4f}) over "
            f"{self.validation_users} users, best of {len(self.validation)}")
        return (f"cf               ALS {self.params} on {self.interactions} engagements before {self.cutoff}: "
                f"{self.users} users x {self.pins} pins; {held}; {self.version}; {self.seconds:.1f} s -> {self.folder}")


def cf_folder(artifacts: str | Path | Location, version: str) -> Location:
    """``<artifacts>/cf/<version>``."""
    return as_location(artifacts) / "cf" / version


def newest_cf(artifacts: str | Path | Location) -> Location | None:
    """The folder under ``<artifacts>/cf`` whose ``cf.json`` (written last) is newest (a tie: the
    greatest name); None when there is none."""
    root = as_location(artifacts) / "cf"
    found = []
    for name, is_dir in root.entries() if root.is_dir() else ():
        meta = root / name / META_FILE
        if is_dir and meta.is_file():
            found.append((meta.fs.modified(meta.path).timestamp(), name))
    return root / max(found)[1] if found else None


def fetch_cf(folder: Location, into: str | Path) -> tuple[tuple[str, ...], dict]:
    """(local paths of the folder's served files and ``cf.json``, ``cf.json`` parsed): the folder's
    own files when local, else downloaded into ``into``. FileNotFoundError naming a missing file."""
    missing = [n for n in (*FILES, META_FILE) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"the cf folder {folder} lacks {missing}: rerun `pinrec cf`")
    paths = []
    for name in (*FILES, META_FILE):
        if folder.is_s3:
            Path(into).mkdir(parents=True, exist_ok=True)
            (folder / name).fs.get((folder / name).path, str(Path(into, name)))
        paths.append(str(Path(into, name)) if folder.is_s3 else (folder / name).path)
    return tuple(paths), json.loads((folder / META_FILE).read_text())


def read_engagement(catalog: Catalog, actions: tuple[str, ...], cutoff: dt.datetime):
    """``(user_id, pin_id, ts)`` (pandas) of the ``actions`` of those types before ``cutoff``."""
    from pyspark.sql import functions as F

    from pinrec.jobs.retrieval.baselines import check_log

    catalog.require(["actions"], "run `pinrec ingest` first")
    df = catalog.read("actions").where(F.col("type").isin(list(actions)) & (F.col("ts") < ts_lit(cutoff)))
    return check_log(df.select("user_id", "pin_id", "ts").toPandas())


def cf_version(fit: CfFit, cutoff: dt.datetime, inputs: dict) -> str:
    digest = hashlib.sha256(json.dumps({"cutoff": cutoff.isoformat(), "params": fit.params, "read": inputs},
                                       sort_keys=True).encode())
    f = fit.factors
    for array in (f.user_ids, f.user_factors, f.pin_ids, f.item_factors):
        digest.update(np.ascontiguousarray(array).tobytes())
    return "cf-" + digest.hexdigest()[:16]


def write_files(fit: CfFit, folder: str | Path) -> None:
    """The index and the two factor tables of ``fit`` in the local ``folder``."""
    import faiss
    import pyarrow.parquet as pq

    f = fit.factors
    index = faiss.IndexIDMap(faiss.IndexFlatIP(f.item_factors.shape[1]))
    index.add_with_ids(np.ascontiguousarray(f.item_factors), f.pin_ids)
    faiss.write_index(index, str(Path(folder, INDEX_FILE)))
    pq.write_table(factor_table(f.pin_ids, f.item_factors, "pin_id"), Path(folder, ITEMS_FILE))
    pq.write_table(factor_table(f.user_ids, f.user_factors, "user_id"), Path(folder, USERS_FILE))


def train_cf(spark, warehouse, cfg: CfConfig, tracking_uri: str | None, *, cutoff: dt.datetime,
             artifacts: str | Path | Location, experiment: str = EXPERIMENT,
             artifact_root: ArtifactRoot | None = None) -> CfReport:
    """Read, fit, write (module docstring). ``warehouse``: a path, Location or catalog;
    ``artifacts``: ``storage.location("artifacts")`` (on S3 the folder is built locally and uploaded,
    ``cf.json`` last); ``tracking_uri`` None logs nothing to MLflow."""
    from pinrec.jobs.io.tracking import tracked_run

    from .cf_model import fit_cf

    start = time.perf_counter()
    catalog = Catalog.of(spark, warehouse)
    log = read_engagement(catalog, cfg.actions, cutoff)
    inputs = {"actions": catalog.reads["actions"]}
    params = {"cf": asdict(cfg), "cutoff": cutoff.isoformat(), "input_versions": inputs, "interactions": len(log)}
    track = tracked_run(tracking_uri, experiment, "cf", params, {"job": "cf"}, artifact_root=artifact_root) \
        if tracking_uri else contextlib.nullcontext()
    with track as run, tempfile.TemporaryDirectory(prefix="pinrec-cf-") as scratch:
        fit = fit_cf(log, cutoff, cfg)
        version = cf_version(fit, cutoff, inputs)
        folder = cf_folder(artifacts, version)
        meta = {"version": version, "cutoff": cutoff.isoformat(), "actions": list(cfg.actions), "params": fit.params,
                "iterations": cfg.iterations, "validation_days": fit.validation_days, "validation_k": cfg.validation_k,
                "validation": list(fit.validation), "popularity_recall": fit.popularity_recall,
                "validation_users": fit.validation_users, "users": len(fit.factors.user_ids),
                "pins": len(fit.factors.pin_ids), "interactions": fit.interactions, "input_versions": inputs,
                "mlflow_run_id": None if run is None else run.run_id}
        tmp = Path(scratch, "cf") if folder.is_s3 else Path(folder.path + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write_files(fit, tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, sort_keys=True, indent=1))
        if folder.is_s3:
            replace_folder(tmp, folder, last=(META_FILE,))
        else:
            shutil.rmtree(folder.path, ignore_errors=True)
            tmp.rename(folder.path)
        report = CfReport(str(folder), version, cutoff.isoformat(), meta["users"], meta["pins"], fit.interactions,
                          fit.params, fit.validation, fit.popularity_recall, fit.validation_users, cfg.validation_k,
                          inputs, time.perf_counter() - start, meta["mlflow_run_id"])
        if run is not None:
            for step, row in enumerate(fit.validation):
                run.log_metrics({"validation_recall": row["recall"]}, step=step)
            chosen = {"chosen_recall": report.recall, "popularity_recall": fit.popularity_recall}
            run.log_metrics({"users": report.users, "pins": report.pins, "seconds": report.seconds,
                             **{k: v for k, v in chosen.items() if v is not None}})
            run.log_dict(meta, META_FILE)
            run.set_tags({"cf_version": version, **{f"chosen_{k}": v for k, v in fit.params.items()}})
    return report
