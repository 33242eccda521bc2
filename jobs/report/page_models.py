"""The run report's model sections: PinSage (loss, stability), retrieval (funnel recall per channel,
``pinrec eval-retrieval`` vs the baselines), the ranker (AUC, calibration, rate by position,
debiasing) and the index (the candidates' recall against latency). Pure: facts in, HTML out."""
from __future__ import annotations

from .facts import RunFacts, funnel_recall, index_points, ranker_auc
from .markup import esc, figure, missing, num, png, table
from .plots import bars_figure, curve_figure, grouped_bars_figure, recall_latency_figure

FAST = ("the ranker ran with ranker_job.evaluation: fast, which trains no baselines, no no-position twin and "
        "no extra debiasing seeds and computes no bootstrap intervals; set ranker_job.evaluation: full for them")


def pinsage(f: RunFacts) -> str:
    p = f.pinsage
    if isinstance(p, str):
        return missing("pinsage", p)
    start = p.warm_start or (f"warm-started from {p.warm_start_from}" if p.warm_start_from else "cold start")
    head = (f"<p>Embedding version <code>{esc(p.model_version)}</code> (pin_embeddings@{esc(p.delta_version)}); "
            f"{esc(start)}.</p>")
    loss = missing("loss", p.loss) if isinstance(p.loss, str) else figure(
        "loss", lambda: curve_figure([e for e, _ in p.loss], [v for _, v in p.loss], "PinSage training loss",
                                     "epoch", "mean loss"))
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
                + figure("funnel_recall", lambda: grouped_bars_figure(by_cut, "candidate recall of saves", "recall"))
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
            f"{num(ix.get('ntotal'))} pins in {num(ix.get('num_shards'))} shard(s): recall@{esc(ix.get('k'))} "
            f"{num(measured.get('recall_at_k'))}, p50 {num(lat.get('p50_ms'))} ms, p99 {num(lat.get('p99_ms'))} ms "
            f"on {num(measured.get('queries'))} held-out queries.</p>"
            + figure("recall_latency", lambda: recall_latency_figure(points, chosen, ix.get("k")))
            + table(("candidate", "recall", "p50 ms"), [(p["label"], p["recall"], p["latency_ms"]) for p in points])
            + (table(("nprobe", "recall", "95% lower bound"), tuning) if tuning else ""))
