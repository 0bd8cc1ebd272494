"""Security review: data that looks like HTML on served pages, and other findings of the review."""

from __future__ import annotations

from sqlalchemy import text

EVIL = '<img src=x onerror="alert(1)">'


def test_maps_index_escapes_county_names(client, auth, engine, data):
    # County names come from the imported boundary file: the index page lists them in links.
    with engine.begin() as conn:
        old = conn.execute(text("SELECT name FROM county WHERE adcode = '640104'")).scalar_one()
        conn.execute(text("UPDATE county SET name = :n WHERE adcode = '640104'"), {"n": EVIL})
    try:
        for user in ("planner_a", "rm_a1"):
            page = client.get("/maps/", headers=auth(user))
            assert page.status_code == 200
            assert EVIL not in page.text and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page.text
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE county SET name = :n WHERE adcode = '640104'"), {"n": old})
