"""Page builders on literal data: content, links, masking, legend, no CDN, size, basemap handling."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from api.masking import mask_name
from maps.assets import BUNDLES, asset_files, asset_tags
from maps.base import feature_collection, shift_points
from maps.compare import compare_page, moved_cells, workload_table
from maps.dashboard import dashboard_page, dashboard_summary
from maps.preview import preview_page, village_status
from maps.rm import rm_page
from tests.maps import samples
from tests.maps.samples import CDN_MARKERS, OPTIONS


def _dashboard(**kw) -> str:
    args = dict(options=OPTIONS, rms=samples.RMS, outlets=samples.OUTLETS, service_points=samples.SERVICE_POINTS,
                cell_customers=samples.CELL_CUSTOMERS, figures=dashboard_summary(samples.cells(), scope_customers=8),
                background=samples.BACKGROUND)
    return dashboard_page(samples.cells(), **{**args, **kw})


def _external_refs(html: str) -> list[str]:
    """src/href attributes and url(...) targets that would make the browser fetch something."""
    refs = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', html)
    refs += re.findall(r"url\((['\"]?)(https?:[^'\")]+)\1\)", html)
    return refs


def _config(html: str) -> dict:
    return json.loads(re.search(r"window\.gridmktConfig = (\{.*?\});</script>", html).group(1))


def test_dashboard_has_cells_legend_summary_and_link_data():
    html = _dashboard()
    for cell in ("甲村", "乙村", "丙村", "丁村"):
        assert cell in html
    # Legend: the four distinct scores are their own classes; territory swatches name the RMs.
    assert "缺口评分 gap score" in html and all(f">{v}<" in html for v in ("20", "35", "55", "90"))
    assert "R1 张*" in html and "R2 李*" in html
    # Summary: 6 customers in cells of the reader's 8, 1 blank cell, 2 RMs; households whole.
    assert "75.0% (6 / 8)" in html and ">6<" in html and r"户数 households<\/th><td>230<" in html
    cfg = _config(html)
    assert cfg["tagCellUrl"] == "https://tags.bank.test/customers?ids={customer_ids}"
    assert cfg["leadCellUrl"] == "https://leads.bank.test/leads?customers={customer_ids}"
    assert '"ids":["C001","C002","C003"]' in html and '"ids":["C006"]' in html
    assert "城关支行" in html and "王团服务点" in html


def test_dashboard_summary_counts():
    s = dashboard_summary(samples.cells(), scope_customers=8)
    assert s == {"cells": 4, "customers": 6, "scope_customers": 8, "coverage": 0.75, "blank_cells": 1, "rms": 2,
                 "households": 230.0, "apportioned_cells": 0}
    assert dashboard_summary(samples.cells())["coverage"] is None


def test_dashboard_caps_link_ids():
    html = _dashboard(options=replace(OPTIONS, max_link_ids=2))
    assert '"ids":["C001","C002"],"n":3' in html
    assert "C003" not in html


def test_dashboard_measures_and_bad_measure():
    html = _dashboard(measure="penetration")
    assert "渗透率 customers per household" in html
    # 丙村 has no households: no penetration, drawn in the no-data grey.
    assert "#d9d9d9" in html
    with pytest.raises(ValueError, match="measure"):
        _dashboard(measure="shoe_size")


@pytest.mark.parametrize("page", ["dashboard", "rm", "preview", "compare"])
def test_no_cdn_and_nothing_fetched_when_inline(page):
    html = _all_pages()[page]
    for marker in CDN_MARKERS:
        assert marker not in html, marker
    assert _external_refs(html) == []
    assert '<meta name="viewport"' in html


def test_served_pages_link_local_static_files():
    html = _dashboard(options=replace(OPTIONS, inline=False))
    refs = _external_refs(html)
    assert refs and all(r.startswith("/maps/static/") for r in refs)
    files = asset_files()
    assert {r.removeprefix("/maps/static/") for r in refs} <= set(files)
    # Images the stylesheets point at are served too.
    assert "node_modules/leaflet/dist/images/layers.png" in files


def test_inline_assets_embed_images_and_drop_source_maps():
    tags = asset_tags(["leaflet"], inline=True)
    assert "data:image/png;base64," in tags
    assert "sourceMappingURL" not in tags
    assert set(BUNDLES) >= {"leaflet", "markercluster", "locate", "vectorgrid", "gridmkt"}


def test_rm_page_only_that_rm_masked_names_and_links():
    customers = samples.customers(6)
    html = rm_page(samples.cells(), customers, rm_code="R1", rm_name="张*", options=OPTIONS, mask_name=mask_name,
                   background=samples.BACKGROUND)
    assert "甲村" in html and "乙村" in html and "丙村" not in html
    ids_r1 = customers.loc[customers["cell_id"].isin(["A", "B"]), "customer_id"]
    ids_r2 = customers.loc[customers["cell_id"] == "C", "customer_id"]
    assert all(i in html for i in ids_r1) and not any(i in html for i in ids_r2)
    assert "张**" in html and "欧***" in html and "张三丰" not in html and "欧阳娜娜" not in html
    cfg = _config(html)
    assert cfg["tagUrl"] == "https://tags.bank.test/customers/{customer_id}"
    assert cfg["leadUrl"] == "https://leads.bank.test/leads?customer={customer_id}"
    assert "var callback = gridmkt.customerMarker" in html and "L.control.locate" in html


def test_rm_page_of_2000_customers_is_under_1mb():
    customers = samples.customers(3000)
    html = rm_page(samples.cells(), customers, rm_code="R1", options=OPTIONS, mask_name=mask_name,
                   background=samples.BACKGROUND)
    n = int(customers["cell_id"].isin(["A", "B"]).sum())
    size = len(html.encode("utf-8"))
    print(f"RM page, {n} customers, assets inline: {size / 1024:.0f} KiB")
    assert n == 2000
    assert size < 1_000_000


def test_rm_without_cells_is_refused():
    with pytest.raises(ValueError, match="owns no cells"):
        rm_page(samples.cells(), samples.customers(), rm_code="R9", options=OPTIONS, mask_name=mask_name)


def test_no_tile_url_draws_background_and_no_tile_layer():
    html = _dashboard()
    assert "L.tileLayer" not in html and "#f3f1ea" in html and "城关镇" in html
    tiled = _dashboard(options=replace(OPTIONS, tile_url="http://tiles.bank.test/{z}/{x}/{y}.png"))
    assert "L.tileLayer" in tiled and "http://tiles.bank.test/{z}/{x}/{y}.png" in tiled
    assert ".folium-map.leaflet-container { background" not in tiled


def test_gcj02_tiles_shift_overlays_and_wgs84_does_not():
    wgs = replace(OPTIONS, tile_url="http://t.test/{z}/{x}/{y}.png", tile_crs="wgs84")
    gcj = replace(wgs, tile_crs="gcj02")
    geoms = samples.cells().geometry.to_numpy()[:1]
    plain = np.array(feature_collection(geoms, [{}], wgs)["features"][0]["geometry"]["coordinates"][0])
    moved = np.array(feature_collection(geoms, [{}], gcj)["features"][0]["geometry"]["coordinates"][0])
    assert np.allclose(plain, np.array(geoms[0].exterior.coords), atol=1e-5)
    dlon, dlat = (moved - plain).mean(axis=0)
    # GCJ-02 near Yinchuan is a few hundred metres north-east of WGS84.
    assert 0.001 < dlon < 0.01 and 0.0 < dlat < 0.01
    # No tile server: nothing to match, so no shift even if gcj02 is configured.
    assert shift_points([106.0], [38.0], replace(OPTIONS, tile_crs="gcj02"))[0][0] == 106.0
    with pytest.raises(ValueError, match="tile_crs"):
        replace(OPTIONS, tile_crs="bd09")


def test_village_status_placed_merged_unplaced():
    st = village_status(samples.villages(), samples.village_cells()).set_index("name")
    assert st["status"].to_dict() == {"甲村": "placed", "乙村": "placed", "丙村": "merged", "丁村": "merged",
                                      "戊村": "placed", "己村": "unplaced"}
    assert st.loc["丁村", "cell_id"] == "C"
    no_cells = village_status(samples.villages(), None)
    assert list(no_cells["status"]) == ["placed"] * 5 + ["unplaced"]


def test_preview_page_lists_unplaced_and_counts_rejected():
    html = _all_pages()["preview"]
    assert "未定位村 unplaced villages (1)" in html and "己村" in html and "640121100006" in html
    assert "拒绝行 rejected rows" in html and ">3<" in html and "villages.csv" in html


def test_compare_moved_cells_and_workload():
    a, b = {"A": "R1", "B": "R1", "C": "R2"}, {"A": "R1", "B": "R2", "C": "R2", "D": "R2"}
    assert moved_cells(a, b) == ["B", "D"]
    rows = workload_table(samples.cells(), a, b)
    assert rows == [
        {"rm_id": "R1", "cells_a": 2, "cells_b": 1, "customers_a": 5, "customers_b": 3,
         "households_a": 150.0, "households_b": 100.0},
        {"rm_id": "R2", "cells_a": 1, "cells_b": 3, "customers_a": 1, "customers_b": 3,
         "households_a": 0.0, "households_b": 130.0},
    ]
    html = compare_page(samples.cells(), a, b, options=OPTIONS, labels=("current", "plan-1"))
    assert "调整网格 cells moved" in html and ">2<" in html and "current → plan-1" in html
    assert '"moved":true' in html


def test_compare_workload_in_customers_households_and_percent_of_target():
    """Issue 15: the compare table read '0.01 / 0.02' with no unit. Per RM it now says cells, customers,
    households and the share of the RM's target workload, each before → after."""
    a, b = {"A": "R1", "B": "R1", "C": "R2"}, {"A": "R1", "B": "R2", "C": "R2", "D": "R2"}
    per_rm = [{"rm_id": "R1", "cells_a": 2, "cells_b": 1, "customers_a": 5, "customers_b": 3,
               "households_a": 150.5, "households_b": 100.25, "target_pct_a": 125.04, "target_pct_b": 75.0,
               "workload_a": 0.0123, "workload_b": 0.0234},
              {"rm_id": "R2", "cells_a": 1, "cells_b": 3, "customers_a": 1, "customers_b": 3,
               "households_a": 0.0, "households_b": 130.0, "target_pct_a": 75.0, "target_pct_b": 125.0}]
    html = compare_page(samples.cells(), a, b, options=OPTIONS, per_rm=per_rm, rms=samples.RMS).replace("<\\/", "</")
    table = html[html.index('class=\\"gm-workload'):]  # the panel's table (the CSS names the class too)
    table = table[:table.index("</table>")]
    for header in ("客户 customers", "户数 households", "占目标 % of target"):
        assert header in table
    assert "5 → 3" in table and "≈150 → ≈100" in table and "125% → 75%" in table
    assert "R1 张*" in table and "0.01" not in table and "0.02" not in table and "工作量 current" not in table


_PAGES: dict[str, str] = {}


def _all_pages() -> dict[str, str]:
    """Each page once, built from the literal samples (shared by several tests)."""
    if not _PAGES:
        _PAGES["dashboard"] = _dashboard()
        _PAGES["rm"] = rm_page(samples.cells(), samples.customers(30), rm_code="R1", options=OPTIONS,
                               mask_name=mask_name, background=samples.BACKGROUND)
        _PAGES["preview"] = preview_page(
            samples.villages(), options=OPTIONS, cells=samples.village_cells(), background=samples.BACKGROUND,
            run_summary={"file_name": "villages.csv", "status": "ok", "counts": {"rows": 9, "loaded": 6, "rejected": 3}})
        _PAGES["compare"] = compare_page(samples.cells(), {"A": "R1", "B": "R1", "C": "R2"},
                                         {"A": "R1", "B": "R2", "C": "R2"}, options=OPTIONS)
    return _PAGES


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=97.0, max_value=125.0), st.floats(min_value=22.0, max_value=45.0),
       st.floats(min_value=1e-4, max_value=0.5), st.floats(min_value=1e-4, max_value=0.5))
def test_page_geometry_keeps_shape_and_gcj_shift_is_small(lon, lat, w, h):
    geom = np.asarray([box(lon, lat, lon + w, lat + h)], dtype=object)
    plain = np.array(feature_collection(geom, [{}], replace(OPTIONS, tile_url="x"))["features"][0]
                     ["geometry"]["coordinates"][0])
    gcj = np.array(feature_collection(geom, [{}], replace(OPTIONS, tile_url="x", tile_crs="gcj02"))["features"][0]
                   ["geometry"]["coordinates"][0])
    original = np.array(geom[0].exterior.coords)
    assert plain.shape == gcj.shape == original.shape
    assert np.abs(plain - original).max() <= 0.5e-5 + 1e-12
    shift = np.hypot(*(gcj - plain).T)
    # Inside China the GCJ-02 offset is some metres to under a kilometre, never zero.
    assert (shift > 0).all() and (shift < 0.01).all()


def test_dashboard_says_when_scores_were_computed_and_if_out_of_date():
    fresh = _dashboard(gap_run={"computed_at": "2026-12-01T08:30:00+00:00", "stale": False, "stale_reasons": []})
    # Times are shown in Asia/Shanghai (UTC+8), with the date the run measured as of.
    assert "评分于 scored" in fresh and "2026-12-01 16:30" in fresh and "已过期" not in fresh
    as_of = _dashboard(gap_run={"computed_at": "2026-12-01T08:30:00+00:00", "as_of": "2026-11-30T16:00:00+00:00",
                                "stale": False, "stale_reasons": []})
    assert "2026-12-01 16:30 · 截至 as of 2026-12-01 00:00" in as_of
    stale = _dashboard(gap_run={"computed_at": "2026-12-01T08:30:00+00:00", "stale": True,
                                "stale_reasons": ["2 cell(s) have another owner than when scored"]})
    assert "已过期 out of date: 2 cell(s) have another owner than when scored" in stale
    assert "评分于" not in _dashboard()  # no run given: no line


def test_compare_outlines_territories_so_that_neighbours_differ():
    """68 RMs on 2x2 blocks in two rows of 34: RM k above RM k+34; one colour per RM from a palette repeated."""
    from shapely.geometry import box

    from maps.compare import territory_outlines

    ids, geoms, owner = [], [], {}
    for x in range(68):
        for y in range(4):
            cid = f"c{x:02d}{y}"
            ids.append(cid)
            geoms.append(box(106 + 0.01 * x, 38 + 0.01 * y, 106.01 + 0.01 * x, 38.01 + 0.01 * y))
            owner[cid] = f"R{x // 2 + 34 * (y // 2):02d}"
    cells = gpd.GeoDataFrame({"cell_id": ids}, geometry=geoms, crs=4326)
    codes, outlines, colors = territory_outlines(cells, owner)
    assert len(codes) == 68 and len(set(colors.values())) <= 5
    for i, j in zip(*np.triu_indices(len(codes), 1), strict=True):
        if outlines[i].intersection(outlines[j]).length > 0:  # a shared edge, not a corner
            assert colors[codes[i]] != colors[codes[j]], (codes[i], codes[j])


def test_compare_cells_coloured_by_change_and_popups_titled_by_place():
    from maps.compare import change_class

    assert [change_class(*p) for p in (("R1", "R1"), ("R1", "R2"), (None, "R2"), ("R1", None), (None, None))] == [
        "kept", "in", "in", "out", "none"]
    a, b = {"A": "R1", "B": "R1", "C": "R2"}, {"A": "R1", "B": "R2", "D": "R2"}
    html = compare_page(samples.cells(), a, b, options=OPTIONS, rms=samples.RMS)
    assert '"ch":"kept"' in html and '"ch":"in"' in html and "调入 moved in (2)" in html and "调出 moved out (1)" in html
    assert '"t":"甲村"' in html and "R2 李*" in html  # titled by place; RMs labelled with their names


def test_apportioned_households_are_shown_rounded_with_approx():
    """Issue 15: popups read '户数 households 3.25'. Stored as apportioned, shown whole and marked ≈."""
    cells = samples.cells()
    cells["households"] = [3.25, 50.0, 0.0, 1234.5]
    cells["population"] = [9.75, 150.0, 0.0, 3703.5]
    cells["apportioned"] = [True, False, False, True]
    html = dashboard_page(cells, options=OPTIONS, rms=samples.RMS, cell_customers=samples.CELL_CUSTOMERS)
    assert '"households":"≈3"' in html and '"population":"≈10"' in html
    assert '"households":"50"' in html and '"households":"≈1,234"' in html
    assert "3.25" not in html and "1234.5" not in html and "9.75" not in html
    assert r"户数 households<\/th><td>≈1,288<" in html  # the summary: apportioned cells among them
