"""Review of geodata.gaps on the square county: edge cases found in review (each test failed before its fix)."""

import pandas as pd
import pytest
from sqlalchemy import text

from geodata import gaps
from geodata.errors import BadInput


def test_cells_of_an_rm_who_left_have_no_owner(engine, square_grid):
    # R1 left the bank (marked inactive) and nobody has taken over yet: nobody works their cells,
    # which is what a blank area is; R2's cells stay owned.
    mine = {"640121100001": "R1", "640121100002": "R1", "640121100003": "R2"}
    with engine.connect() as conn:  # rolled back: the module's other tests see none of this
        conn.execute(text("UPDATE territory SET valid_to = now() WHERE grid_id = :g AND valid_to IS NULL"),
                     {"g": square_grid})
        for cell_id, rm in mine.items():
            conn.execute(text("INSERT INTO territory (grid_id, cell_id, rm_code, reason, changed_by) "
                              "VALUES (:g, :c, :r, 'test', 't')"), {"g": square_grid, "c": cell_id, "r": rm})
        conn.execute(text("UPDATE rm SET active = false WHERE code = 'R1'"))
        m = gaps.cell_measures(conn, grid_id=square_grid, as_of="2026-01-01").set_index("cell_id")
        res = gaps.score_grid(conn, grid_id=square_grid, trigger="test", as_of="2026-01-01")
        df = gaps.latest_scores(conn, grid_id=square_grid, cell_ids=list(mine)).set_index("cell_id")
        conn.rollback()
    assert m["owner_rm"].isna()[["640121100001", "640121100002"]].all()
    assert m.at["640121100003", "owner_rm"] == "R2"
    assert res["classes"]["blank"] == 16  # never visited anyway; the owner component tells them apart
    comp = df["components"].map(lambda c: c["comp_no_owner"])
    assert comp.to_dict() == {"640121100001": 1.0, "640121100002": 1.0, "640121100003": 0.0}
    assert df.at["640121100001", "reason_en"].startswith("potential (110 households) but no RM owns it")


def test_candidate_sites_outside_the_county_are_never_suggested(engine, square_grid):
    # The square county spans 106.0-106.4 E; 'across' lies 0.02 degrees west of its border, within
    # reach of its western villages, so it used to be the first suggestion. A county bank cannot
    # open a service point in the neighbouring county.
    cand = pd.DataFrame({"lon": [105.98, 106.05, 107.5], "lat": [38.15, 38.25, 38.2],
                         "name": ["across", "inside", "far"]})
    with engine.connect() as conn:
        res = gaps.suggest_sites(conn, grid_id=square_grid, count=2, radius_km=8, candidates=cand)
    assert [s["candidate"] for s in res["suggestions"]] == ["inside"]
    assert res["candidates_outside_county"] == ["across", "far"]
    assert res["households_covered_after"] > res["households_covered_before"]
    only_outside = cand.iloc[[0, 2]]
    with engine.connect() as conn, pytest.raises(BadInput, match="candidates: none of the 2 .* inside the county"):
        gaps.suggest_sites(conn, grid_id=square_grid, count=2, radius_km=8, candidates=only_outside)
    with engine.connect() as conn, pytest.raises(BadInput, match=r"row 2 \(b\) has no valid lon/lat"):
        gaps.suggest_sites(conn, grid_id=square_grid, count=1, radius_km=8,
                           candidates=pd.DataFrame({"lon": [106.1, float("nan")], "lat": [38.1, 38.1], "name": ["a", "b"]}))


def _api(db_url, engine, username, role):
    """A TestClient on this module's database and the headers of a user of legal entity 1 (LE1)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.auth import create_token
    from api.settings import AuthSettings, DatabaseSettings, Settings
    from geodata import users

    settings = Settings(db=DatabaseSettings(url=db_url), auth=AuthSettings(secret_key="test"))
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM app_user WHERE username = :u"), {"u": username}).first() is None:
            users.create_user(conn, username=username, password_hash="x", role=role, legal_entity_id=1)
    token = create_token(settings.auth, username=username, role=role)
    return TestClient(create_app(settings)), {"Authorization": f"Bearer {token}"}


def test_explanation_gives_the_weight_of_every_component(engine, db_url, square_grid):
    # Scored with custom weights: a reader of one cell's explanation must see what each component
    # could add (its weight in points), also for components that add nothing to this cell.
    with engine.begin() as conn:
        run = gaps.score_grid(conn, grid_id=square_grid, trigger="test", as_of="2026-01-01",
                              config_text="[weights]\nno_owner = 40\nopen_leads = 0")
    client, headers = _api(db_url, engine, "planner_le1", "planner")
    with client:
        why = client.get(f"/api/v1/grids/{square_grid}/gaps/cells/640121100001", headers=headers).json()
    assert why["gap_run"]["id"] == run["gap_run_id"]
    weights = {c["component"]: c["weight"] for c in why["contributions"]}
    total = 25 + 20 + 40 + 10 + 5 + 5 + 10 + 0
    assert weights == pytest.approx({"potential": 2500 / total, "low_penetration": 2000 / total,
                                     "no_owner": 4000 / total, "no_recent_visit": 1000 / total,
                                     "unvisited_customers": 500 / total, "far_outlet": 500 / total,
                                     "far_service_point": 1000 / total, "open_leads": 0.0})
    for c in why["contributions"]:
        assert c["contribution"] == pytest.approx(c["weight"] * c["value"], abs=1e-5)
    assert why["gap_run"]["config"]["weights"]["no_owner"] == 40.0


def test_a_grid_without_cells_is_bad_input_not_a_crash(engine, square_grid):
    with engine.connect() as conn:  # rolled back
        gid = conn.execute(text("INSERT INTO grid (county_code, kind, assigned_at) VALUES ('640121', 'village', now()) "
                                "RETURNING id")).scalar_one()
        for call in (lambda: gaps.score_grid(conn, grid_id=gid),
                     lambda: gaps.suggest_sites(conn, grid_id=gid, count=2, radius_km=3)):
            with pytest.raises(BadInput, match=f"grid {gid} has no cells"):
                call()
        conn.rollback()


def test_bad_score_config_is_a_422_naming_the_field(engine, db_url, square_grid):
    # it used to be accepted (202); the mistake only showed as a failed job once polled
    client, headers = _api(db_url, engine, "planner_le1", "planner")
    url = f"/api/v1/grids/{square_grid}/gaps/score"
    with client:
        for toml, key in (("[weights]\nno_owner = -1", "weights.no_owner"), ("[weights", "not valid TOML")):
            r = client.post(url, json={"config_toml": toml}, headers=headers)
            assert r.status_code == 422, r.text
            assert r.json()["detail"].startswith("config_toml: ") and key in r.json()["detail"]
