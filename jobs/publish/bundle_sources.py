"""What a serving bundle is built from: the newest exported ranker and its metrics, the pins' serving
metadata aligned with their embeddings, the embedding stability the ``pin_embeddings`` commit records,
and the lineage's code version and configuration hash (:mod:`pinrec.jobs.publish.serving_bundle` puts
them together)."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pinrec.jobs.io.lake import Location, as_location

log = logging.getLogger("pinrec.jobs.publish.bundle")  # the name it logged under before the split


def code_version(repo: str | None = None) -> str:
    """The git sha of the code that runs (``unknown`` outside a git checkout)."""
    here = repo or str(Path(__file__).resolve().parents[2])
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and sha else "unknown"


def config_hash(cfg) -> str:
    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]


def newest_ranker(artifacts: str | Path | Location) -> Location:
    """The folder of the most recently exported ranker under ``<artifacts>/ranker``: the one whose
    ``metrics.json`` (written last, :func:`~pinrec.jobs.ranking.ranker_artifacts.publish_artifacts`)
    was modified last; on a tie (S3 keeps whole seconds) the greatest folder name."""
    root = as_location(artifacts) / "ranker"
    found = []
    for name, is_dir in root.entries():
        metrics = root / name / "metrics.json"
        if is_dir and metrics.is_file():
            found.append((metrics.fs.modified(metrics.path).timestamp(), name))
    if not found:
        raise FileNotFoundError(f"no exported ranker under {root}: run `pinrec ranker` first")
    return root / max(found)[1]


def ranker_metrics(folder: str | Path | Location) -> tuple[dict[str, float], dict[str, float], dict[str, Any]]:
    """(AUC by task, ECE by task, the whole report) of the served scores (model ``ranker``)."""
    report = json.loads((as_location(folder) / "metrics.json").read_text())
    auc, ece = {}, {}
    for row in report["metrics"]:
        if row["model"] == "ranker":
            if not (math.isfinite(row["auc"]) and math.isfinite(row["ece"])):
                raise ValueError(f"ranker {folder}: task {row['task']} has no finite AUC/ECE on the test split")
            auc[row["task"]], ece[row["task"]] = row["auc"], row["ece"]
    if not auc:
        raise ValueError(f"{folder}/metrics.json has no rows for the model 'ranker'")
    return auc, ece, report


def pin_metadata(spark, warehouse, ids: np.ndarray, vectors: np.ndarray):
    """(pins table of PIN_COLUMNS sorted by pin_id, (N, D) embeddings aligned to it, pins Delta version).
    ``warehouse``: a path, Location or :class:`~pinrec.jobs.io.catalog.Catalog`."""
    import pyarrow as pa
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from pinrec.jobs.io.catalog import Catalog

    catalog = Catalog.of(spark, warehouse)
    if not catalog.exists("pins"):
        raise FileNotFoundError(f"no pins table at {catalog.path('pins')}: run `pinrec ingest` first")
    latest = Window.partitionBy("pin_id").orderBy(F.col("dt").desc())
    df = catalog.read("pins")
    version = catalog.reads["pins"]
    pins = (df
            .withColumn("_r", F.row_number().over(latest)).where("_r = 1")
            .select("pin_id", "category", "created_at", "nsfw").toArrow().sort_by("pin_id"))
    created = pins.column("created_at").cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
    table = pa.table({"pin_id": pins.column("pin_id"), "category": pins.column("category"), "created_at": created,
                      "nsfw": pins.column("nsfw").fill_null(False),
                      "blocked": pa.array(np.zeros(pins.num_rows, bool))})
    pin_ids = table.column("pin_id").to_numpy()
    aligned = np.zeros((len(pin_ids), vectors.shape[1]), np.float32)
    pos = np.searchsorted(ids, pin_ids)
    found = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == pin_ids)
    aligned[found] = vectors[pos[found]]
    if not found.all():
        log.warning("%d pin(s) have no embedding (zeros in the bundle; the index does not hold them)",
                    int((~found).sum()))
    return table, aligned, version


def embedding_stability(catalog) -> dict[str, float]:
    """The finite ``stability`` numbers the ``pin_embeddings`` commit read here records (its PinSage
    version against the one before it; {} for a first version)."""
    import math

    moved = catalog.user_metadata("pin_embeddings").get("stability") or {}
    return {k: float(v) for k, v in moved.items() if isinstance(v, (int, float)) and math.isfinite(v)}

