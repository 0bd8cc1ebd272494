"""The two reads profiled under load (issue 13 §4): a page of cells and an RM's customer list.

Before: a page of cells ran about a dozen statements (the whole gap answer with its staleness checks and
JSON components, for two numbers per cell; a second grid lookup; every cell of the grid the RM may see),
and an RM's customer list evaluated its scope join (every customer placed in every grid version) twice,
once to count and once for the page. Uses the seeded data of ``conftest.py``.
"""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event


@contextmanager
def statements(app):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    event.listen(app.state.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(app.state.engine, "before_cursor_execute", record)


def test_a_page_of_cells_is_one_statement_after_the_count(client, app, auth, data):
    url = f"/api/v1/grids/{data['grid_a']}/cells"
    for who in ("planner_a", "rm_a1", "bm_a"):
        with statements(app) as seen:
            r = client.get(url, headers=auth(who))
        assert r.status_code == 200, r.text
        on_cells = [s for s in seen if " FROM cell c" in s]
        assert len(on_cells) == 2, on_cells  # the count and the page
        assert not any("gap_run r" not in s and "FROM gap_score" in s for s in seen), seen
        assert len(seen) <= 6, seen  # user, grid scope, grid, count, page (and nothing per cell)
    props = {f["id"]: f["properties"] for f in client.get(url, headers=auth("rm_a1")).json()["features"]}
    assert props["a1"]["owner_rm"] == "RA1" and props["a1"]["customers"] == 1 and props["a1"]["locked"] is False
    assert props["a2"]["owner_rm"] is None and props["a2"]["customers"] is None and props["a2"]["locked"] is True
    assert props["a2"]["gap_class"] == "blank" and isinstance(props["a2"]["score"], float)


def test_an_rms_customer_list_reads_its_scope_once_and_counts_right(client, app, auth):
    with statements(app) as seen:
        body = client.get("/api/v1/customers", headers=auth("rm_a1")).json()
    assert [c["customer_id"] for c in body["items"]] == ["CA1"] and body["total"] == 1, body
    assert len([s for s in seen if "customer_cell" in s]) == 1, seen
    # A page past the end still says how many there are; an empty one says 0.
    past = client.get("/api/v1/customers", params={"offset": 5}, headers=auth("rm_a1")).json()
    assert past["items"] == [] and past["total"] == 1 and past["next_offset"] is None
    none = client.get("/api/v1/customers", params={"segment": "nobody"}, headers=auth("bm_a")).json()
    assert none == {"items": [], "total": 0, "next_offset": None}
    # Planners keep the count-then-page statements (their list is every customer: a window would sort all).
    with statements(app) as seen:
        body = client.get("/api/v1/customers", params={"limit": 1}, headers=auth("planner_a")).json()
    assert body["total"] >= 3 and len(body["items"]) == 1 and body["next_offset"] == 1
    assert not any("OVER ()" in s for s in seen)
