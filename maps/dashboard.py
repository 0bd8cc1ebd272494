"""Branch dashboard: cells coloured by a measure, territories per RM, outlets, summary, cell popups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from maps.base import (
    Background,
    GeoLayer,
    PageOptions,
    Panel,
    PointLayer,
    VectorTileLayer,
    add_background,
    bounds_of,
    feature_collection,
    new_map,
    point_rows,
    render,
)
from maps.classify import class_breaks, rm_colors
from maps.cover import LABELS as COVER_LABELS
from maps.cover import add_cover
from maps.panels import (
    approx,
    collapsible,
    gap_classes_html,
    legend_html,
    shown_measures,
    summary_html,
    swatches_html,
)
from maps.places import cell_title

# measure name -> (column, legend title)
MEASURES: dict[str, tuple[str, str]] = {
    "gap_score": ("score", "缺口评分 gap score"),
    "customers": ("customers", "客户数 customers"),
    "penetration": ("penetration", "渗透率 customers per household"),
    "deposit": ("deposit", "存款余额 deposits"),
    "loan": ("loan", "贷款余额 loans"),
    "days_since_visit": ("days_since_visit", "距上次走访天数 days since last visit"),
}
# Columns shown in a cell's popup, with their labels.
LABELS: dict[str, str] = {
    "customers": "客户 customers", "households": "户数 households", "population": "人口 population",
    "penetration": "渗透率 penetration", "deposit": "存款 deposits", "loan": "贷款 loans",
    "visits_90d": "90天走访 visits 90d", "days_since_visit": "距上次走访天 days since visit",
    "open_leads": "待跟进线索 open leads", "dist_outlet_km": "距网点 km to outlet",
    "dist_service_point_km": "距服务点 km to service point",
}
COMPONENT_PREFIX = "contrib_"
# Points each part of the gap score adds (grid/gaps.py COMPONENTS), bilingual like every other label.
COMPONENT_LABELS: dict[str, str] = {
    "contrib_potential": "潜力 potential (households)", "contrib_low_penetration": "渗透率低 low penetration",
    "contrib_no_owner": "无人负责 no owner", "contrib_no_recent_visit": "近期未走访 no recent visit",
    "contrib_unvisited_customers": "客户未走访 unvisited customers", "contrib_far_outlet": "距网点远 far from outlet",
    "contrib_far_service_point": "距服务点远 far from service point", "contrib_open_leads": "待跟进线索 open leads",
}
# Gap classes as stored (grid/gaps.py), shown bilingual.
GAP_CLASSES = {"blank": "空白 blank", "under-served": "服务不足 under-served", "covered": "已覆盖 covered",
               "no-potential": "无潜力 no potential"}


def with_penetration(cells: pd.DataFrame) -> pd.DataFrame:
    """Adds ``penetration`` = customers / households (NaN where households is 0 or unknown) if missing."""
    if "penetration" in cells or "customers" not in cells or "households" not in cells:
        return cells
    hh = pd.to_numeric(cells["households"], errors="coerce").astype(float)
    cust = pd.to_numeric(cells["customers"], errors="coerce").fillna(0).astype(float)
    return cells.assign(penetration=np.where(hh > 0, cust / hh.where(hh > 0, 1.0), np.nan))


def dashboard_summary(cells: pd.DataFrame, scope_customers: int | None = None) -> dict:
    """Customers placed in cells, coverage ratio 入格率, blank cells and RMs of the page's cells.

    The coverage ratio is customers placed in the page's cells over
    ``scope_customers``, the reader's customers (None when unknown or zero). The
    served pages pass figures counted in SQL within the reader's scope instead
    (``geodata.reads.figures.grid_figures``); this is for pages given cells only.
    """
    placed = int(pd.to_numeric(cells.get("customers", pd.Series(dtype=float)), errors="coerce").fillna(0).sum())
    blank = int((cells["gap_class"] == "blank").sum()) if "gap_class" in cells else 0
    owners = cells["owner_rm"].dropna().unique() if "owner_rm" in cells else []
    coverage = placed / scope_customers if scope_customers else None
    hh = pd.to_numeric(cells.get("households", pd.Series(dtype=float)), errors="coerce").fillna(0)
    shared = cells["apportioned"].fillna(False).astype(bool) if "apportioned" in cells else pd.Series(False, index=cells.index)
    return {"cells": len(cells), "customers": placed, "scope_customers": scope_customers,
            "coverage": None if coverage is None else round(coverage, 4), "blank_cells": blank, "rms": len(owners),
            "households": float(hh.sum()), "apportioned_cells": int(shared.sum())}


def summary_rows(s: Mapping) -> list[tuple[str, object]]:
    """The summary panel's labelled figures: 入格率 with its numerator and denominator, households rounded
    and marked ≈ when some are apportioned."""
    coverage = None
    if s.get("coverage") is not None:
        coverage = f"{s['coverage']:.1%} ({s['customers']:,} / {s['scope_customers']:,})"
    rows: list[tuple[str, object]] = [
        ("网格 cells", s["cells"]), ("入格客户 customers in cells", s["customers"]),
        ("入格率 coverage", coverage),
    ]
    if s.get("unplaced"):
        rows.append(("未入格客户 customers not placed", s["unplaced"]))
    if s.get("households") is not None:
        rows.append(("户数 households", approx(s["households"], bool(s.get("apportioned_cells")))))
    rows.append(("空白网格 blank cells", s["blank_cells"]))
    if s.get("no_potential_cells") is not None:
        rows.append(("无潜力网格 no-potential cells", s["no_potential_cells"]))
    rows.append(("客户经理 RMs", s["rms"]))
    return rows


def _local(value) -> pd.Timestamp | None:
    """A stored time in Asia/Shanghai (times without a zone are UTC); None when missing."""
    if value is None:
        return None
    t = pd.Timestamp(value)
    if pd.isna(t):
        return None
    return (t if t.tzinfo else t.tz_localize("UTC")).tz_convert("Asia/Shanghai")


def scored_note(gap_run: Mapping) -> str:
    """When the scores were computed, the date they measure as of (visits in the 90 days before it,
    days since the last visit), and why they are out of date if they are. Times in Asia/Shanghai."""
    at = _local(gap_run.get("computed_at"))
    note = at.strftime("%Y-%m-%d %H:%M") if at is not None else "?"
    as_of = _local(gap_run.get("as_of"))
    if as_of is not None:
        note += " · 截至 as of " + as_of.strftime("%Y-%m-%d %H:%M")
    if gap_run.get("stale"):
        note += " · 已过期 out of date: " + "; ".join(gap_run.get("stale_reasons") or [])
    return note


def _popup_props(row: Mapping, ids: Sequence[str], cap: int, colors: Mapping[str, str], fill: str,
                 rm_names: Mapping[str, str]) -> dict:
    owner = row.get("owner_rm")
    owner = None if owner is None or owner != owner else str(owner)
    comps = row.get("components") if isinstance(row.get("components"), Mapping) else {}
    title, sub = cell_title(row)
    gap = row.get("gap_class")
    return {
        "id": row["cell_id"], "t": title, "sub": sub,
        "o": f"{owner} {rm_names.get(owner, '')}".strip() if owner else None,
        "oc": colors.get(owner) if owner else None, "c": fill,
        "s": row.get("score"), "g": GAP_CLASSES.get(gap, gap), "gc": gap, "r": row.get("reason_zh"),
        "m": shown_measures(row, LABELS),
        "k": {k: v for k, v in comps.items() if k.startswith(COMPONENT_PREFIX)},
        "ids": list(ids[:cap]), "n": len(ids),
    }


def territories(cells: gpd.GeoDataFrame) -> tuple[np.ndarray, list[str]]:
    """One outline per owning RM: the union of their cells."""
    owned = cells[cells["owner_rm"].notna()] if "owner_rm" in cells else cells.iloc[:0]
    codes = sorted(owned["owner_rm"].astype(str).unique())
    geoms = [shapely.union_all(owned.geometry[owned["owner_rm"].astype(str) == c].to_numpy()) for c in codes]
    return np.asarray(geoms, dtype=object), codes


def dashboard_page(
    cells: gpd.GeoDataFrame, *, options: PageOptions, measure: str = "gap_score",
    rms: pd.DataFrame | None = None, outlets: pd.DataFrame | None = None,
    service_points: pd.DataFrame | None = None, cell_customers: Mapping[str, Sequence[str]] | None = None,
    figures: Mapping | None = None, background: Background | None = None, title: str = "网格看板 dashboard",
    gap_run: Mapping | None = None, visit_cover: Mapping | None = None,
) -> str:
    """The branch dashboard as one HTML page.

    ``cells``: cell_id, label, geometry (WGS84) and any of the measures in
    :data:`LABELS`, ``owner_rm``, ``score``, ``gap_class``, ``reason_zh``,
    ``components`` (dict with ``contrib_*``). ``rms``: rm_id, name (already
    masked as the viewer may see it). ``outlets``/``service_points``: code,
    name, lon, lat. ``cell_customers``: customer ids per cell for the tag and
    lead links (capped at ``options.max_link_ids``). ``gap_run``: the scores'
    run (``computed_at``, and ``stale`` with ``stale_reasons``), shown in the
    summary so a manager sees when the scores predate territory changes.
    ``figures``: the summary counted within the reader's scope
    (``geodata.reads.figures.grid_figures``: cells, customers, unplaced,
    scope_customers, coverage, households, apportioned_cells, blank_cells,
    rms); without it the summary counts the given cells and shows no coverage.
    ``visit_cover``: per cell, customers and visits in a window, with its dates
    (``api.operations.visits.cell_cover``): the visits layer (off at first, in the layer control).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    if cells.empty:
        raise ValueError("no cells to draw")
    cells = with_penetration(cells)
    column, legend_title = MEASURES[measure]
    values = pd.to_numeric(cells[column], errors="coerce") if column in cells else pd.Series(np.nan, index=cells.index)
    # Cells with nothing to win are drawn faintly (gridmkt.js) and left out of the class breaks, so that
    # the colours spread over the cells a manager can act on.
    no_potential = cells["gap_class"].eq("no-potential") if "gap_class" in cells else pd.Series(False, index=cells.index)
    classes = class_breaks(values[~no_potential].to_numpy(dtype=float), k=5)
    fills = classes.color_of(values.to_numpy(dtype=float))
    owners = cells["owner_rm"] if "owner_rm" in cells else pd.Series(None, index=cells.index)
    colors = rm_colors(owners.dropna().astype(str))
    rm_names = dict(zip(rms["rm_id"].astype(str), rms["name"].fillna(""), strict=True)) if rms is not None else {}
    ids = cell_customers or {}
    records = pd.DataFrame(cells.drop(columns="geometry")).replace({np.nan: None}).to_dict("records")
    props = [_popup_props(r, list(ids.get(r["cell_id"], ())), options.max_link_ids, colors, f, rm_names)
             for r, f in zip(records, fills, strict=True)]

    geoms = cells.geometry.to_numpy()
    m = new_map(bounds_of(geoms, options), options, link_labels={**_component_labels(props), **LABELS, **COVER_LABELS})
    add_background(m, background, options)
    GeoLayer(feature_collection(geoms, props, options), "cell", f"网格 cells: {legend_title}").add_to(m)
    t_geoms, t_codes = territories(cells)
    if len(t_codes):
        GeoLayer(feature_collection(t_geoms, [{"oc": colors[c], "t": c} for c in t_codes], options),
                 "territory", "责任区 territories").add_to(m)
    add_cover(m, cells, visit_cover, options, show=False, position="bottomleft")
    if outlets is not None and len(outlets):
        PointLayer(point_rows(outlets, ["name", "code"], options), "outlet", "网点 outlets").add_to(m)
    if service_points is not None and len(service_points):
        PointLayer(point_rows(service_points, ["name", "code"], options), "service_point",
                   "服务点 service points").add_to(m)
    bundles = ("leaflet", "gridmkt")
    if options.customer_tiles_url and not options.shifted:  # tiles are WGS84/Web Mercator, never shifted
        VectorTileLayer(options.customer_tiles_url, "客户 customers (tiles)").add_to(m)
        bundles = ("leaflet", "vectorgrid", "gridmkt")
    folium.LayerControl(collapsed=True).add_to(m)

    s = dict(figures) if figures is not None else dashboard_summary(cells)
    summary = summary_html(title, [
        *summary_rows(s), *([("评分于 scored", scored_note(gap_run))] if gap_run else []),
    ])
    Panel(collapsible("概况 summary", summary), "topright", "gm-summary-panel").add_to(m)
    legend = legend_html(legend_title, classes)
    if "gap_class" in cells:
        legend += gap_classes_html((gap_run or {}).get("config"))
    if colors:
        legend += swatches_html("责任区 territories", colors, rm_names)
    Panel(collapsible("图例 legend", legend), "bottomright", "gm-legend-panel").add_to(m)
    return render(m, replace(options, title=f"{title} · {legend_title}"), bundles)


def _component_labels(props: list[dict]) -> dict[str, str]:
    """Bilingual labels of the score components on the page (an unknown one: its name, readable)."""
    keys = {k for p in props for k in p["k"]}
    return {k: COMPONENT_LABELS.get(k, k.removeprefix(COMPONENT_PREFIX).replace("_", " ")) for k in sorted(keys)}
