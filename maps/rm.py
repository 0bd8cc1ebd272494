"""RM phone map: one RM's cells and customers, clustered, with masked names, lead badges and "where am I"."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
from folium.plugins import FastMarkerCluster, LocateControl
from folium.template import Template

from maps.base import (
    Background,
    GeoLayer,
    PageOptions,
    Panel,
    PointLayer,
    add_background,
    bounds_of,
    feature_collection,
    js,
    new_map,
    point_rows,
    render,
)
from maps.classify import rm_colors
from maps.panels import collapsible, shown_measures, summary_html
from maps.places import cell_title

CELL_LABELS = {"customers": "客户 customers", "households": "户数 households", "open_leads": "待跟进线索 open leads",
               "days_since_visit": "距上次走访天 days since visit"}
# Clusters break up once a street is in view; chunked so 2,000+ markers do not block the phone's UI thread.
CLUSTER_OPTIONS = {"maxClusterRadius": 50, "disableClusteringAtZoom": 17, "chunkedLoading": True,
                   "spiderfyOnMaxZoom": True, "showCoverageOnHover": False}


class CustomerCluster(FastMarkerCluster):
    """FastMarkerCluster (data array + callback, not one Marker per customer) written as compact UTF-8 JSON."""

    js = staticmethod(js)
    _template = Template(
        """{% macro script(this, kwargs) %}
var {{ this.get_name() }} = (function(){
    var callback = {{ this.callback_name }};
    var data = {{ this.js(this.data) }};
    var cluster = L.markerClusterGroup({{ this.options|tojavascript }});
    for (var i = 0; i < data.length; i++) { cluster.addLayer(callback(data[i])); }
    cluster.addTo({{ this._parent.get_name() }});
    return cluster;
})();
{% endmacro %}"""
    )

    def __init__(self, rows: list, callback_name: str, name: str, **options):
        super().__init__(rows, callback=callback_name, name=name, **options)
        self.callback_name = callback_name


def customer_rows(customers: pd.DataFrame, mask_name: Callable[[str | None], str | None],
                  opts: PageOptions) -> list[list]:
    """[[lat, lon, customer_id, masked name, open leads], ...] for customers with coordinates."""
    df = customers.assign(
        name=[mask_name(n) if isinstance(n, str) else "" for n in customers.get("name", pd.Series("", index=customers.index))],
        open_leads=pd.to_numeric(customers.get("open_leads", 0), errors="coerce").fillna(0).astype(int),
        customer_id=customers["customer_id"].astype(str),
    )
    return point_rows(df, ["customer_id", "name", "open_leads"], opts)


def rm_page(
    cells: gpd.GeoDataFrame, customers: pd.DataFrame, *, rm_code: str, options: PageOptions,
    mask_name: Callable[[str | None], str | None], rm_name: str = "",
    cell_customers: Mapping[str, Sequence[str]] | None = None, outlets: pd.DataFrame | None = None,
    background: Background | None = None,
) -> str:
    """The phone map of one RM as one HTML page.

    Only cells whose ``owner_rm`` is ``rm_code`` are drawn (all given cells when
    there is no ``owner_rm`` column), and only customers whose ``cell_id`` is one
    of them (all given when there is no ``cell_id`` column). ``customers``:
    customer_id, name, lon, lat, optional open_leads and cell_id. Names go
    through ``mask_name`` (required: the caller decides what the viewer may see;
    pass ``api.masking.mask_name`` for 张*).
    """
    if "owner_rm" in cells:
        cells = cells[cells["owner_rm"].astype(str) == str(rm_code)]
    if cells.empty:
        raise ValueError(f"RM {rm_code} owns no cells on this grid")
    if "cell_id" in customers:
        customers = customers[customers["cell_id"].isin(set(cells["cell_id"]))]
    color = rm_colors([rm_code])[str(rm_code)]
    if cell_customers is not None:
        ids = cell_customers
    else:
        ids = customers.groupby("cell_id")["customer_id"].agg(list).to_dict() if "cell_id" in customers else {}
    records = pd.DataFrame(cells.drop(columns="geometry")).replace({np.nan: None}).to_dict("records")
    props = []
    for r in records:
        cell_ids = [str(c) for c in ids.get(r["cell_id"], ())]
        title, sub = cell_title(r)
        props.append({"id": r["cell_id"], "t": title, "sub": sub, "o": f"{rm_code} {rm_name}".strip(),
                      "oc": color, "c": "#c6dbef", "m": shown_measures(r, CELL_LABELS),
                      "ids": cell_ids[:options.max_link_ids], "n": len(cell_ids)})

    geoms = cells.geometry.to_numpy()
    m = new_map(bounds_of(geoms, options), options, link_labels=CELL_LABELS)
    add_background(m, background, options)
    GeoLayer(feature_collection(geoms, props, options), "cell", "我的网格 my cells", style={"fillOpacity": 0.25}).add_to(m)
    if outlets is not None and len(outlets):
        PointLayer(point_rows(outlets, ["name", "code"], options), "outlet", "网点 outlets").add_to(m)
    rows = customer_rows(customers, mask_name, options)
    CustomerCluster(rows, "gridmkt.customerMarker", "客户 customers", **CLUSTER_OPTIONS).add_to(m)
    LocateControl(position="topleft", strings={"title": "我在哪 where am I"}, keepCurrentZoomLevel=False,
                  flyTo=True).add_to(m)

    leads = int(pd.to_numeric(customers.get("open_leads", 0), errors="coerce").fillna(0).sum()) if len(customers) else 0
    summary = summary_html(f"{rm_code} {rm_name}".strip(), [
        ("网格 cells", len(cells)), ("客户 customers", len(customers)), ("待跟进线索 open leads", leads),
        ("无坐标客户 without location", len(customers) - len(rows)),
    ])
    # Collapsed on a phone the panel would hide half the map; expanded it is 4 short lines.
    Panel(collapsible("概况 summary", summary), "bottomleft", "gm-rm-panel").add_to(m)
    return render(m, replace(options, title=f"客户经理地图 RM map · {rm_code}"),
                  ("leaflet", "markercluster", "locate", "gridmkt"))
