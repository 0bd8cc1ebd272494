"""Scenario compare: two assignments of cells to RMs, moved cells highlighted, workload per RM before/after."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from maps.base import (
    Background,
    GeoLayer,
    PageOptions,
    Panel,
    add_background,
    bounds_of,
    esc,
    feature_collection,
    new_map,
    render,
)
from maps.classify import rm_colors
from maps.panels import collapsible, summary_html, swatches_html, table_html

CELL_LABELS = {"customers": "客户 customers", "households": "户数 households"}


def workload_table(cells: pd.DataFrame, a: Mapping[str, str], b: Mapping[str, str],
                   measure: str = "customers") -> list[dict]:
    """Per RM: cells and ``measure`` summed under assignment ``a`` and ``b`` (used when no workload is given)."""
    values = (pd.to_numeric(cells[measure], errors="coerce").fillna(0) if measure in cells
              else pd.Series(0.0, index=cells.index))
    ids = cells["cell_id"].astype(str)
    rows = []
    for rm in sorted({*a.values(), *b.values()} - {None}):
        in_a, in_b = ids.map(a).eq(rm), ids.map(b).eq(rm)
        rows.append({"rm_id": rm, "cells_a": int(in_a.sum()), "cells_b": int(in_b.sum()),
                     "workload_a": float(values[in_a].sum()), "workload_b": float(values[in_b].sum())})
    return rows


def moved_cells(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """Cells whose owner differs between ``a`` and ``b`` (a cell missing on one side counts as moved)."""
    return sorted(c for c in set(a) | set(b) if a.get(c) != b.get(c))


def compare_page(
    cells: gpd.GeoDataFrame, a: Mapping[str, str], b: Mapping[str, str], *, options: PageOptions,
    per_rm: Sequence[Mapping] | None = None, labels: tuple[str, str] = ("current", "scenario"),
    customers_changing: int | None = None, background: Background | None = None,
) -> str:
    """Two assignments on one HTML page: cells coloured by their RM under ``b``, moved cells outlined in red.

    ``a``/``b``: cell_id → rm code. ``per_rm``: rows with rm_id, cells_a, cells_b,
    workload_a, workload_b (e.g. ``geodata.scenarios.compare(...)["per_rm"]``);
    computed from cell customers when not given.
    """
    if cells.empty:
        raise ValueError("no cells to draw")
    moved = set(moved_cells(a, b))
    colors = rm_colors({*a.values(), *b.values()} - {None})
    ids = cells["cell_id"].astype(str).tolist()
    records = pd.DataFrame(cells.drop(columns="geometry")).replace({np.nan: None}).to_dict("records")
    props = [{"id": c, "t": r.get("label") or c, "a": a.get(c), "b": b.get(c), "moved": c in moved,
              "c": colors.get(b.get(c), "#cccccc"), "m": {k: r.get(k) for k in CELL_LABELS if k in r}}
             for c, r in zip(ids, records, strict=True)]
    geoms = cells.geometry.to_numpy()
    m = new_map(bounds_of(geoms, options), options, link_labels=CELL_LABELS)
    add_background(m, background, options)
    # Leaflet's layer control shows names as HTML, and a scenario name is whatever a planner typed.
    GeoLayer(feature_collection(geoms, props, options), "compare", f"网格 cells ({esc(labels[1])})").add_to(m)
    if moved:
        mask = np.isin(np.asarray(ids), sorted(moved))
        GeoLayer(feature_collection(geoms[mask], [p for p, k in zip(props, mask, strict=True) if k], options),
                 "compare", "调整网格 moved cells").add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)

    rows = [dict(r) for r in (per_rm if per_rm is not None else workload_table(cells, a, b))]
    for r in rows:
        r["delta"] = (r.get("workload_b") or 0) - (r.get("workload_a") or 0)
    table = table_html([("rm_id", "客户经理 RM"), ("cells_a", f"网格 {labels[0]}"), ("cells_b", f"网格 {labels[1]}"),
                        ("workload_a", f"工作量 {labels[0]}"), ("workload_b", f"工作量 {labels[1]}"),
                        ("delta", "变化 Δ")], rows, css_class="gm-workload")
    summary = summary_html(f"方案对比 {labels[0]} → {labels[1]}", [
        ("网格 cells", len(cells)), ("调整网格 cells moved", len(moved)),
        ("换经理客户 customers changing RM", customers_changing),
    ])
    Panel(collapsible("工作量 workload", summary + table), "topright", "gm-compare-panel").add_to(m)
    Panel(collapsible("图例 legend", swatches_html(f"客户经理 RM ({labels[1]})", colors, outline=False)
                      + '<div class="gm-legend"><i style="border:3px dashed #d7191c"></i>调整 moved</div>'),
          "bottomright", "gm-legend-panel").add_to(m)
    return render(m, replace(options, title=f"方案对比 compare · {labels[0]} → {labels[1]}"), ("leaflet", "gridmkt"))
