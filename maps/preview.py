"""Planner preview after an import: placed, merged and unplaced villages, rejected rows counted."""

from __future__ import annotations

from collections.abc import Mapping
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
    PointLayer,
    add_background,
    bounds_of,
    esc,
    feature_collection,
    new_map,
    point_rows,
    render,
)
from maps.panels import collapsible, summary_html, swatches_html

STATUS_COLORS = {"placed": "#1a9641", "merged": "#fdae61", "unplaced": "#d7191c"}
STATUS_NAMES = {"placed": "已定位 placed", "merged": "合并 merged (shared point)", "unplaced": "未定位 unplaced"}
LIST_LIMIT = 500  # unplaced villages listed in the side panel; the rest are counted


def village_status(villages: pd.DataFrame, cells: pd.DataFrame | None) -> pd.DataFrame:
    """``villages`` with ``status`` and ``cell_id``: placed (own cell), merged (cell shared), unplaced.

    ``cells`` carries ``cell_id`` and ``village_codes`` (list per cell). Without
    cells, a village with coordinates counts as placed and one without as unplaced.
    """
    out = villages.copy()
    if cells is None or "village_codes" not in cells:
        has = np.isfinite(out["lon"].astype(float)) & np.isfinite(out["lat"].astype(float))
        out["cell_id"] = None
        out["status"] = np.where(has, "placed", "unplaced")
        return out
    cell_of, size = {}, {}
    for cid, codes in zip(cells["cell_id"], cells["village_codes"], strict=True):
        codes = list(codes) if codes is not None else []
        size[cid] = len(codes)
        for code in codes:
            cell_of[str(code)] = cid
    out["cell_id"] = out["code"].astype(str).map(cell_of)
    n = out["cell_id"].map(size).fillna(0)
    out["status"] = np.where(out["cell_id"].isna(), "unplaced", np.where(n > 1, "merged", "placed"))
    return out


def _unplaced_list(unplaced: pd.DataFrame) -> str:
    items = "".join(f"<li>{esc(r['name'])} <small>{esc(r['code'])}</small></li>"
                    for r in unplaced.head(LIST_LIMIT).to_dict("records"))
    more = f"<div>… 另有 {len(unplaced) - LIST_LIMIT} 个 more</div>" if len(unplaced) > LIST_LIMIT else ""
    return (f'<h3>未定位村 unplaced villages ({len(unplaced)})</h3>'
            f'<ol class="gm-list gm-unplaced">{items}</ol>{more}')


def preview_page(
    villages: pd.DataFrame, *, options: PageOptions, cells: gpd.GeoDataFrame | None = None,
    run_summary: Mapping | None = None, background: Background | None = None, title: str = "导入预览 import preview",
) -> str:
    """The planner's preview as one HTML page.

    ``villages``: code, name, lon, lat and ``status`` (see :func:`village_status`;
    computed here when missing). ``cells`` (optional): cell_id, label, geometry,
    village_codes. ``run_summary``: the import run (file_name, status, counts
    with rows/loaded/rejected...); rejected rows have no village to draw, so
    they are counted in the panel.
    """
    if "status" not in villages:
        villages = village_status(villages, cells)
    placed = villages[villages["status"] != "unplaced"]
    if cells is not None and len(cells):
        geoms = cells.geometry.to_numpy()
    elif len(placed):
        geoms = gpd.points_from_xy(placed["lon"], placed["lat"]).to_numpy()
    elif background is not None and background.county is not None:
        geoms = np.asarray([background.county], dtype=object)
    else:
        raise ValueError("nothing to draw: no cells, no placed villages and no county")
    m = new_map(bounds_of(geoms, options), options)
    add_background(m, replace(background, villages=None) if background else None, options)
    if cells is not None and len(cells):
        names = villages.groupby("cell_id")["name"].agg(list).to_dict() if "cell_id" in villages else {}
        props = [{"id": c, "t": lab or c, "v": names.get(c, [])}
                 for c, lab in zip(cells["cell_id"], cells.get("label", cells["cell_id"]), strict=True)]
        GeoLayer(feature_collection(geoms, props, options), "preview", "网格 cells").add_to(m)
    for status in ("placed", "merged"):
        part = placed[placed["status"] == status]
        cell = " · " + part["cell_id"].astype(str) if "cell_id" in part else ""
        part = part.assign(detail=STATUS_NAMES[status] + cell)
        if len(part):
            PointLayer(point_rows(part, ["name", "code", "detail"], options), status, STATUS_NAMES[status]).add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)

    counts = villages["status"].value_counts().to_dict()
    run = dict(run_summary or {})
    run_counts = run.get("counts") or {}
    items = [(STATUS_NAMES[s], int(counts.get(s, 0))) for s in ("placed", "merged", "unplaced")]
    if run:
        items += [("导入文件 file", run.get("file_name")), ("状态 status", run.get("status"))]
        if "rejected" in run_counts:
            items.append(("拒绝行 rejected rows", run_counts["rejected"]))
        items += [(f"{k}", v) for k, v in run_counts.items() if k != "rejected"]
    body = summary_html(title, items) + swatches_html(
        "图例 legend", {STATUS_NAMES[k]: c for k, c in STATUS_COLORS.items()}, outline=False)
    Panel(collapsible("概况 summary", body), "topright", "gm-preview-summary").add_to(m)
    unplaced = villages[villages["status"] == "unplaced"]
    if len(unplaced):
        Panel(collapsible("未定位 unplaced", _unplaced_list(unplaced)), "bottomleft", "gm-unplaced-panel").add_to(m)
    return render(m, replace(options, title=title), ("leaflet", "gridmkt"))
