"""Folium map factory with no CDN: local assets, configurable basemap, background from our own data.

Every page builder makes its map with :func:`new_map`, adds layers, and turns it
into HTML with :func:`render`, which strips folium's default CDN links and puts
our own assets in (inline for exports, ``/maps/static/...`` links when served).
With ``tile_crs='gcj02'`` every overlay goes through :func:`shift_geoms` /
:func:`shift_points` so it lines up with GCJ-02 tiles (Amap and the like).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from folium.map import Layer
from jinja2 import Template

from grid.chinacrs import wgs84_to_gcj02
from maps.assets import STATIC_PREFIX, asset_tags

BACKGROUND_COLOR = "#f3f1ea"
COORD_DECIMALS = 5  # about 1 m: enough for a page, and keeps it small


@dataclass(frozen=True)
class PageOptions:
    """What a page needs besides its data: basemap, link templates, inline or served assets."""

    title: str = "gridmkt"
    tile_url: str | None = None
    tile_crs: str = "wgs84"
    attribution: str = ""
    tag_url: str = "https://tags.example/customers/{customer_id}"
    lead_url: str = "https://leads.example/leads?customer={customer_id}"
    tag_cell_url: str = "https://tags.example/customers?ids={customer_ids}"
    lead_cell_url: str = "https://leads.example/leads?customers={customer_ids}"
    inline: bool = True
    static_prefix: str = STATIC_PREFIX
    max_link_ids: int = 30  # customer ids per cell link: keeps URLs and the page short
    # Served pages only: a vector-tile URL template ({z}/{x}/{y}) of the customers layer, for
    # layers too big to ship in the page (the API's /tiles/customers/...).
    customer_tiles_url: str | None = None

    def __post_init__(self) -> None:
        if self.tile_crs not in ("wgs84", "gcj02"):
            raise ValueError(f"tile_crs must be 'wgs84' or 'gcj02', got {self.tile_crs!r}")

    @property
    def shifted(self) -> bool:
        """Overlays are moved to GCJ-02 only when the tiles are GCJ-02."""
        return bool(self.tile_url) and self.tile_crs == "gcj02"


@dataclass(frozen=True)
class Background:
    """The project's own reference layers, drawn when there is no tile server (and as outlines otherwise)."""

    county: object | None = None  # shapely (Multi)Polygon in WGS84
    townships: pd.DataFrame | None = None  # name, lon, lat (seats)
    villages: pd.DataFrame | None = None  # name, lon, lat
    extra: dict = field(default_factory=dict)
    county_name: str = ""
    neighbours: gpd.GeoDataFrame | None = None  # code, name, geometry: the counties around
    township_areas: gpd.GeoDataFrame | None = None  # code, name, geometry: township boundaries, where known


def shift_points(lon, lat, opts: PageOptions) -> tuple[np.ndarray, np.ndarray]:
    """Point coordinates as the page draws them (GCJ-02 shifted if the tiles need it)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return wgs84_to_gcj02(lon, lat) if opts.shifted else (lon, lat)


def shift_geoms(geoms, opts: PageOptions) -> np.ndarray:
    """Geometries as the page draws them, coordinates rounded to COORD_DECIMALS."""
    arr = np.asarray(geoms, dtype=object)

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = shift_points(xy[:, 0], xy[:, 1], opts)
        return np.round(np.column_stack([x, y]), COORD_DECIMALS)

    return shapely.transform(arr, move)


def js(obj) -> str:
    """Compact JSON for a <script>: UTF-8 kept (half the bytes of \\u escapes), script-closing text escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("</", "<\\/").replace("<!--", "\\u003c!--")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _clean(v):
    """A JSON-safe scalar (NaN → None, numpy → Python, floats rounded)."""
    if v is None:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else round(float(v), 3)
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    return str(v)


def feature_collection(geoms, props: Iterable[dict], opts: PageOptions) -> dict:
    """A GeoJSON FeatureCollection of shifted, rounded geometries with cleaned properties."""
    moved = shift_geoms(geoms, opts)
    feats = [
        {"type": "Feature", "geometry": json.loads(shapely.to_geojson(g)), "properties": _clean(p)}
        for g, p in zip(moved, props, strict=True) if g is not None and not g.is_empty
    ]
    return {"type": "FeatureCollection", "features": feats}


def bounds_of(geoms, opts: PageOptions) -> list[list[float]]:
    """[[south, west], [north, east]] of the (shifted) geometries, for fit_bounds."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(shift_geoms(geoms, opts))
    return [[float(ymin), float(xmin)], [float(ymax), float(xmax)]]


class GeoLayer(Layer):
    """A GeoJSON overlay styled and given popups by ``gridmkt.geoLayer`` (maps/static/gridmkt.js)."""

    js = staticmethod(js)
    _template = Template(
        """{% macro script(this, kwargs) %}
var {{ this.get_name() }} = gridmkt.geoLayer({{ this.js(this.data) }}, {{ this.js(this.kind) }}, {{ this.js(this.style) }});
{% endmacro %}"""
    )

    def __init__(self, data: dict, kind: str, name: str, style: dict | None = None, show: bool = True,
                 control: bool = True):
        super().__init__(name=name, overlay=True, control=control, show=show)
        self._name = "GeoLayer"
        self.data, self.kind, self.style = data, kind, style or {}


class VectorTileLayer(Layer):
    """Customers from Mapbox vector tiles (Leaflet.VectorGrid): counts per cell when zoomed out, single
    customers when zoomed in; the browser sends the session cookie, the server scopes every tile."""

    _template = Template(
        """{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.vectorGrid.protobuf({{ this.url | tojson }}, {
  interactive: true, maxNativeZoom: 17, pane: "shadowPane",  // above the cell polygons, below markers
  vectorTileLayerStyles: {customers: function (p) {
    var r = Math.max(3, Math.min(16, 3 + 2 * Math.log2(p.count || 1)));
    return {radius: r, fill: true, fillColor: "#1f6fb2", fillOpacity: 0.55, color: "#ffffff", weight: 1};
  }}
}).on("click", function (e) {
  var p = e.layer.properties || {};
  L.popup().setLatLng(e.latlng).setContent(p.customer_id ? gridmkt.esc(p.customer_id) : (p.count + " 客户 customers"))
    .openOn({{ this._parent.get_name() }});
});
{% endmacro %}"""
    )

    def __init__(self, url: str, name: str, show: bool = False):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "VectorTileLayer"
        self.url = url


class PointLayer(Layer):
    """Points (lat, lon, props) drawn as circle markers by ``gridmkt.pointLayer``."""

    js = staticmethod(js)
    _template = Template(
        """{% macro script(this, kwargs) %}
var {{ this.get_name() }} = gridmkt.pointLayer({{ this.js(this.rows) }}, {{ this.js(this.kind) }}, {{ this.js(this.style) }});
{% endmacro %}"""
    )

    def __init__(self, rows: list, kind: str, name: str, style: dict | None = None, show: bool = True,
                 control: bool = True):
        super().__init__(name=name, overlay=True, control=control, show=show)
        self._name = "PointLayer"
        self.rows, self.kind, self.style = rows, kind, style or {}


class Panel(MacroElement):
    """A fixed HTML panel (legend, summary, table) as a Leaflet control."""

    js = staticmethod(js)
    _template = Template(
        """{% macro script(this, kwargs) %}
gridmkt.panel({{ this._parent.get_name() }}, {{ this.js(this.html) }}, {{ this.js(this.position) }}, {{ this.js(this.css_class) }});
{% endmacro %}"""
    )

    def __init__(self, html: str, position: str = "bottomright", css_class: str = ""):
        super().__init__()
        self._name = "Panel"
        self.html, self.position, self.css_class = html, position, css_class


class PageConfig(MacroElement):
    """``gridmkt.config``: link templates and labels the page's JavaScript uses."""

    js = staticmethod(js)
    _template = Template(
        """{% macro header(this, kwargs) %}
<script>window.gridmktConfig = {{ this.js(this.config) }};</script>
{% endmacro %}"""
    )

    def __init__(self, config: dict):
        super().__init__()
        self._name = "PageConfig"
        self.config = config


def point_rows(df: pd.DataFrame, cols: list[str], opts: PageOptions) -> list[list]:
    """[[lat, lon, *cols], ...] for rows with coordinates, shifted for the basemap."""
    have = df[np.isfinite(df["lon"].astype(float)) & np.isfinite(df["lat"].astype(float))]
    lon, lat = shift_points(have["lon"], have["lat"], opts)
    lat, lon = np.round(lat, COORD_DECIMALS), np.round(lon, COORD_DECIMALS)
    values = [have[c].tolist() if c in have else [None] * len(have) for c in cols]
    return [[float(a), float(o), *(_clean(v[i]) for v in values)] for i, (a, o) in enumerate(zip(lat, lon, strict=True))]


def new_map(bounds: list[list[float]], opts: PageOptions, *, link_labels: dict | None = None) -> folium.Map:
    """A folium map fitted to ``bounds`` with the configured basemap (or none) and the page config."""
    center = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    m = folium.Map(location=center, zoom_start=11, tiles=None, control_scale=True, prefer_canvas=False)
    # Without a tile layer Leaflet has no max zoom, and marker clustering refuses to work.
    m.options["maxZoom"] = 19
    if opts.tile_url:
        folium.TileLayer(tiles=opts.tile_url, attr=opts.attribution or "basemap", name="底图 basemap",
                         control=False).add_to(m)
    m.fit_bounds(bounds)
    cfg = {"tagUrl": opts.tag_url, "leadUrl": opts.lead_url, "tagCellUrl": opts.tag_cell_url,
           "leadCellUrl": opts.lead_cell_url, "labels": link_labels or {},
           "background": None if opts.tile_url else BACKGROUND_COLOR}
    m.add_child(PageConfig(cfg), name="gridmkt_config")
    if not opts.tile_url:
        # No tiles: a light paper colour under the county so the map does not look broken.
        m.get_root().header.add_child(
            Element(f"<style>.folium-map.leaflet-container {{ background: {BACKGROUND_COLOR}; }}</style>"), name="gridmkt_bg")
    return m


def background_layers(bg: Background, opts: PageOptions, *, neighbours: bool = True) -> list[dict]:
    """The context layer's parts, in drawing order: ``{kind, label, geo | rows, control, show}``.

    Neighbouring counties (outlined, and named at a point on each) when ``neighbours``, the county
    outline, township boundaries where known, township seats with their names, and village points
    (``show`` False over a tile server's basemap: the tiles name places). One source for the folium
    pages (:func:`add_background`) and the day page (``maps.day.day_context``).
    """
    out: list[dict] = []
    if neighbours and bg.neighbours is not None and len(bg.neighbours):
        out.append({"kind": "neighbour", "label": "邻县 neighbouring counties", "control": False,
                    "geo": feature_collection(bg.neighbours.geometry.to_numpy(),
                                              [{"t": n} for n in bg.neighbours["name"]], opts)})
        spots = shapely.point_on_surface(bg.neighbours.geometry.to_numpy())
        names = pd.DataFrame({"name": bg.neighbours["name"].to_numpy(), "lon": shapely.get_x(spots),
                              "lat": shapely.get_y(spots)})
        out.append({"kind": "county_label", "label": "邻县 neighbouring counties", "control": False,
                    "rows": point_rows(names, ["name"], opts)})
    if bg.county is not None:
        county = gpd.GeoSeries([bg.county], crs=4326).to_numpy()
        out.append({"kind": "county", "label": "县界 county", "control": False,
                    "geo": feature_collection(county, [{"t": bg.county_name or "县界 county"}], opts)})
    if bg.township_areas is not None and len(bg.township_areas):
        out.append({"kind": "township_area", "label": "乡镇界 township boundaries",
                    "geo": feature_collection(bg.township_areas.geometry.to_numpy(),
                                              [{"t": n} for n in bg.township_areas["name"]], opts)})
    if bg.townships is not None and len(bg.townships):
        out.append({"kind": "township", "label": "乡镇 townships", "rows": point_rows(bg.townships, ["name"], opts)})
    if bg.villages is not None and len(bg.villages):
        out.append({"kind": "village", "label": "村 villages", "show": not opts.tile_url,
                    "rows": point_rows(bg.villages, ["name"], opts)})
    return out


def add_background(m: folium.Map, bg: Background | None, opts: PageOptions) -> None:
    """The context layer from the project's own data (:func:`background_layers`), so that a reader can
    tell where a cell is: drawn on every page; village names appear once the map is zoomed in far
    enough to read them (gridmkt.js); over a tile server's basemap the village points start hidden."""
    if bg is None:
        return
    for part in background_layers(bg, opts):
        kw = {"control": part.get("control", True), "show": part.get("show", True)}
        if "geo" in part:
            GeoLayer(part["geo"], part["kind"], part["label"], **kw).add_to(m)
        else:
            PointLayer(part["rows"], part["kind"], part["label"], **kw).add_to(m)


def _strip_cdn(element) -> None:
    """Drop folium's default CDN links on every element (our own assets replace them)."""
    if hasattr(element, "default_js"):
        element.default_js = []
        element.default_css = []
    for child in list(getattr(element, "_children", {}).values()):
        _strip_cdn(child)


def render(m: folium.Map, opts: PageOptions, bundles: tuple[str, ...] = ("leaflet", "gridmkt")) -> str:
    """The page as one HTML string: local assets only (inline or /maps/static links), titled."""
    root = m.get_root()
    _strip_cdn(root)
    # Phones: device width, and pinch-zoom goes to the map, not the page.
    root.header.add_child(Element(
        '<meta name="viewport" content="width=device-width, initial-scale=1.0, maximum-scale=1.0, user-scalable=no"/>'
        f"<title>{_esc(opts.title)}</title>"), name="gridmkt_title")
    root.header.add_child(Element(asset_tags(bundles, inline=opts.inline, prefix=opts.static_prefix)),
                          name="gridmkt_assets")
    return root.render()


def _esc(s: str) -> str:
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


esc = _esc
