"""Province / legal-entity overview: every county's latest grid drawn from vector tiles, nothing embedded.

A page over 10M customers cannot carry its cells: each grid's ``cells``,
``territories`` and ``customers`` come from the server's tiles
(Leaflet.VectorGrid), one tile layer per grid and layer, each limited to the
box of that grid's cells (Leaflet GridLayer ``bounds``) so the browser never
asks for tiles of another county. Only county outlines (simplified), the
legend and a per-county summary are in the page. Served only: without the
server there are no tiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import folium
from folium.map import Layer
from jinja2 import Template

from maps.base import GeoLayer, PageOptions, Panel, esc, feature_collection, js, new_map, render
from maps.classify import NO_DATA, RM_COLORS, Classes
from maps.panels import BLANK_OUTLINE, _num, collapsible, gap_classes_html, legend_html

LAYERS = ("cells", "territories", "customers")
LAYER_NAMES = {"cells": "网格 cells: 缺口评分 gap score", "territories": "责任区 territories",
               "customers": "客户 customers"}
BLANK_COLOR = BLANK_OUTLINE
FOLD_SUMMARY_ABOVE = 6  # counties
# Tile properties shown in a cell's popup, with their labels (gridmkt.js looks them up in the page config).
LABELS = {"customers": "客户 customers", "households": "户数 households"}


class TileGroup(Layer):
    """One overlay made of a Leaflet.VectorGrid per grid (``gridmkt.tileGroup`` in maps/static/gridmkt.js)."""

    js = staticmethod(js)
    _template = Template(
        """{% macro script(this, kwargs) %}
var {{ this.get_name() }} = gridmkt.tileGroup({{ this.js(this.grids) }}, {{ this.js(this.layer) }}, {{ this.js(this.opts) }});
{% endmacro %}"""
    )

    def __init__(self, grids: list[dict], layer: str, opts: dict, name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "TileGroup"
        self.grids, self.layer, self.opts = grids, layer, opts


def _fill(template: str, **values) -> str:
    """``template`` with only the named ``{key}`` parts filled ({z}/{x}/{y} stay for Leaflet)."""
    for k, v in values.items():
        template = template.replace("{" + k + "}", str(v))
    return template


def _bounds(box: Sequence[float]) -> list[list[float]]:
    xmin, ymin, xmax, ymax = box
    return [[round(ymin, 5), round(xmin, 5)], [round(ymax, 5), round(xmax, 5)]]


def _grid_label(row: Mapping) -> str:
    res = row.get("resolution")
    return f"#{row['grid_id']}" + ("" if res is None else f" r{res}")


def _share(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


# Column headers; on a phone the header row hides and each cell carries its header (data-label, gridmkt.css),
# so a county's figures wrap onto a few short lines instead of a table wider than the screen.
COLUMNS = ("县 county", "网格 grid", "客户 customers", "入格率 coverage", "网格数 cells", "空白 blank", "客户经理 RMs", "")


def _cells(values: Sequence[str], start: int = 0) -> str:
    """<td>s of columns ``start``… (the coverage one classed gm-coverage), each figure labelled by its header."""
    out = []
    for i, v in enumerate(values, start=start):
        cls = ' class="gm-coverage"' if i == 3 else ""
        label = f' data-label="{esc(COLUMNS[i])}"' if 0 < i < len(COLUMNS) - 1 else ""
        out.append(f"<td{cls}{label}>{v}</td>")
    return "".join(out)


def _summary(rows: list[Mapping], missing: list[str], kind: str, dashboard_url: str, title: str) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in COLUMNS)
    body = "".join(
        f"<tr data-grid=\"{r['grid_id']}\">" + _cells([
            esc(r["county_name"]), esc(_grid_label(r)), _num(r["customers"]), _share(r.get("coverage")),
            _num(r["cells"]), _num(r["blank_cells"]), _num(r["rms"]),
            f"<a href=\"{esc(_fill(dashboard_url, grid_id=r['grid_id']))}\">看板 dashboard</a>"]) + "</tr>"
        for r in rows)
    blanks = [r["blank_cells"] for r in rows if r["blank_cells"] is not None]
    # Overall 入格率 over the counties that report the reader's customer total.
    counted = [r for r in rows if r.get("scope_customers")]
    overall = (sum(r["customers"] for r in counted) / sum(r["scope_customers"] for r in counted)
               if counted else None)
    total = ("<tr class=\"gm-total\"><th>合计 total</th>" + _cells([
        str(len(rows)), _num(sum(r["customers"] for r in rows)), _share(overall), _num(sum(r["cells"] for r in rows)),
        _num(sum(blanks) if blanks else None), _num(sum(r["rms"] for r in rows)), ""], start=1) + "</tr>")
    note = (f'<div class="gm-note">无{esc(kind)}网格 no {esc(kind)} grid: {esc("、".join(missing))}</div>'
            if missing else "")
    return (f'<h3>{esc(title)}</h3><table class="gm-summary gm-counties gm-stack"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody><tfoot>{total}</tfoot></table>{note}")


def _legend(classes: Classes, shifted: bool) -> str:
    legend = legend_html("缺口评分 gap score", classes)
    legend += gap_classes_html()
    legend += ('<div class="gm-legend"><div class="gm-note">空白网格从10级起描边 blank cells outlined from zoom 10</div>'
               f'<div><i style="background:transparent;border:3px solid {RM_COLORS[0]}"></i>'
               "责任区 territory: one colour per RM</div>"
               '<div><i style="background:#1f6fb2;border-radius:50%"></i>客户 customers (count per cell)</div></div>')
    if shifted:
        legend += '<div class="gm-note">图层为WGS84, 底图为GCJ-02 (约500米偏移) overlays are WGS84, the basemap GCJ-02</div>'
    return legend


def province_page(rows: Sequence[Mapping], *, options: PageOptions, score_classes: Classes, tile_url: str,
                  dashboard_url: str, kind: str = "h3", title: str = "全域网格 province") -> str:
    """The province overview as one HTML page (served only: it draws from ``tile_url``).

    ``rows``: one per county, as :func:`geodata.province.province_grids` gives
    them (``county_name``, ``outline``, ``grid_id``, ``resolution``,
    ``bounds``, ``cells``, ``customers``, ``blank_cells``, ``rms``, and for the
    coverage ratio 入格率 ``coverage`` and ``scope_customers``, all within the
    reader's scope); a county
    is drawn when it has a grid and ``bounds``, listed as without a grid when
    ``grid_id`` is None. ``tile_url``: a template with ``{layer}``,
    ``{grid_id}`` and Leaflet's ``{z}/{x}/{y}``; ``dashboard_url`` one with
    ``{grid_id}``. ``score_classes`` colour the cells by their gap score.
    """
    drawn = [r for r in rows if r.get("grid_id") is not None and r.get("bounds") is not None]
    if not drawn:
        raise ValueError("no grid to draw")
    missing = [r["county_name"] for r in rows if r.get("grid_id") is None]
    # Tiles are WGS84 / Web Mercator and cannot be shifted: the outlines stay with them.
    outline_opts = replace(options, tile_crs="wgs84")
    xmin = min(r["bounds"][0] for r in drawn)
    ymin = min(r["bounds"][1] for r in drawn)
    xmax = max(r["bounds"][2] for r in drawn)
    ymax = max(r["bounds"][3] for r in drawn)
    m = new_map(_bounds((xmin, ymin, xmax, ymax)), outline_opts, link_labels=LABELS)
    outlined = [r for r in rows if r.get("outline") is not None]
    if outlined:
        GeoLayer(feature_collection([r["outline"] for r in outlined], [{"t": r["county_name"]} for r in outlined],
                                    outline_opts),
                 "county", "县界 counties", style={"fill": False, "weight": 1.5}, control=False).add_to(m)
    grids = [{"bounds": _bounds(r["bounds"]), "grid": r["grid_id"], "county": r["county_name"],
              "dashboard": _fill(dashboard_url, grid_id=r["grid_id"])} for r in drawn]
    opts = {"bins": list(score_classes.bins), "colors": list(score_classes.colors), "noData": NO_DATA,
            "blank": BLANK_COLOR, "rmColors": list(RM_COLORS)}
    for z, layer in enumerate(LAYERS, start=2):
        per_layer = [{**g, "url": _fill(tile_url, layer=layer, grid_id=g["grid"])} for g in grids]
        # Gap scores first: territories (filled by RM when zoomed out) and customers are a click away.
        TileGroup(per_layer, layer, {**opts, "zIndex": z}, LAYER_NAMES[layer], show=layer == "cells").add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)
    # A long county table would hide the map: it starts folded (one click opens it).
    Panel(collapsible("概况 summary", _summary(drawn, missing, kind, dashboard_url, title),
                      collapsed=len(drawn) > FOLD_SUMMARY_ABOVE),
          "topright", "gm-summary-panel gm-province-panel").add_to(m)
    Panel(collapsible("图例 legend", _legend(score_classes, options.shifted)), "bottomright",
          "gm-legend-panel").add_to(m)
    return render(m, replace(options, title=f"{title} · {kind}"), ("leaflet", "vectorgrid", "gridmkt"))
