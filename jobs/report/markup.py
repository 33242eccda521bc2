"""HTML pieces of the run report's page: escaped text, tables, a plot (inline SVG or PNG) or the
sentence saying why it is absent. Pure: text in, text out."""
from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence

from .plots import svg


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def num(value) -> str:
    """A table cell's text: ints with thousands separators, floats to 4 significant digits, None as a dash."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    return "nan" if math.isnan(value) else f"{value:.4g}"


def table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """An HTML table; numeric cells right-aligned (``class="n"``)."""
    body = "".join("<tr>" + "".join(f'<td class="n">{num(c)}</td>' if isinstance(c, (int, float)) and not
                                    isinstance(c, bool) else f"<td>{num(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" + body + "</table>"


def missing(name: str, why: str) -> str:
    """The sentence standing in for plot or table ``name`` when the run has no data for it."""
    return f'<p class="missing" data-missing="{esc(name)}">{esc(why)}</p>'


def figure(name: str, make) -> str:
    """``make()`` -> a matplotlib Figure, inlined as SVG; a ValueError (nothing to draw) -> :func:`missing`."""
    try:
        fig = make()
    except ValueError as err:
        return missing(name, str(err))
    return f'<figure class="plot" data-plot="{esc(name)}">{svg(fig)}</figure>'


def png(name: str, data: bytes, caption: str) -> str:
    """A PNG (an MLflow figure of the run) inlined as a data URI, with its caption."""
    return (f'<figure class="plot" data-plot="{esc(name)}"><img alt="{esc(caption)}" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}"><figcaption>{esc(caption)}</figcaption>'
            "</figure>")
