"""OGC API - Features and Tiles under /ogc: the conformance classes it claims, paging, bbox, scope, masking.

The checks are those the OGC test suite (ETS ogcapi-features-1.0) makes for Core and GeoJSON:
landing page links, conformance, collections with extents and item links, items as GeoJSON with
numberMatched/numberReturned/timeStamp and next/prev links, limit, bbox, unknown parameters (400),
one item, 404s. Scope: exactly what /api/v1 lets each user see.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api.ogc import CONFORMANCE, MAX_LIMIT
from tests.api.test_scoping import MARKERS

CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
GEOJSON = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"


def _rels(doc) -> dict[str, dict]:
    return {lk["rel"]: lk for lk in doc["links"]}


def _all_items(client, headers, url) -> list[dict]:
    """Follow next links to the end."""
    out = []
    while url:
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["features"]
        url = _rels(page).get("next", {}).get("href")
    return out


def test_landing_page_and_conformance(client, auth):
    r = client.get("/ogc", headers=auth("planner_a"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    rels = _rels(r.json())
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    for rel in ("service-desc", "conformance", "data"):
        assert client.get(rels[rel]["href"], headers=auth("planner_a")).status_code == 200, rel
    conf = client.get("/ogc/conformance", headers=auth("planner_a")).json()["conformsTo"]
    assert CORE in conf and GEOJSON in conf and set(conf) == set(CONFORMANCE)


def test_refused_without_sign_in(client):
    for url in ("/ogc", "/ogc/collections", "/ogc/collections/customers/items"):
        assert client.get(url).status_code == 401


def test_collections_list_what_the_user_may_see(client, auth, data):
    ids = {c["id"] for c in client.get("/ogc/collections", headers=auth("planner_a")).json()["collections"]}
    assert {"counties", "villages", "outlets", "service-points", "customers"} <= ids
    assert f"cells-{data['grid_a']}" in ids and f"territories-{data['grid_a']}" in ids
    assert f"cells-{data['grid_b']}" not in ids
    for c in client.get("/ogc/collections", headers=auth("planner_a")).json()["collections"]:
        assert c["extent"]["spatial"]["bbox"][0][0] < c["extent"]["spatial"]["bbox"][0][2]
        items = _rels(c)["items"]
        assert items["type"] == "application/geo+json"
    assert client.get(f"/ogc/collections/cells-{data['grid_b']}", headers=auth("planner_a")).status_code == 404
    assert client.get("/ogc/collections/nothing", headers=auth("planner_a")).status_code == 404


def test_items_are_geojson_with_counts_and_links(client, auth, data):
    r = client.get(f"/ogc/collections/cells-{data['grid_a']}/items", headers=auth("planner_a"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["numberMatched"] == 2 and fc["numberReturned"] == 2
    assert fc["timeStamp"].endswith("Z")
    assert {f["id"] for f in fc["features"]} == {"a1", "a2"}
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in fc["features"])
    props = {f["id"]: f["properties"] for f in fc["features"]}
    assert props["a1"]["owner_rm"] == "RA1" and props["a2"]["owner_rm"] == "RA2"
    assert "self" in _rels(fc) and "collection" in _rels(fc) and "next" not in _rels(fc)


def test_paging_with_limit_returns_each_item_once(client, auth, data):
    url = "/ogc/collections/customers/items?limit=1"
    first = client.get(url, headers=auth("admin")).json()
    assert first["numberReturned"] == 1 and "next" in _rels(first) and "prev" not in _rels(first)
    feats = _all_items(client, auth("admin"), url)
    ids = [f["id"] for f in feats]
    assert len(ids) == len(set(ids)) == first["numberMatched"] >= 4
    second = client.get(_rels(first)["next"]["href"], headers=auth("admin")).json()
    assert "prev" in _rels(second)
    big = client.get(f"/ogc/collections/customers/items?limit={MAX_LIMIT * 10}", headers=auth("admin"))
    assert big.status_code == 200 and big.json()["numberReturned"] == first["numberMatched"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "offset=-1", "bbox=1,2,3", "bbox=a,b,c,d",
                                   "datetime=yesterday", "bbox-crs=EPSG:3857&bbox=1,2,3,4", "nonsense=1",
                                   "properties=no_such_field", "f=html"])
def test_bad_parameters_are_400_naming_them(client, auth, query):
    r = client.get(f"/ogc/collections/customers/items?{query}", headers=auth("admin"))
    assert r.status_code == 400, (query, r.status_code, r.text)
    assert r.json()["error"] == "InvalidParameter"
    name = query.split("=")[0]
    assert name in r.json()["detail"] or name == "properties" and "no_such_field" in r.json()["detail"]


def test_bbox_returns_what_postgis_returns(client, auth, data, engine):
    box = (106.0, 38.3, 106.4, 38.6)
    with engine.connect() as c:
        want = {r[0] for r in c.execute(text(
            "SELECT customer_id FROM customer WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"),
            dict(zip("abcd", box, strict=True)))}
    got = _all_items(client, auth("admin"), "/ogc/collections/customers/items?bbox=" + ",".join(map(str, box)))
    assert {f["id"] for f in got} == want
    assert want and len(want) < len(_all_items(client, auth("admin"), "/ogc/collections/customers/items"))


def test_rm_reads_only_their_cells_and_customers(client, auth, data):
    cells = _all_items(client, auth("rm_a1"), f"/ogc/collections/cells-{data['grid_a']}/items")
    assert [f["id"] for f in cells] == ["a1"]
    terr = _all_items(client, auth("rm_a1"), f"/ogc/collections/territories-{data['grid_a']}/items")
    assert [f["id"] for f in terr] == ["RA1"]
    custs = _all_items(client, auth("rm_a1"), "/ogc/collections/customers/items")
    assert [f["id"] for f in custs] == ["CA1"]
    assert client.get("/ogc/collections/customers/items/CA2", headers=auth("rm_a1")).status_code == 404
    assert client.get("/ogc/collections/customers/items/CA1", headers=auth("rm_a1")).status_code == 200
    assert client.get(f"/ogc/collections/cells-{data['grid_a']}/items/a2",
                      headers=auth("rm_a1")).status_code == 404


def test_customers_masked_for_analysts_as_in_the_api(client, auth, data):
    api = client.get("/api/v1/customers/CA1", headers=auth("analyst_a")).json()
    ogc = client.get("/ogc/collections/customers/items/CA1", headers=auth("analyst_a")).json()
    for key in ("name", "phone", "id_number"):
        assert ogc["properties"][key] == api[key]
    full = client.get("/ogc/collections/customers/items/CA1", headers=auth("rm_a1")).json()
    assert full["properties"]["name"] != ogc["properties"]["name"]


def test_properties_selection(client, auth, data):
    fc = client.get("/ogc/collections/customers/items?properties=segment", headers=auth("admin")).json()
    assert all(set(f["properties"]) == {"customer_id", "segment"} for f in fc["features"])


def test_tiles_are_the_same_as_the_tile_route(client, auth, data):
    h = auth("planner_a")
    ts = client.get(f"/ogc/collections/cells-{data['grid_a']}/tiles", headers=h)
    assert ts.status_code == 200
    tmpl = next(lk for lk in ts.json()["tilesets"][0]["links"] if lk["rel"] == "item")["href"]
    url = tmpl.replace("{tileMatrix}", "10").replace("{tileRow}", "393").replace("{tileCol}", "814")
    ogc = client.get(url, headers=h)
    old = client.get(f"/tiles/cells/10/814/393.pbf?grid_id={data['grid_a']}", headers=h)
    assert old.status_code == 200 and ogc.status_code == 200 and ogc.content == old.content
    assert ogc.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert client.get("/ogc/tileMatrixSets/WebMercatorQuad", headers=h).json()["tileMatrices"][10]["matrixWidth"] == 1024
    assert client.get(f"/ogc/collections/cells-{data['grid_b']}/tiles", headers=h).status_code == 404
    assert client.get("/ogc/collections/customers/tiles", headers=h).status_code == 404


@pytest.mark.parametrize("who", sorted(MARKERS))
def test_every_collection_as_each_user_leaks_nothing(client, auth, data, who):
    """The scoping sweep for /ogc: every collection the user is offered, every item of it, every tileset,
    as each scoped user: none of the other legal entity's, RM's or outlet's markers."""
    h = auth(who)
    colls = client.get("/ogc/collections", headers=h).json()["collections"]
    assert len(colls) >= 8
    seen = 0
    for c in colls:
        for feat in _all_items(client, h, f"/ogc/collections/{c['id']}/items?limit=2"):
            leaked = [m for m in MARKERS[who] if m in str(feat)]
            assert not leaked, (who, c["id"], leaked)
            seen += 1
            one = client.get(f"/ogc/collections/{c['id']}/items/{feat['id']}", headers=h)
            assert one.status_code == 200 and not [m for m in MARKERS[who] if m in one.text]
    assert seen >= 5


def test_datetime_filters_customers_by_opening_date(client, auth, data, engine):
    with engine.begin() as c:
        c.execute(text("UPDATE customer SET opened_on = '2020-06-15' WHERE customer_id = 'CA1'"))
        c.execute(text("UPDATE customer SET opened_on = '2023-01-02' WHERE customer_id = 'CA2'"))
    h = auth("admin")

    def ids(q: str) -> set[str]:
        r = client.get(f"/ogc/collections/customers/items?datetime={q}", headers=h)
        assert r.status_code == 200, (q, r.text)
        return {f["id"] for f in r.json()["features"]}

    assert ids("2020-06-15") == {"CA1"}
    assert ids("2020-01-01/2020-12-31") == {"CA1"}
    assert ids("2021-01-01/..") == {"CA2"}
    assert ids("../2024-01-01T00:00:00Z") == {"CA1", "CA2"}
    assert client.get("/ogc/collections/customers/items?datetime=2024-01-01/2020-01-01",
                      headers=h).status_code == 400
