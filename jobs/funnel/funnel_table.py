"""The funnel replay's table (:meth:`pinrec.jobs.funnel.replay.FunnelReport.render`), from its flat metrics.

Every mean over users prints as ``value±half-width`` of its 95 % interval (``ci95.<key>``; the value
alone when there is none: a single user); a number the replay did not measure prints as ``-``.
Rows: candidate recall per scope (merged, each channel alone) and cut-off; the served list; with a
pre-ranker replayed (``prerank.keep``), its arms ``on`` / ``off`` and their difference side by side
(how many candidates and which share of the day's saves, closeups and true top pins reach the DCN
ranker; the served list's HR, NDCG and recalls); channel shares; the diversity guardrail; notes.
"""
from __future__ import annotations

from typing import Any

WIDTH = 16


def cell(metrics: dict[str, float], key: str, digits: int = 4, width: int = WIDTH) -> str:
    """``metrics[key]`` with its interval (``ci95.<key>``), right-aligned in ``width``; ``-`` when absent."""
    if key not in metrics:
        return f"{'-':>{width}}"
    ci = metrics.get(f"ci95.{key}")
    text = f"{metrics[key]:.{digits}f}" + ("" if ci is None else f"±{ci:.{digits}f}")
    return f"{text:>{width}}"


def _inline(metrics: dict[str, float], key: str, digits: int = 4) -> str:
    return cell(metrics, key, digits, 0).strip()


def render(report: Any) -> str:
    """The table of a :class:`~pinrec.jobs.funnel.replay.FunnelReport` (module docstring)."""
    m, k, cutoffs = report.metrics, report.k, report.cutoffs
    cols = [f"{what}@{n}" for what in ("saves", "closeups") for n in cutoffs]
    truth = any(key.startswith("candidates.merged.truth") for key in m)
    cols += [f"truth@{n}" for n in cutoffs] if truth else []
    lines = [(f"funnel replay of {report.day}: {report.users} users with saves, top-{k} served "
              "(a±b: mean over users ± half-width of its 95 % interval)"),
             f"  {'candidate recall':<24}" + "".join(f"{c:>{WIDTH}}" for c in cols)]
    for scope in ("merged", *report.channels):
        keys = [f"candidates.{scope}.recall@{n}.{w}" for w in ("saves", "closeups") for n in cutoffs]
        keys += [f"candidates.{scope}.truth_recall@{n}" for n in cutoffs] if truth else []
        lines.append(f"  {scope:<24}" + "".join(cell(m, key) for key in keys))
    if f"served.hr@{k}" in m:
        parts = [f"HR@{k} {_inline(m, f'served.hr@{k}')}", f"NDCG@{k} {_inline(m, f'served.ndcg@{k}')}",
                 f"recall@{k} saves {_inline(m, f'served.recall@{k}.saves')}"]
        parts += [f"truth@{k} {_inline(m, f'served.truth_recall@{k}')}"] if f"served.truth_recall@{k}" in m else []
        lines.append(f"  {'served':<24} " + ", ".join(parts))
    if "prerank.keep" in m:
        lines += _prerank(m, k)
    shares = ", ".join(f"{c} {m[f'served.share.{c}']:.1%}" for c in report.channels if f"served.share.{c}" in m)
    lines.append(f"  served channel shares     {shares}")
    lines.append(f"  diversity                 mean pairwise cosine {_inline(m, 'served.cosine')}, "
                 f"category entropy {_inline(m, 'served.category_entropy', 3)} bits")
    lines += [f"  note: {n}" for n in report.notes]
    return "\n".join(lines)


def _prerank(m: dict[str, float], k: int) -> list[str]:
    """The pre-ranker's rows: arms on / off and on − off."""
    suffixes = [("to ranker", "to_ranker.size", 1), ("saves", "to_ranker.recall.saves", 4),
                ("closeups", "to_ranker.recall.closeups", 4), ("truth", "to_ranker.truth_recall", 4),
                (f"HR@{k}", f"hr@{k}", 4), (f"NDCG@{k}", f"ndcg@{k}", 4), (f"saves@{k}", f"recall@{k}.saves", 4),
                (f"truth@{k}", f"truth_recall@{k}", 4)]
    suffixes = [s for s in suffixes if f"prerank.on.{s[1]}" in m]
    title = f"pre-ranker, keep {m['prerank.keep']:.0f}"
    lines = [f"  {title:<24}" + "".join(f"{s[0]:>{WIDTH}}" for s in suffixes)
             + "   (recall of what reaches the ranker; the served list)"]
    for arm, label in (("on", "on"), ("off", "off"), ("change", "on - off")):
        lines.append(f"  {label:<24}" + "".join(cell(m, f"prerank.{arm}.{key}", digits) for _, key, digits in suffixes))
    return lines
