"""The visits map layer (走访覆盖): cells coloured by visits per customer, to show where nobody goes.

A per-cell choropleth of the visits a cell's customers had in the window over its customers, with
fixed classes a manager reads at a glance (red: customers and not one visit; green: at least one
visit per customer); cells without customers are outlined only. Drawn from the counts it is given
(``geodata.visits.coverage.cell_cover``), toggled in the layer control; its legend, in a panel of its
own, shows while the layer does (``gridmkt.js``, kind ``cover``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import folium
import geopandas as gpd
import pandas as pd

from maps.base import GeoLayer, PageOptions, Panel, esc, feature_collection
from maps.panels import collapsible
from maps.places import cell_title

# Upper bounds (exclusive) of visits per customer, colour, label; the last class is open-ended.
CLASSES: tuple[tuple[float, str, str], ...] = (
    (1e-9, "#d73027", "0 无人走访 nobody went"),
    (0.25, "#fc8d59", "低于 below 0.25"),
    (0.5, "#fee08b", "0.25 – 0.5"),
    (1.0, "#91cf60", "0.5 – 1"),
    (float("inf"), "#1a9850", "1 及以上 1 or more"),
)
NO_CUSTOMERS = "无客户 no customers"
LAYER_NAME = "走访覆盖 visits per customer"
# Popup labels (gridmkt.config labels), bilingual like the rest.
LABELS: dict[str, str] = {
    "cv_customers": "客户 customers", "cv_visited": "已走访客户 customers visited",
    "cv_visits": "走访次数 visits", "cv_last": "最近走访 last visit",
}


def cover_color(visits: float, customers: float) -> str | None:
    """The fill of a cell: by visits per customer; None without customers (outline only).

    >>> cover_color(0, 12), cover_color(3, 4), cover_color(5, 0)
    ('#d73027', '#91cf60', None)
    """
    if not customers:
        return None
    ratio = visits / customers
    return next(color for bound, color, _ in CLASSES if ratio < bound)


def window_label(cover: Mapping) -> str:
    """The dates the layer counts, e.g. '2026-09-14 – 2026-12-07 (90天 days)' (``cell_cover``'s window)."""
    days = int(cover.get("window_days", 90))
    first, last = cover.get("first_day"), cover.get("last_day")
    if first is None or last is None:
        return f"近{days}天 last {days} days"
    return f"{first} – {last} ({days}天 days)"


def legend_html(cover: Mapping) -> str:
    """The layer's legend: the dates it counts, its classes and the no-customer outline."""
    rows = "".join(f'<div><i style="background:{c}"></i>{esc(label)}</div>' for _, c, label in CLASSES)
    rows += f'<div><i style="background:#fff;border:1px dashed #999"></i>{esc(NO_CUSTOMERS)}</div>'
    return (f'<div class="gm-legend gm-cover-legend"><h3>走访/客户 visits per customer</h3>'
            f'<div class="gm-cover-window">{esc(window_label(cover))}</div>{rows}</div>')


def _day(value) -> str | None:
    t = pd.Timestamp(value) if value is not None else None
    if t is None or pd.isna(t):
        return None
    return (t if t.tzinfo else t.tz_localize("UTC")).tz_convert("Asia/Shanghai").strftime("%Y-%m-%d")


def cover_layer(cells: gpd.GeoDataFrame, cover: Sequence[Mapping], options: PageOptions, *,
                show: bool = True) -> GeoLayer | None:
    """The layer over ``cells`` (cell_id, geometry, places for titles) of the cells in ``cover`` (cell_id,
    customers, visits, customers_visited, last_visit_at); None when no cell is left to draw."""
    counts = {r["cell_id"]: r for r in cover}
    drawn = cells[cells["cell_id"].isin(counts)]
    if drawn.empty:
        return None
    props = []
    for row in drawn.drop(columns="geometry").to_dict("records"):
        c = counts[row["cell_id"]]
        title, sub = cell_title(row)
        n, v = int(c["customers"]), int(c["visits"])
        props.append({"id": row["cell_id"], "t": title, "sub": sub, "c": cover_color(v, n),
                      "v": round(v / n, 2) if n else None,
                      "m": {"cv_customers": n, "cv_visited": int(c["customers_visited"]), "cv_visits": v,
                            "cv_last": _day(c.get("last_visit_at"))}})
    return GeoLayer(feature_collection(drawn.geometry.to_numpy(), props, options), "cover", LAYER_NAME, show=show)


def add_cover(m: folium.Map, cells: gpd.GeoDataFrame, cover: Mapping | None, options: PageOptions, *,
              show: bool = True, position: str = "bottomright") -> bool:
    """Add the layer of ``cover`` (``cell_cover``: items, window_days, first_day, last_day) to ``m`` with its
    legend, which names the dates counted, in a panel of its own at ``position`` (shown while the layer is, so
    it never piles onto the page's other legend); False when there is nothing to draw."""
    layer = cover_layer(cells, cover["items"], options, show=show) if cover is not None else None
    if layer is None:
        return False
    layer.add_to(m)
    off = "" if show else " gm-off"
    Panel(collapsible("走访图例 visits legend", legend_html(cover)), position, f"gm-cover-panel{off}").add_to(m)
    return True
