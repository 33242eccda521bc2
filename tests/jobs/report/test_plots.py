import math
import re

import pytest

from pinrec.jobs.report import plots

DATA = re.compile(r'<g id="data-\d+"')


def drawn(svg: str) -> int:
    return len(DATA.findall(svg))


def test_svg_is_inline_markup_with_text_as_text():
    svg = plots.svg(plots.bars_figure({"a": 1.0, "b": 2.5}, "two bars", "value"))
    assert svg.startswith("<svg") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert "<text" in svg and ">two bars<" in svg  # svg.fonttype none: labels are text, not glyph paths
    assert drawn(svg) == 2


def test_rows_figure_stacks_three_parts_per_table():
    svg = plots.svg(plots.rows_figure({"pins": {"valid": 90, "quarantined": 3, "duplicates": 1},
                                       "users": {"valid": 40, "quarantined": 0, "duplicates": None}}))
    assert drawn(svg) == 6 and ">pins<" in svg and ">users<" in svg


def test_bars_figure_keeps_the_largest_and_does_not_count_the_gate():
    fig = plots.bars_figure({"a": 0.1, "b": 0.9, "c": 0.5}, "drift", "score", threshold=0.8, top=2)
    svg = plots.svg(fig)
    assert drawn(svg) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["c", "b"]
    assert ">gate 0.8<" in svg


def test_grouped_bars_draw_only_the_values_present():
    fig = plots.grouped_bars_figure({"recall@10": {"ann": 0.2, "cf": 0.1, "merged": 0.3},
                                     "recall@100": {"ann": 0.5, "merged": 0.6}}, "recall", "recall")
    assert drawn(plots.svg(fig)) == 5
    heights = sorted(round(p.get_height(), 3) for p in fig.axes[0].patches)
    assert heights == [0.1, 0.2, 0.3, 0.5, 0.6]


def test_curve_and_scatter_mark_their_data():
    assert drawn(plots.svg(plots.curve_figure([0, 1, 2], [3.0, 2.0, 1.5], "loss", "epoch", "loss"))) == 1
    points = [{"label": "Flat", "recall": 1.0, "latency_ms": 0.4}, {"label": "IVF64", "recall": 0.93, "latency_ms": 0.1}]
    assert drawn(plots.svg(plots.recall_latency_figure(points, points[1], k=10))) == 2


@pytest.mark.parametrize("make", [lambda: plots.rows_figure({}), lambda: plots.bars_figure({}, "t", "x"),
                                  lambda: plots.grouped_bars_figure({"g": {}}, "t", "y"),
                                  lambda: plots.curve_figure([], [], "t", "x", "y"),
                                  lambda: plots.curve_figure([1, 2], [1.0], "t", "x", "y"),
                                  lambda: plots.recall_latency_figure([])])
def test_nothing_to_draw_is_a_value_error(make):
    with pytest.raises(ValueError):
        make()


NAN = math.nan


@pytest.mark.parametrize("make, message", [
    (lambda: plots.curve_figure([0, 1, 2], [NAN, NAN, NAN], "PinSage training loss", "epoch", "loss"),
     r"curve_figure \(PinSage training loss\): no finite value to draw \(got nan, nan, nan\)"),
    (lambda: plots.bars_figure({"save": NAN, "closeup": math.inf}, "score PSI per task", "PSI"),
     r"bars_figure \(score PSI per task\): no finite value to draw \(got nan, inf\)"),
    (lambda: plots.grouped_bars_figure({"recall@10": {"ann": NAN}}, "recall", "recall"),
     r"grouped_bars_figure \(recall\): no finite value"),
    (lambda: plots.recall_latency_figure([{"label": "Flat", "recall": NAN, "latency_ms": 0.4}]),
     r"recall_latency_figure: no finite value"),
])
def test_all_nan_values_are_nothing_to_draw(make, message):
    """A diverged loss (every epoch NaN) drew an empty frame that counted as a plot with data."""
    with pytest.raises(ValueError, match=message):
        make()


def test_some_nan_values_still_draw_the_rest():
    assert drawn(plots.svg(plots.curve_figure([0, 1, 2], [3.0, NAN, 1.5], "loss", "epoch", "loss"))) == 1
    assert drawn(plots.svg(plots.bars_figure({"a": 1.0, "b": NAN}, "t", "x"))) >= 1


def test_a_diverged_loss_is_a_missing_plot_with_its_reason_on_the_page():
    import dataclasses

    from pinrec.jobs.report.page_models import pinsage
    from tests.support.run_facts import facts

    f = facts()
    body = pinsage(facts(pinsage=dataclasses.replace(f.pinsage, loss=((0, NAN), (1, NAN)))))
    assert 'data-plot="loss"' not in body
    assert ('<p class="missing" data-missing="loss">curve_figure (PinSage training loss): no finite value to draw '
            "(got nan, nan)</p>") in body
