"""The run report: one static HTML file about one pipeline run (a bundle version), ``pinrec report``.

:mod:`~pinrec.jobs.report.gather` reads the run's :mod:`~pinrec.jobs.report.facts` from what it left
(the manifest, the Delta commits through :mod:`~pinrec.jobs.report.commits`, the artifacts, MLflow),
:mod:`~pinrec.jobs.report.plots` draws them, :mod:`~pinrec.jobs.report.page` (with
:mod:`~pinrec.jobs.report.page_models` and :mod:`~pinrec.jobs.report.markup`) lays out the page and
:mod:`~pinrec.jobs.report.report` writes it.
"""
from .report import build_report, default_path

__all__ = ["build_report", "default_path"]
