"""The run report's figures as inline SVG (matplotlib ``Figure`` objects, no pyplot state).

Every drawn datum (a bar, a curve, a scatter point) carries an SVG group id ``data-<n>``
(:func:`mark`), so a reader of the page (the headless-browser test) can tell a plot that drew data
from an empty frame; text stays ``<text>`` (``svg.fonttype: none``), so axis labels never count as
drawn paths. Each function takes plain mappings/sequences and raises ValueError when it has
nothing to draw — no values, or none finite (every value NaN or infinite: a diverged loss draws no
line) — so the page says why a plot is absent instead of showing an empty one.

* :func:`rows_figure` — rows valid / quarantined / duplicates dropped per raw table (stacked bars);
* :func:`bars_figure` — named values as horizontal bars, with an optional threshold line;
* :func:`grouped_bars_figure` — one group of bars per key (per task, per cut-off), one colour per series;
* :func:`curve_figure` — y against x (a loss curve);
* :func:`recall_latency_figure` — the index candidates tried: recall@k against latency, the chosen one marked.
"""
from __future__ import annotations

import io
import itertools
import math
import numbers
from collections.abc import Mapping, Sequence

_ids = itertools.count()


def mark(artists) -> None:
    """Give each artist a unique ``data-<n>`` group id (what the page's data check looks for)."""
    for artist in artists:
        artist.set_gid(f"data-{next(_ids)}")


def svg(fig) -> str:
    """The figure as an ``<svg>`` element to inline in HTML (no XML prolog or DOCTYPE)."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _finite(values, what: str) -> None:
    """ValueError unless some of ``values`` is a finite number (matplotlib draws nothing for NaN)."""
    if not any(isinstance(v, numbers.Real) and math.isfinite(v) for v in values):
        shown = ", ".join(map(str, list(values)[:3])) + (", ..." if len(values) > 3 else "")
        raise ValueError(f"{what}: no finite value to draw (got {shown})")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def rows_figure(counts: Mapping[str, Mapping[str, int]]):
    """``counts``: table -> {"valid", "quarantined", "duplicates"} rows; one stacked bar per table
    (log-free: quarantined rows are a small share, their numbers are in the table beside it)."""
    if not counts:
        raise ValueError("rows_figure: no ingested tables")
    tables = sorted(counts)
    fig = _figure(7.0, 0.35 * len(tables) + 1.4)
    ax = fig.add_subplot(1, 1, 1)
    left = [0] * len(tables)
    for part in ("valid", "quarantined", "duplicates"):
        values = [int(counts[t].get(part) or 0) for t in tables]
        mark(ax.barh(tables, values, left=left, label=part))
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set(title="rows per raw table", xlabel="rows")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def bars_figure(values: Mapping[str, float], title: str, xlabel: str, threshold: float | None = None,
                top: int | None = None):
    """``values``: name -> value as horizontal bars, largest at the top (``top``: only the largest
    that many); ``threshold``: a dashed vertical line (a gate), not counted as data."""
    if not values:
        raise ValueError(f"bars_figure ({title}): no values")
    _finite(list(values.values()), f"bars_figure ({title})")
    items = sorted(values.items(), key=lambda kv: kv[1])[-top if top else 0:]
    fig = _figure(7.0, 0.3 * len(items) + 1.3)
    ax = fig.add_subplot(1, 1, 1)
    mark(ax.barh([k for k, _ in items], [v for _, v in items]))
    if threshold is not None:
        ax.axvline(threshold, color="red", linestyle="--", linewidth=1, label=f"gate {threshold:g}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set(title=title, xlabel=xlabel)
    fig.tight_layout()
    return fig


def grouped_bars_figure(groups: Mapping[str, Mapping[str, float]], title: str, ylabel: str):
    """``groups``: group (x tick) -> {series: value}; series in first-seen order, one colour each."""
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    if not series:
        raise ValueError(f"grouped_bars_figure ({title}): no values")
    _finite([v for g in groups.values() for v in g.values()], f"grouped_bars_figure ({title})")
    names = list(groups)
    width = 0.8 / len(series)
    fig = _figure(max(5.0, 1.1 * len(names) * max(1, len(series)) ** 0.5 + 2.5), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for i, s in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j, g in enumerate(names) if s in groups[g]]
        ys = [groups[g][s] for g in names if s in groups[g]]
        mark(ax.bar(xs, ys, width=width, label=s))
    ax.set_xticks(range(len(names)), names)
    ax.set(title=title, ylabel=ylabel)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def curve_figure(x: Sequence[float], y: Sequence[float], title: str, xlabel: str, ylabel: str):
    """One line with markers (e.g. the loss per epoch), integer ticks on x."""
    if len(x) == 0 or len(x) != len(y):
        raise ValueError(f"curve_figure ({title}): needs equally long, non-empty x and y, got {len(x)} and {len(y)}")
    _finite(list(y), f"curve_figure ({title})")
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib.ticker import MaxNLocator

    mark(ax.plot(list(x), list(y), marker="o"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, steps
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    return fig


def recall_latency_figure(points: Sequence[Mapping], chosen: Mapping | None = None, k: int | None = None):
    """``points``: each ``{"label", "recall", "latency_ms"}`` (an index candidate or search setting
    tried); ``chosen``: the one built, drawn as a star."""
    if not points:
        raise ValueError("recall_latency_figure: no candidates")
    _finite([p["recall"] for p in points if math.isfinite(p["latency_ms"])], "recall_latency_figure")
    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    mark([ax.scatter([p["latency_ms"] for p in points], [p["recall"] for p in points], label="tried")])
    for p in points:
        ax.annotate(p["label"], (p["latency_ms"], p["recall"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if chosen is not None:
        mark([ax.scatter([chosen["latency_ms"]], [chosen["recall"]], marker="*", s=160, color="red",
                         label=f"built: {chosen['label']}")])
    ax.set(title="index candidates: recall vs latency", xlabel="single-query latency p50 (ms)",
           ylabel=f"recall@{k}" if k else "recall")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
