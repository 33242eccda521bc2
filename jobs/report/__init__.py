"""The run report: one static HTML file about one pipeline run (a bundle version), ``pinrec report``.

:mod:`~pinrec.jobs.report.gather` reads the run's facts from what it left (the manifest, Delta
commits, artifacts, MLflow), :mod:`~pinrec.jobs.report.plots` draws them, :mod:`~pinrec.jobs.report.page`
lays out the page and :mod:`~pinrec.jobs.report.report` writes it.
"""
from .report import build_report, default_path

__all__ = ["build_report", "default_path"]
