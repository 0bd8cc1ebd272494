"""The visit store (geodata.visits) on the API fixtures' two legal entities: plan, check-in, check-out, import merge."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import text

from geodata.errors import BadInput, Forbidden, NotFound
from geodata.reads import visits as reads
from geodata.scope import Scope
from geodata.visits import checkins, plans

UTC = dt.UTC


def _rm(data, code="RA1"):
    return Scope(role="rm", legal_entity_id=data["LEA"], rm_code=code, username="rm_a1")


def test_plan_for_an_rm_stores_stops_and_route(engine, data):
    with engine.begin() as conn:
        pid = plans.plan_for(conn, scope=_rm(data), rm_code="RA1", plan_date=dt.date(2026, 12, 7), user="rm_a1")
        p = reads.plan(conn, scope=_rm(data), plan_id=pid)
    assert p["rm_code"] == "RA1" and p["start"]["source"] == "outlet"
    ids = [s["customer_id"] for s in p["stops"]] + [d["customer_id"] for d in p["dropped"]]
    assert set(ids) <= {"CA1"}  # RA1's only customer; never RA2's CA2
    assert p["route"]["type"] == "LineString"


def test_plan_of_another_rm_is_not_found(engine, data):
    with engine.begin() as conn, pytest.raises(NotFound):
        plans.plan_for(conn, scope=_rm(data), rm_code="RA2", plan_date=dt.date(2026, 12, 7), user="rm_a1")


def test_checkin_is_idempotent_and_flags_far(engine, data):
    key = str(uuid.uuid4())
    at = dt.datetime.now(UTC) - dt.timedelta(minutes=30)
    kw = dict(scope=_rm(data), rm_code="RA1", key=key, customer_id="CA1", kind="面访", at=at,
              lon=106.28, lat=38.47, accuracy_m=20.0)
    with engine.begin() as conn:
        row, created = checkins.check_in(conn, **kw)
    assert created and row["distance_m"] < 1 and row["flag_far"] is False and row["place_source"] == "customer"
    with engine.begin() as conn:
        again, created2 = checkins.check_in(conn, **kw)
    assert not created2 and again == row
    with engine.begin() as conn:
        n = conn.execute(text("SELECT count(*) FROM visit WHERE idempotency_key = :k"), {"k": key}).scalar()
        far, _ = checkins.check_in(conn, **{**kw, "key": str(uuid.uuid4()), "lon": 106.30,
                                            "at": at - dt.timedelta(hours=3)})
    assert n == 1
    assert far["distance_m"] > 1500 and far["flag_far"] is True
    with engine.begin() as conn:
        out, c = checkins.check_out(conn, scope=_rm(data), rm_code="RA1", visit_id=row["visit_id"],
                                    key=str(uuid.uuid4()), at=at + dt.timedelta(minutes=2), note="ok", outcome="签约")
    assert c and out["flag_short"] is True
    with engine.begin() as conn, pytest.raises(Forbidden):
        checkins.check_out(conn, scope=None, rm_code="RA2", visit_id=row["visit_id"], key=str(uuid.uuid4()),
                           at=at, note=None, outcome=None)


def test_checkin_refuses_others_customers_and_bad_times(engine, data):
    base = dict(scope=_rm(data), rm_code="RA1", kind="面访", lon=106.1, lat=38.5, accuracy_m=5.0)
    with engine.begin() as conn, pytest.raises(NotFound):
        checkins.check_in(conn, key=str(uuid.uuid4()), customer_id="CA2", at=dt.datetime.now(UTC), **base)
    with engine.begin() as conn, pytest.raises(BadInput):
        checkins.check_in(conn, key=str(uuid.uuid4()), customer_id="CA1",
                          at=dt.datetime.now(UTC) + dt.timedelta(hours=2), **base)


def test_a_visits_import_folds_into_a_checkin(engine, data, tmp_path):
    """The import path (its after-hook on the import's cursor): a row 15 minutes from a check-in is that visit."""
    from geodata.importers import run_import

    at = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(days=3)
    with engine.begin() as conn:
        row, _ = checkins.check_in(conn, scope=_rm(data), rm_code="RA1", key=str(uuid.uuid4()), customer_id="CA1",
                                   kind="电访", at=at, lon=106.28, lat=38.47, accuracy_m=5.0)
    f = tmp_path / "visits.csv"
    f.write_text("customer_id,rm_code,visited_at,channel,outcome\n"
                 f"CA1,RA1,{(at + dt.timedelta(minutes=15)).strftime('%Y-%m-%d %H:%M:%S')}+00:00,电话,成交\n")
    run_import(engine, kind="visits", path=f, user="test", rejects_dir=tmp_path)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT visit_id, source, channel, outcome FROM visit WHERE customer_id = 'CA1'"
                                 " AND visited_at BETWEEN :a AND :b"),
                            {"a": at - dt.timedelta(hours=1), "b": at + dt.timedelta(hours=1)}).all()
    assert [tuple(r) for r in rows] == [(row["visit_id"], "checkin", "电访", "成交")]
