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


def test_cell_links_encode_each_customer_id(client, auth, engine, data):
    # docs/services.md: each id URL-encoded (quote(id, safe="")), then joined with commas. A comma inside
    # one id must not split it into two ids (here: a customer of the other legal entity, CB1).
    ga = data["grid_a"]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customer (customer_id, name, legal_entity_id, county_code) VALUES"
                          " ('CA9,CB1', '赵六', :le, '640104')"), {"le": data["LEA"]})
        conn.execute(text("INSERT INTO customer_cell VALUES (:g, 'CA9,CB1', 'a1', 'point')"), {"g": ga})
    try:
        links = client.get(f"/api/v1/grids/{ga}/cells/a1", headers=auth("planner_a")).json()["properties"]["links"]
        assert links["tags"] == "https://tags.example/customers?ids=CA1,CA9%2CCB1"
        assert links["leads"] == "https://leads.example/leads?customers=CA1,CA9%2CCB1"
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM customer_cell WHERE customer_id = 'CA9,CB1'"))
            conn.execute(text("DELETE FROM customer WHERE customer_id = 'CA9,CB1'"))


def test_branch_dashboard_with_an_outlet_without_rms(client, engine, data, password_hash, settings):
    # A manager of OA1 (RA1 owns a1) and of a new outlet OA3 with no RM yet; then RA1 leaves
    # (inactive) but still owns a1 until it is handed over.
    from api.auth import create_token
    from geodata import users

    with engine.begin() as conn:
        conn.execute(text("INSERT INTO outlet (code, name, legal_entity_id, county_code, geom) VALUES ('OA3', 'OA3',"
                          " :le, '640104', ST_SetSRID(ST_MakePoint(106.3, 38.5), 4326))"), {"le": data["LEA"]})
        users.create_user(conn, username="bm_two", password_hash=password_hash, role="branch_manager",
                          legal_entity_id=data["LEA"], outlet_codes=["OA1", "OA3"])
    h = {"Authorization": "Bearer " + create_token(settings.auth, username="bm_two", role="branch_manager")}
    url = f"/maps/dashboard?grid_id={data['grid_a']}&measure=customers"
    try:
        page = client.get(url, headers=h)
        assert page.status_code == 200 and '"a1"' in page.text and '"a2"' not in page.text
        with engine.begin() as conn:
            conn.execute(text("UPDATE rm SET active = false WHERE code = 'RA1'"))
        page = client.get(url, headers=h)
        assert page.status_code == 200 and '"a1"' in page.text and '"a2"' not in page.text
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE rm SET active = true WHERE code = 'RA1'"))


def test_sign_in_and_out_refused_from_another_sites_page(client, password):
    # SameSite=Strict stops the cookie from being sent cross-site, not from being set: a page elsewhere
    # posting its own credentials would sign the visitor in as the attacker (login CSRF).
    form = {"username": "planner_a", "password": password, "next": "/maps/"}
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://testserver.evil.example"}):
        r = client.post("/api/v1/auth/session", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
        out = client.post("/api/v1/auth/logout", headers=headers)
        assert out.status_code == 403 and "set-cookie" not in out.headers, headers
    # The login form on this site (a browser sends its own origin), and scripts sending none, still work.
    for headers in ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, {}):
        r = client.post("/api/v1/auth/session", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 303 and "gridmkt_token=" in r.headers["set-cookie"], headers
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    client.cookies.clear()


def test_signed_in_pages_cannot_be_framed_by_another_site(client, auth, data):
    for path in ("/maps/", f"/maps/dashboard?grid_id={data['grid_a']}"):
        page = client.get(path, headers=auth("planner_a"))
        assert page.status_code == 200, path
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
