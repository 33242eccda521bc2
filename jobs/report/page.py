"""The run report as one static HTML page: :func:`render` (pure: :class:`~pinrec.jobs.report.facts.RunFacts`
in, text out; no server, no scripts, no external files — the plots are inline SVG, the ranker's
MLflow figures inline PNG).

One ``<section data-section=NAME>`` per :data:`SECTIONS` entry, in that order; each plot is a
``<figure class="plot" data-plot=NAME>``, and where a plot or table cannot exist for this run a
``<p class="missing" data-missing=NAME>`` says exactly why (never an empty plot). The run's own
sections (summary, ingestion, drift, blessing) are here, the models' in :mod:`~pinrec.jobs.report.page_models`.
"""
from __future__ import annotations

from .facts import RunFacts
from .markup import esc, figure, missing, num, table
from .page_models import index, pinsage, ranker, retrieval
from .plots import bars_figure, mark, rows_figure

__all__ = ["SECTIONS", "render"]

SECTIONS = {"summary": "Run", "ingestion": "Ingestion", "drift": "Feature drift vs the training window",
            "pinsage": "PinSage embeddings", "retrieval": "Retrieval", "ranker": "Ranker", "index": "Index",
            "blessing": "Blessing verdict"}
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 8px;font-size:.85em;text-align:left}td.n{text-align:right}
.missing{color:#8a5a00;background:#fff6e0;padding:4px 8px}.ok{color:#060}.bad{color:#a00}
figure.plot{margin:.5em 0}figure.plot svg,figure.plot img{max-width:100%;height:auto}code{background:#f4f4f4}"""


def _section(name: str, body: str) -> str:
    return f'<section id="{name}" data-section="{name}"><h2>{esc(SECTIONS[name])}</h2>{body}</section>'


def summary(f: RunFacts) -> str:
    m, lin = f.manifest, f.manifest.lineage
    verdict = '<b class="ok">blessed</b>' if m.blessing.blessed else '<b class="bad">NOT blessed</b>'
    where = (f"channel <code>{esc(f.channel)}</code> serves this version" if f.promoted else
             f"channel <code>{esc(f.channel)}</code> serves {esc(f.channel_version or 'nothing')}, not this version")
    rows = [("bundle", f"{m.name}/{m.version}"), ("created", m.created_at.isoformat(timespec="seconds")),
            ("store", f.store_uri), ("code version", lin.code_version), ("config hash", lin.config_hash),
            *((f"MLflow run ({role})", run) for role, run in sorted(lin.mlflow_run_ids.items())),
            *((f"input {t}", v) for t, v in sorted(lin.delta_versions.items()))]
    ui = (f"<p>The same runs in MLflow: <code>mlflow ui --backend-store-uri {esc(f.tracking_uri)}</code></p>"
          if f.tracking_uri else "<p>MLflow tracking was off (storage.mlflow_tracking_uri unset).</p>")
    return f"<p>{verdict}; {where}.</p>" + table(("", ""), rows) + ui


def ingestion(f: RunFacts) -> str:
    ing = f.ingestion
    if isinstance(ing, str):
        return missing("ingestion", ing)
    rows = [(t, ing.versions[t], len(ing.batches[t]), c["in"], c["valid"], c["quarantined"], c["duplicates"])
            for t, c in sorted(ing.counts.items())]
    reasons = [(t, r, n) for t, by in sorted(ing.reasons.items()) for r, n in sorted(by.items(), key=lambda kv: -kv[1])]
    return ("<p>The ingest batches behind the raw-table versions this bundle's inputs were built from.</p>"
            + figure("rows", lambda: rows_figure(ing.counts))
            + table(("table", "version", "batches", "rows in", "valid", "quarantined", "duplicates dropped"), rows)
            + "<h3>Quarantine reasons</h3>"
            + (table(("table", "reason", "rows"), reasons) if reasons else
               missing("quarantine", "no row of these batches was quarantined")))


def drift(f: RunFacts) -> str:
    from pinrec.export.build.blessing import category_psi_limit
    from pinrec.jobs.monitoring.drift_plots import (
        category_psi_figure,
        feature_drift_figure,
    )

    d = f.manifest.metrics.drift
    detail = f.drift if isinstance(f.drift, dict) else {}
    warming = list(detail.get("warming_up") or ())
    if not d:
        return missing("drift", f"nothing compared yet: every signal is still in warm-up ({', '.join(warming)})"
                       if warming else "the manifest records no drift: monitoring.at_publish was off when it was "
                       "published")

    def of(kind: str) -> dict[str, float]:
        return {k.split(".", 1)[1]: v for k, v in d.items() if k.startswith(f"{kind}.")}

    psi, feats, cats = of("score_psi"), of("feature_drift"), of("category_psi")
    nulls = sorted(of("null_rate_shift").items(), key=lambda kv: -kv[1])
    unseen = sorted(of("unseen_category_share").items(), key=lambda kv: -kv[1])
    labels = sorted(of("label_rate_shift").items())

    def bars(make, values, threshold=None, **limits):
        fig = make(values, threshold=threshold, **limits)
        mark(fig.axes[0].patches)
        return fig

    scores_warming = [w for w in warming if w.startswith("score:")]
    head = (f"<p>Day {esc(detail['day'])} ({num(detail.get('current_rows'))} rows) against {esc(detail['reference'])} "
            f"({num(detail.get('reference_rows'))} rows); the PSI scores the candidate ranker.</p>"
            if "day" in detail and "reference" in detail else
            f"<p>The newest training-set day against the training window ({esc(f.drift)}).</p>")
    score = figure("score_psi", lambda: bars_figure(psi, "score PSI per task", "PSI")) if psi else missing(
        "score_psi", f"no score PSI: {', '.join(scores_warming)} still in warm-up (the reference days do not yet "
                     "cover the longest feature window)" if scores_warming else "the manifest records no score PSI")
    limit = f" (the gate's limit: {f.max_null_rate_shift:g})" if f.max_null_rate_shift is not None else ""
    unseen_limit = (f" (the gate's limit: {f.max_unseen_category_share:g})"
                    if f.max_unseen_category_share is not None else "")
    others = [w for w in warming if not w.startswith("score:")]
    noise = of("category_psi_noise")
    column_limits = {c: limit for c in cats
                     if (limit := category_psi_limit(f.max_category_psi, f.category_psi_noise_factor,
                                                     noise.get(c))) is not None}
    category = figure("category_psi", lambda: bars(category_psi_figure, cats, limits=column_limits)) if cats else \
        missing("category_psi", "the manifest records no category PSI: no categorical feature was compared")
    return (head + score
            + (figure("feature_drift", lambda: bars(feature_drift_figure, feats, f.max_feature_drift)) if feats else
               missing("feature_drift", "no numeric feature was compared"
                       + (" (those in warm-up are listed below)" if others else "")))
            + (f"<p>Features still in warm-up, not compared: {esc(', '.join(others))}.</p>" if others else "")
            + (f"<p>Null-rate shift per feature, |null rate of the day - of the window|{esc(limit)}:</p>"
               + table(("feature", "null-rate shift"), nulls) if nulls else "")
            + category
            + ("<p>Unseen-category share per feature, of the day's non-null rows those in a category the window "
               f"never had{esc(unseen_limit)}:</p>"
               + table(("feature", "unseen category share"), unseen) if unseen else "")
            + (table(("task", "label rate shift"), labels) if labels else
               missing("label_rate", "labels of the newest day were not mature yet: no label-rate shift")))


def blessing(f: RunFacts) -> str:
    b = f.manifest.blessing
    verdict = '<b class="ok">blessed</b>' if b.blessed else '<b class="bad">NOT blessed</b>'
    items = "".join(f"<li>{esc(r)}</li>" for r in b.reasons) or "<li>every check passed</li>"
    notes = "".join(f"<li>{esc(n)}</li>" for n in b.notes)
    return (f"<p>{verdict}{' (promoted by force)' if b.forced else ''}; judged against "
            f"{esc(b.baseline_version or 'no earlier version')}; "
            f"{'promoted to' if f.promoted else 'not on'} channel <code>{esc(f.channel)}</code>.</p>"
            f"<ul>{items}</ul>" + (f"<p>Checks the gate could not make:</p><ul>{notes}</ul>" if notes else ""))


def render(f: RunFacts) -> str:
    """The whole page (module docstring)."""
    title = f"pinrec run report: {f.manifest.name}/{f.manifest.version}"
    parts = {"summary": summary, "ingestion": ingestion, "drift": drift, "pinsage": pinsage,
             "retrieval": retrieval, "ranker": ranker, "index": index, "blessing": blessing}
    body = "".join(_section(name, parts[name](f)) for name in SECTIONS)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{body}</body></html>\n")
