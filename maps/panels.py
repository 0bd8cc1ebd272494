"""HTML for the fixed panels of the pages: legends, summaries and tables (escaped, compact)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from maps.base import esc
from maps.classify import Classes


def _num(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return esc(v)


APPORTIONED = ("households", "population")


def approx(value, apportioned: bool = False) -> str | None:
    """A household or population figure as shown: a whole number with thousands separators, "≈" before it
    when it is apportioned (a share of a township or county figure; stored with decimals). None stays None.

    >>> approx(3.25, True), approx(1234.0), approx(None)
    ('≈3', '1,234', None)
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    n = f"{round(float(value)):,}"
    return f"≈{n}" if apportioned or not float(value).is_integer() else n


def shown_measures(row: Mapping, keys) -> dict:
    """The popup figures of a cell: households and population through :func:`approx` (by the cell's
    ``apportioned`` flag), the others as they are."""
    shared = bool(row.get("apportioned")) and row.get("apportioned") == row.get("apportioned")
    return {k: approx(row.get(k), shared) if k in APPORTIONED else row.get(k) for k in keys if k in row}


def collapsible(title: str, body: str, *, collapsed: bool = False) -> str:
    """A panel body under a title that toggles it (small screens start collapsed)."""
    cls = " gm-collapsed" if collapsed else ""
    return f'<div class="gm-wrap{cls}"><span class="gm-toggle">☰ {esc(title)}</span><div class="gm-body">{body}</div></div>'


def legend_html(title: str, classes: Classes) -> str:
    """Colour boxes with class labels."""
    rows = "".join(
        f'<div><i style="background:{c}"></i>{esc(label)}</div>'
        for c, label in zip(classes.colors, classes.labels, strict=True)
    )
    return f'<div class="gm-legend"><h3>{esc(title)}</h3>{rows}</div>'


def swatches_html(title: str, colors: Mapping[str, str], names: Mapping[str, str] | None = None,
                  *, outline: bool = True) -> str:
    """One swatch per key (RM territories, village statuses)."""
    names = names or {}
    style = "background:transparent;border:3px solid {c}" if outline else "background:{c}"
    rows = "".join(
        f'<div><i style="{style.format(c=c)}"></i>{esc(k)}{" " + esc(names[k]) if names.get(k) else ""}</div>'
        for k, c in colors.items()
    )
    return f'<div class="gm-legend"><h3>{esc(title)}</h3>{rows}</div>'


def summary_html(title: str, items: Sequence[tuple[str, object]]) -> str:
    """A two-column table of labelled figures."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{_num(v)}</td></tr>" for k, v in items)
    return f'<h3>{esc(title)}</h3><table class="gm-summary">{rows}</table>'


def table_html(columns: Sequence[tuple[str, str]], rows: Sequence[Mapping], *, css_class: str = "") -> str:
    """A table from records; ``columns`` are (key, header) pairs."""
    head = "".join(f"<th>{esc(h)}</th>" for _, h in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_num(r.get(k))}</td>" for k, _ in columns) + "</tr>" for r in rows
    )
    return f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
