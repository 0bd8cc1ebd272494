"""Paging through 100,000 customers of a county through /ogc returns each exactly once (slow: its own
database with 100,000 extra customers, so the other /ogc tests keep their small fixture)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.slow

N = 100_000


@pytest.fixture(scope="module")
def many(engine, data):
    with engine.begin() as c:
        c.execute(text("""
            INSERT INTO customer (customer_id, name, legal_entity_id, county_code, segment, geom)
            SELECT 'M' || lpad(i::text, 6, '0'), '客户' || i, :le, '640104', 'retail',
                   ST_SetSRID(ST_MakePoint(106.25 + (i % 317) * 0.001, 38.30 + (i % 293) * 0.001), 4326)
              FROM generate_series(1, :n) i"""), {"le": data["LEA"], "n": N})
        c.execute(text("ANALYZE customer"))
        want = {r[0] for r in c.execute(text("SELECT customer_id FROM customer WHERE county_code = '640104'"))}
    return want


def test_paging_through_100000_customers_returns_each_once(client, auth, many):
    url = "/ogc/collections/customers/items?county_code=640104&limit=10000&properties=county_code"
    seen: list[str] = []
    pages = 0
    while url:
        r = client.get(url, headers=auth("admin"))
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["numberMatched"] == len(many)
        seen += [f["id"] for f in page["features"]]
        url = next((lk["href"] for lk in page["links"] if lk["rel"] == "next"), None)
        pages += 1
    assert len(seen) == len(set(seen)) == len(many) and set(seen) == many
    assert pages == -(-len(many) // 10000)
