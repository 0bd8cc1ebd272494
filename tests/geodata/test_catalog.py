"""The collections catalog: every entry reads through its scope rule in SQL, paged and ordered by key."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from geodata import catalog
from geodata.errors import BadInput, NotFound
from geodata.reads import collections as reads
from geodata.scope import Scope

ADMIN = Scope(role="admin", legal_entity_id=None, username="root")


@pytest.fixture(scope="module")
def seeded(engine, square_grid):
    """The square county (legal entity 1) plus a township and a service point, and a second legal entity with nothing."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO township (code, name, county_code, population) "
                          "VALUES ('640121100', '望远镇', '640121', 5000) ON CONFLICT DO NOTHING"))
        conn.execute(text("INSERT INTO service_point (code, name, legal_entity_id, outlet_code, county_code, geom) "
                          "VALUES ('SP1', '服务点', 1, 'O1', '640121', ST_SetSRID(ST_MakePoint(106.1, 38.1), 4326))"
                          " ON CONFLICT DO NOTHING"))
        conn.execute(text("INSERT INTO legal_entity (code, name) VALUES ('LE2', '另一家') ON CONFLICT DO NOTHING"))
        other = conn.execute(text("SELECT id FROM legal_entity WHERE code = 'LE2'")).scalar_one()
    return {"other": other}


@pytest.mark.parametrize("coll", list(catalog.COLLECTIONS.values()), ids=lambda c: c.id)
def test_every_entry_lists_and_gets_its_items(engine, seeded, coll):
    with engine.connect() as conn:
        rows, total = reads.list_items(conn, coll, scope=ADMIN, limit=1000, offset=0)
        assert total == len(rows) > 0, coll.id
        keys = [r[coll.key.name] for r in rows]
        assert keys == sorted(keys)
        assert set(rows[0]) == {f.name for f in coll.fields} | ({"geometry"} if coll.geometry else set())
        one = reads.get_item(conn, coll, scope=ADMIN, key=keys[-1])
        assert one == rows[-1]
        page, again = reads.list_items(conn, coll, scope=ADMIN, limit=1, offset=total - 1, geometry=False)
        assert again == total and [r[coll.key.name] for r in page] == keys[-1:] and "geometry" not in page[0]


@pytest.mark.parametrize("coll", list(catalog.COLLECTIONS.values()), ids=lambda c: c.id)
def test_another_legal_entity_sees_nothing_of_the_entry(engine, seeded, coll):
    planner_b = Scope(role="planner", legal_entity_id=seeded["other"], username="pb")
    with engine.connect() as conn:
        rows, total = reads.list_items(conn, coll, scope=planner_b, limit=1000, offset=0)
        mine = [r for r in rows if coll.id == "legal-entities" and r["id"] == seeded["other"]]
        assert rows == mine and total == len(mine), coll.id
        key = reads.list_items(conn, coll, scope=ADMIN, limit=1, offset=0)[0][0][coll.key.name]
        if not mine:
            with pytest.raises(NotFound, match=coll.label):
                reads.get_item(conn, coll, scope=planner_b, key=key)


def test_filters_are_bound_and_named(engine, seeded):
    rm_r1 = Scope(role="rm", legal_entity_id=1, rm_code="R1", username="r1")
    with engine.connect() as conn:
        rows, _ = reads.list_items(conn, catalog.RMS, scope=rm_r1, limit=10, offset=0)
        assert [r["code"] for r in rows] == ["R1"]
        rows, total = reads.list_items(conn, catalog.RMS, scope=ADMIN, limit=10, offset=0,
                                       filters={"outlet_code": "O2"})
        assert [r["code"] for r in rows] == ["R3"] and total == 1
        rows, total = reads.list_items(conn, catalog.VILLAGES, scope=ADMIN, limit=10, offset=0,
                                       filters={"county_code": "640121' OR '1'='1"})
        assert rows == [] and total == 0
        with pytest.raises(BadInput, match="cannot be filtered by segment"):
            reads.list_items(conn, catalog.RMS, scope=ADMIN, limit=10, offset=0, filters={"segment": "x"})


def test_an_entry_must_name_a_scope_rule_and_its_key():
    with pytest.raises(ValueError, match="no scope rule"):
        catalog.Collection(id="x", model="X", label="x", description="", table="t", alias="t",
                           key=catalog.Param("id"), scope="nothing", fields=(catalog.Field("id", "t.id"),))
    with pytest.raises(ValueError, match="masks unknown fields"):
        catalog.Collection(id="x", model="X", label="x", description="", table="t", alias="t",
                           key=catalog.Param("id"), scope="rm", fields=(catalog.Field("id", "t.id"),),
                           masked={"phone": "phone"})


def test_item_filters_are_built_in_one_place_for_both_faces():
    """``/api/v1`` lists and OGC features share these conditions: bbox only where there is a geometry,
    a None value is not used, an unknown name is refused, the caller's extra conditions come last."""
    box = (106.0, 38.0, 106.2, 38.2)
    extra = [("v.code LIKE :p", {"p": "6401%"})]
    conds = reads.item_filters(catalog.VILLAGES, bbox=box, filters={"county_code": "640121"}, extra=extra)
    assert [c[1] for c in conds] == [{"bx0": 106.0, "by0": 38.0, "bx1": 106.2, "by1": 38.2},
                                     {"county_code": "640121"}, {"p": "6401%"}]
    assert conds[0][0].startswith("ST_Intersects(v.geom") and conds[1][0] == "v.county_code = :county_code"
    assert reads.item_filters(catalog.VILLAGES, filters={"county_code": None, "nonsense": None}) == []
    no_geometry = next(c for c in catalog.COLLECTIONS.values() if c.geometry is None)
    assert reads.item_filters(no_geometry, bbox=box) == []
    with pytest.raises(BadInput, match="cannot be filtered by nonsense"):
        reads.item_filters(catalog.VILLAGES, filters={"nonsense": 1})
