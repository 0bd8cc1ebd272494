"""HTML for the fixed panels of the pages: legends, summaries and tables (escaped, compact)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grid.gap_config import DEFAULT_TABLE
from maps.base import esc
from maps.classify import Classes

# How gridmkt.js draws the two gap classes a manager reads first (STYLES.cell, TILE_STYLES.cells).
BLANK_OUTLINE = "#54278f"
NO_POTENTIAL_FILL = "#ececec"


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
    """A table from records; ``columns`` are (key, header) pairs. Each figure after the first column carries
    its header (``data-label``): a ``gm-stack`` table shows it there on a phone, where the header row hides."""
    head = "".join(f"<th>{esc(h)}</th>" for _, h in columns)
    labels = ["", *(f' data-label="{esc(h)}"' for _, h in columns[1:])]
    body = "".join(
        "<tr>" + "".join(f"<td{lab}>{_num(r.get(k))}</td>" for (k, _), lab in zip(columns, labels, strict=True))
        + "</tr>" for r in rows
    )
    return f'<table class="{esc(css_class)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def gap_classes_html(config: Mapping | None = None) -> str:
    """What blank and no-potential cells are, in both languages, with the thresholds of the run that scored
    them (``gap_run.config``: ``min_households``, ``recent_visit_days``; the defaults when not given)."""
    cfg = {**DEFAULT_TABLE["thresholds"], **(config or {})}
    n, w = f"{float(cfg['min_households']):g}", f"{int(cfg['recent_visit_days'])}"
    return (
        '<div class="gm-legend gm-gap-classes"><h3>网格类别 cell classes</h3>'
        f'<div><i style="background:transparent;border:3px solid {BLANK_OUTLINE}"></i>'
        f"空白 blank: 有潜力，但无人负责或{w}天内未走访 potential, but no RM owns it or no visit in {w} days</div>"
        f'<div><i style="background:{NO_POTENTIAL_FILL};border-color:#ccc"></i>'
        f"无潜力 no potential: 少于{n}户且无客户，淡色 fewer than {n} households and no customers, drawn faint</div>"
        "</div>")
