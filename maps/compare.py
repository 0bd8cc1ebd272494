"""Scenario compare: two assignments of cells to RMs, moved cells highlighted, workload per RM before/after."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from grid.colouring import colour_territories
from grid.territories import cell_adjacency
from maps.base import (
    Background,
    GeoLayer,
    PageOptions,
    Panel,
    PointLayer,
    add_background,
    bounds_of,
    esc,
    feature_collection,
    new_map,
    point_rows,
    render,
)
from maps.classify import TERRITORY_COLORS
from maps.panels import approx, collapsible, shown_measures, summary_html, swatches_html, table_html
from maps.places import cell_title

CELL_LABELS = {"customers": "客户 customers", "households": "户数 households"}
# What happens to a cell between the two assignments (change_class), and its fill (gridmkt.js STYLES.compare).
CHANGE_NAMES = {"kept": "未变 kept", "in": "调入 moved in", "out": "调出 moved out", "none": "无人负责 unowned"}
CHANGE_COLORS = {"kept": "#f4f4f4", "in": "#f1a340", "out": "#998ec3", "none": "#d9d9d9"}


def workload_table(cells: pd.DataFrame, a: Mapping[str, str], b: Mapping[str, str]) -> list[dict]:
    """Per RM: cells, customers and households under assignment ``a`` and ``b`` (used when no per-RM rows
    are given; no share of a target then)."""
    ids = cells["cell_id"].astype(str)
    col = {k: (pd.to_numeric(cells[k], errors="coerce").fillna(0) if k in cells else pd.Series(0.0, index=cells.index))
           for k in ("customers", "households")}
    rows = []
    for rm in sorted({*a.values(), *b.values()} - {None}):
        in_a, in_b = ids.map(a).eq(rm), ids.map(b).eq(rm)
        rows.append({"rm_id": rm, "cells_a": int(in_a.sum()), "cells_b": int(in_b.sum()),
                     "customers_a": int(col["customers"][in_a].sum()), "customers_b": int(col["customers"][in_b].sum()),
                     "households_a": float(col["households"][in_a].sum()),
                     "households_b": float(col["households"][in_b].sum())})
    return rows


def _pair(before, after, fmt) -> str:
    """``before → after`` (one value when unchanged; – for a missing one)."""
    x, y = fmt(before), fmt(after)
    return x if x == y else f"{x} → {y}"


def workload_rows(rows: Sequence[Mapping], names: Mapping[str, str] | None = None) -> list[dict]:
    """The compare table: per RM, cells, customers, households (≈, apportioned) and the share of the RM's
    target workload in %, each ``before → after``; RMs whose customers change most first."""
    names = names or {}

    def whole(v):
        return "–" if v is None else f"{round(float(v)):,}"

    def pct(v):
        return "–" if v is None else f"{float(v):.0f}%"

    def households(a_, b_) -> str:
        # sums of apportioned shares: both sides marked ≈ when either is (never "≈3,012 → 2,914")
        shared = any(v is not None and not float(v).is_integer() for v in (a_, b_))
        return _pair(a_, b_, lambda v: "–" if v is None else (approx(v, shared) if v else "0"))

    out = []
    for r in rows:
        change = abs((r.get("customers_b") or 0) - (r.get("customers_a") or 0))
        out.append({"rm": f"{r['rm_id']} {names.get(r['rm_id'], '')}".strip(), "_change": change,
                    "_moved": r.get("cells_a") != r.get("cells_b"),
                    "cells": _pair(r.get("cells_a"), r.get("cells_b"), whole),
                    "customers": _pair(r.get("customers_a"), r.get("customers_b"), whole),
                    "households": households(r.get("households_a"), r.get("households_b")),
                    "target": _pair(r.get("target_pct_a"), r.get("target_pct_b"), pct)})
    out.sort(key=lambda r: (-r["_change"], not r["_moved"], r["rm"]))
    return out


def moved_cells(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """Cells whose owner differs between ``a`` and ``b`` (a cell missing on one side counts as moved)."""
    return sorted(c for c in set(a) | set(b) if a.get(c) != b.get(c))


def change_class(before: str | None, after: str | None) -> str:
    """What happens to a cell: ``kept`` (same RM), ``in`` (moved in to a new RM), ``out`` (left without an RM),
    ``none`` (no RM before or after)."""
    if after is None:
        return "none" if before is None else "out"
    return "kept" if before == after else "in"


def territory_outlines(cells: gpd.GeoDataFrame, owners: Mapping[str, str]) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """RM codes, one dissolved outline each, and a colour per RM that no neighbouring territory shares.

    Neighbours are territories with cells sharing an edge (grid.territories.cell_adjacency);
    the colours come from the graph colouring of grid.colouring, so a county of 68 RMs
    needs a handful of colours instead of cycling a palette into look-alike neighbours.
    """
    ids = cells["cell_id"].astype(str).to_numpy()
    owned = {c: owners[c] for c in ids if owners.get(c) is not None}
    codes = sorted(set(owned.values()))
    if not codes:
        return [], np.asarray([], dtype=object), {}
    adj = cell_adjacency(gpd.GeoSeries(cells.geometry.to_numpy(), crs=4326), connect_islands=False)
    rows, cols = adj.nonzero()
    pairs = [(ids[i], ids[j]) for i, j in zip(rows, cols, strict=True) if i < j]
    index = colour_territories(owned, pairs)
    colors = {c: TERRITORY_COLORS[index[c] % len(TERRITORY_COLORS)] for c in codes}
    geoms = cells.geometry.to_numpy()
    outlines = np.asarray([shapely.union_all(geoms[np.asarray([owned.get(i) == c for i in ids])]) for c in codes],
                          dtype=object)
    return codes, outlines, colors


def compare_page(
    cells: gpd.GeoDataFrame, a: Mapping[str, str], b: Mapping[str, str], *, options: PageOptions,
    per_rm: Sequence[Mapping] | None = None, labels: tuple[str, str] = ("current", "scenario"),
    customers_changing: int | None = None, background: Background | None = None,
    rms: pd.DataFrame | None = None,
) -> str:
    """Two assignments on one HTML page: cells coloured by what changes, territories under ``b`` outlined.

    Cells are filled by :func:`change_class` (kept cells faintly in their territory's
    colour); each territory under ``b`` is outlined in a colour none of its neighbours
    has and labelled with its RM at a point inside it. ``a``/``b``: cell_id → rm code.
    ``per_rm``: rows with rm_id, cells_a/b, customers_a/b, households_a/b and
    target_pct_a/b (e.g. ``geodata.scenarios.compare(...)["per_rm"]``); computed from
    the cells (without target shares) when not given. ``rms``: rm_id, name for the labels. ``cells`` may carry ``place``,
    ``place_inside`` and ``township`` for the popup titles (maps.places).
    """
    if cells.empty:
        raise ValueError("no cells to draw")
    moved = set(moved_cells(a, b))
    ids = cells["cell_id"].astype(str).tolist()
    names = dict(zip(rms["rm_id"].astype(str), rms["name"].fillna(""), strict=True)) if rms is not None else {}
    codes, outlines, colors = territory_outlines(cells, b)
    records = pd.DataFrame(cells.drop(columns="geometry")).replace({np.nan: None}).to_dict("records")
    props = []
    for c, r in zip(ids, records, strict=True):
        title, sub = cell_title(r)
        before, after = a.get(c), b.get(c)
        props.append({"id": c, "t": title, "sub": sub, "a": before, "b": after, "moved": c in moved,
                      "ch": change_class(before, after), "tc": colors.get(after),
                      "an": names.get(before), "bn": names.get(after),
                      "m": shown_measures(r, CELL_LABELS)})
    geoms = cells.geometry.to_numpy()
    m = new_map(bounds_of(geoms, options), options, link_labels=CELL_LABELS)
    add_background(m, background, options)
    # Leaflet's layer control shows names as HTML, and a scenario name is whatever a planner typed.
    GeoLayer(feature_collection(geoms, props, options), "compare", f"网格 cells ({esc(labels[1])})").add_to(m)
    if codes:
        GeoLayer(feature_collection(outlines, [{"oc": colors[c], "rm": c, "t": f"{c} {names.get(c, '')}".strip()}
                                               for c in codes], options),
                 "territory", f"责任区 territories ({esc(labels[1])})").add_to(m)
        spots = shapely.point_on_surface(outlines)
        # Largest territory first: where labels would overlap, gridmkt.js keeps the earlier one.
        label_rows = pd.DataFrame({"name": [f"{c} {names.get(c, '')}".strip() for c in codes],
                                   "lon": shapely.get_x(spots), "lat": shapely.get_y(spots),
                                   "size": shapely.area(outlines)}).sort_values("size", ascending=False, kind="stable")
        PointLayer(point_rows(label_rows, ["name"], options), "label", "客户经理 RM labels").add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)

    rows = workload_rows(per_rm if per_rm is not None else workload_table(cells, a, b), names)
    table = table_html([("rm", "客户经理 RM"), ("cells", "网格 cells"), ("customers", "客户 customers"),
                        ("households", "户数 households"), ("target", "占目标 % of target")],
                       rows, css_class="gm-workload gm-stack")
    counts = pd.Series([p["ch"] for p in props]).value_counts().to_dict()
    moved_customers = int(pd.to_numeric(cells.loc[cells["cell_id"].astype(str).isin(moved), "customers"],
                                        errors="coerce").fillna(0).sum()) if "customers" in cells else None
    summary = summary_html(f"方案对比 {labels[0]} → {labels[1]}", [
        ("网格 cells", len(cells)), ("调整网格 cells moved", len(moved)),
        ("换经理客户 customers changing RM", customers_changing if customers_changing is not None else moved_customers),
        ("客户经理 RMs", _pair(len({*a.values()} - {None}), len({*b.values()} - {None}), str)),
    ]) + ('<div class="gm-note">前 → 后 before → after · 占目标：工作量÷目标 % of target: the RM\'s '
          "weighted workload over their share of the total</div>")
    Panel(collapsible("工作量 workload", summary + table), "topright", "gm-compare-panel").add_to(m)
    legend = swatches_html("变化 change", {f"{CHANGE_NAMES[k]} ({counts.get(k, 0)})": CHANGE_COLORS[k]
                                           for k in CHANGE_NAMES}, outline=False)
    legend += ('<div class="gm-legend"><i style="background:transparent;border:3px solid #4e79a7"></i>'
               "责任区边界 territory outline</div>"
               '<div class="gm-note">边界颜色只区分相邻责任区 outline colours only tell neighbours apart</div>')
    Panel(collapsible("图例 legend", legend), "bottomright", "gm-legend-panel").add_to(m)
    return render(m, replace(options, title=f"方案对比 compare · {labels[0]} → {labels[1]}"), ("leaflet", "gridmkt"))
