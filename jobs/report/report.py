"""``build_report``: gather one run's facts, render the page, write one HTML file (``pinrec report``,
the demo's last step, the training DAG's last task)."""
from __future__ import annotations

import logging
from pathlib import Path

from pinrec.jobs.io.lake import Location, as_location

log = logging.getLogger(__name__)


def default_path(cfg, version: str) -> Location:
    """``<storage.artifacts>/reports/<bundle version>.html``."""
    return cfg.storage.location("artifacts") / "reports" / f"{version}.html"


def build_report(cfg, ref: str | None = None, out: str | Path | Location | None = None,
                 spark=None) -> Path | Location:
    """Write the report of bundle ``ref`` (a version of ``cfg.publish.name`` or ``<name>/<version>``;
    None: the newest published version, promoted or not) to ``out`` (a local path or a
    :class:`~pinrec.jobs.io.lake.Location`; default :func:`default_path`) and return where it is: a
    ``Path`` when local (open it in a browser), the Location on S3.
    ``spark``: the session to read the Delta commits with (default: :func:`~pinrec.jobs.io.spark.job_spark`
    of ``cfg.spark``, which reuses a running one)."""
    from .gather import gather
    from .page import render

    if spark is None:
        from pinrec.jobs.io.spark import job_spark

        spark = job_spark(cfg)
    facts = gather(spark, cfg, ref)
    where = as_location(out, cfg.storage.location("artifacts").s3) if out is not None \
        else default_path(cfg, facts.manifest.version)
    where.write_text(render(facts))  # one object, written whole (a reader never sees half a page)
    log.info("[report] %s", where.uri)
    return where if where.is_s3 else Path(where.path)
