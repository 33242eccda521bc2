"""The run report as one static HTML page: :func:`render` (pure: :class:`~pinrec.jobs.report.facts.RunFacts`
in, text out; no server, no scripts, no external files — the plots are inline SVG, the ranker's
MLflow figures inline PNG).

One ``<section data-section=NAME>`` per :data:`SECTIONS` entry, in that order; each plot is a
``<figure class="plot" data-plot=NAME>``, and where a plot or table cannot exist for this run a
``<p class="missing" data-missing=NAME>`` says exactly why (never an empty plot).
"""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

from .facts import RunFacts, funnel_recall, index_points, ranker_auc
from .plots import (
    bars_figure,
    curve_figure,
    grouped_bars_figure,
    mark,
    recall_latency_figure,
    rows_figure,
    svg,
)

SECTIONS = {"summary": "Run", "ingestion": "Ingestion", "drift": "Feature drift vs the training window",
            "pinsage": "PinSage embeddings", "retrieval": "Retrieval", "ranker": "Ranker", "index": "Index",
            "blessing": "Blessing verdict"}
FAST = ("the ranker ran with ranker_job.evaluation: fast, which trains no baselines, no no-position twin and "
        "no extra debiasing seeds and computes no bootstrap intervals; set ranker_job.evaluation: full for them")
STYLE = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
h1{font-size:1.4em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 8px;font-size:.85em;text-align:left}td.n{text-align:right}
.missing{color:#8a5a00;background:#fff6e0;padding:4px 8px}.ok{color:#060}.bad{color:#a00}
figure.plot{margin:.5em 0}figure.plot svg,figure.plot img{max-width:100%;height:auto}code{background:#f4f4f4}"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    return "nan" if math.isnan(value) else f"{value:.4g}"


def table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    body = "".join("<tr>" + "".join(f'<td class="n">{_num(c)}</td>' if isinstance(c, (int, float)) and not
                                    isinstance(c, bool) else f"<td>{_num(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" + body + "</table>"


def missing(name: str, why: str) -> str:
    return f'<p class="missing" data-missing="{esc(name)}">{esc(why)}</p>'


def figure(name: str, make) -> str:
    """``make()`` -> a matplotlib Figure, inlined as SVG; a ValueError (nothing to draw) -> :func:`missing`."""
    try:
        fig = make()
    except ValueError as err:
        return missing(name, str(err))
    return f'<figure class="plot" data-plot="{esc(name)}">{svg(fig)}</figure>'


def png(name: str, data: bytes, caption: str) -> str:
    return (f'<figure class="plot" data-plot="{esc(name)}"><img alt="{esc(caption)}" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}"><figcaption>{esc(caption)}</figcaption>'
            "</figure>")


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
    from pinrec.jobs.monitoring.drift_plots import feature_drift_figure

    d = f.manifest.metrics.drift
    if not d:
        return missing("drift", "the manifest records no drift: monitoring.at_publish was off when it was published")
    psi = {k.split(".", 1)[1]: v for k, v in d.items() if k.startswith("score_psi.")}
    feats = {k.split(".", 1)[1]: v for k, v in d.items() if k.startswith("feature_drift.")}
    labels = [(k.split(".", 1)[1], v) for k, v in sorted(d.items()) if k.startswith("label_rate_shift.")]

    def feature_bars():
        fig = feature_drift_figure(feats, threshold=f.max_feature_drift)
        mark(fig.axes[0].patches)
        return fig

    detail = f.drift if isinstance(f.drift, dict) else {}
    warming = list(detail.get("warming_up") or ())
    scores_warming = [w for w in warming if w.startswith("score:")]
    head = (f"<p>Day {esc(detail['day'])} ({_num(detail.get('current_rows'))} rows) against {esc(detail['reference'])} "
            f"({_num(detail.get('reference_rows'))} rows); the PSI scores the candidate ranker.</p>"
            if "day" in detail and "reference" in detail else
            f"<p>The newest training-set day against the training window ({esc(f.drift)}).</p>")
    score = figure("score_psi", lambda: bars_figure(psi, "score PSI per task", "PSI")) if psi else missing(
        "score_psi", f"no score PSI: {', '.join(scores_warming)} still in warm-up (the reference days do not yet "
                     "cover the longest feature window)" if scores_warming else "the manifest records no score PSI")
    others = [w for w in warming if not w.startswith("score:")]
    return (head + score
            + figure("feature_drift", feature_bars)
            + (f"<p>Features still in warm-up, not compared: {esc(', '.join(others))}.</p>" if others else "")
            + (table(("task", "label rate shift"), labels) if labels else
               missing("label_rate", "labels of the newest day were not mature yet: no label-rate shift")))


def pinsage(f: RunFacts) -> str:
    p = f.pinsage
    if isinstance(p, str):
        return missing("pinsage", p)
    start = p.warm_start or (f"warm-started from {p.warm_start_from}" if p.warm_start_from else "cold start")
    head = (f"<p>Embedding version <code>{esc(p.model_version)}</code> (pin_embeddings@{esc(p.delta_version)}); "
            f"{esc(start)}.</p>")
    loss = missing("loss", p.loss) if isinstance(p.loss, str) else figure(
        "loss", lambda: curve_figure([e for e, _ in p.loss], [v for _, v in p.loss],
                                           "PinSage training loss", "epoch", "mean loss"))
    stability = p.stability or f.manifest.metrics.stability
    moved = (figure("stability", lambda: bars_figure(stability, "stability vs the previous version", "value"))
             + table(("metric", "value"), sorted(stability.items()))) if stability else \
        missing("stability", "a first embedding version: there is no previous version to compare with")
    return head + loss + "<h3>Stability</h3>" + moved


def retrieval(f: RunFacts) -> str:
    funnel = f.manifest.metrics.funnel
    by_cut = funnel_recall(funnel)
    out = f"<p>Index recall@{f.manifest.metrics.k} against exact search: {f.manifest.metrics.recall_at_k:.4f}.</p>"
    if by_cut:
        out += ("<h3>Candidate recall of the day's saves, per channel (funnel replay)</h3>"
                + figure("funnel_recall", lambda: grouped_bars_figure(by_cut, "candidate recall of saves",
                                                                            "recall"))
                + table(("key", "value"), sorted((k, v) for k, v in funnel.items() if k.startswith("served."))))
    else:
        out += missing("funnel_recall", "the manifest records no funnel replay: funnel.at_publish was off")
    ev = f.retrieval_eval
    if isinstance(ev, str):
        return out + missing("retrieval_eval", ev)
    rows = ev.get("rows") or []
    first = rows[0]["task"] if rows else None
    groups: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["task"] == first:
            for name, value in r["metrics"].items():
                groups.setdefault(name, {})[r["model"]] = value
    names = list(dict.fromkeys(n for r in rows for n in r["metrics"]))
    return (out + f"<h3>Offline evaluation vs baselines (<code>{esc(ev['where'])}</code>, written {esc(ev['modified'])})</h3>"
            + figure("retrieval_eval", lambda: grouped_bars_figure(groups, f"{first}: models", "value"))
            + table(("task", "model", *names, "queries"),
                    [(r["task"], r["model"], *(r["metrics"].get(n) for n in names), r["queries"]) for r in rows]))


def ranker(f: RunFacts) -> str:
    r = f.ranker
    if isinstance(r, str):
        return missing("ranker", r)
    rows = [(m["model"], m["task"], m["auc"], m.get("auc_low"), m.get("auc_high"), m["logloss"], m["ece"], m["ndcg"])
            for m in r.metrics]
    out = (f"<p>Ranker <code>{esc(r.model_version)}</code> (<code>{esc(r.folder)}</code>), test split; "
           f"evaluation: {esc(r.evaluation or 'unknown')}.</p>"
           + figure("auc", lambda: grouped_bars_figure(ranker_auc(r.metrics), "test AUC by task", "AUC"))
           + table(("model", "task", "AUC", "AUC low", "AUC high", "log-loss", "ECE", "NDCG"), rows))
    if isinstance(r.plots, str):
        out += missing("reliability", r.plots) + missing("ctr_by_position", r.plots)
    else:
        for name, caption in (("reliability", "calibration: reliability diagram (equal-mass bins)"),
                              ("ctr_by_position", ("rate by position: observed, with position, position-free "
                                                  "(debiased)"))):
            out += png(name, r.plots[name], caption) if name in r.plots else \
                missing(name, f"the ranker's MLflow run holds no {name} figure")
    out += "<h3>Position debiasing (Kendall tau against the oracle's position-free ranking)</h3>"
    if r.debias:
        out += table(("task", "tau debiased", "tau no position", "low", "high", "verdict"),
                     [(d["task"], d["tau_debiased"], d["tau_no_position"], d["low"], d["high"], d["verdict"])
                      for d in r.debias])
    else:
        out += missing("debias", FAST if r.evaluation == "fast" else
                       "no debiasing comparison: the ranker trained no no-position twin (or had no oracle)")
    return out


def index(f: RunFacts) -> str:
    ix = f.index
    if isinstance(ix, str):
        return missing("index", ix)
    points, chosen = index_points(ix)
    measured = ix.get("measured") or {}
    lat = measured.get("latency") or {}
    tuning = [(t.get("nprobe"), t.get("recall"), t.get("lower_bound")) for t in measured.get("tuning") or []]
    params = ", ".join(f"{k}={v}" for k, v in sorted((ix.get("search_params") or {}).items()))
    return (f"<p>Built <code>{esc(ix.get('factory'))}</code>{f' ({esc(params)})' if params else ''} over "
            f"{_num(ix.get('ntotal'))} pins in {_num(ix.get('num_shards'))} shard(s): recall@{esc(ix.get('k'))} "
            f"{_num(measured.get('recall_at_k'))}, p50 {_num(lat.get('p50_ms'))} ms, p99 {_num(lat.get('p99_ms'))} ms "
            f"on {_num(measured.get('queries'))} held-out queries.</p>"
            + figure("recall_latency", lambda: recall_latency_figure(points, chosen, ix.get("k")))
            + table(("candidate", "recall", "p50 ms"), [(p["label"], p["recall"], p["latency_ms"]) for p in points])
            + (table(("nprobe", "recall", "95% lower bound"), tuning) if tuning else ""))


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
