"""Check-in and check-out from the phone: idempotent, flagged, and followed at once by the cell's measures.

- Each action carries the phone's idempotency key (a UUID). The first request
  with a key records the visit; any later one with the same key answers the
  stored row (``created`` False), whatever happened in between. Requests with
  one key are serialised by a transaction-level advisory lock on the key.
- ``distance_m`` is the geodesic distance (geography) from the reported
  position to the stop's place (the plan stop's, else the customer's point,
  else their village's); ``flag_far`` when ``distance_m - accuracy_m`` exceeds
  ``far_m``. ``flag_short`` when check-out follows check-in by less than
  ``short_min`` minutes. Flags are stored and reported, never dropped.
- Imported visits and check-ins are the same data: a check-in within
  ``dedup_min`` minutes of an imported visit of the same customer and RM
  completes that row instead of adding one (and a visits import merges its rows
  into matching check-ins, :func:`merge_imported`).
- The customer's cells (newest assigned grid of each kind of their county) get
  ``visits_90d``, ``customers_visited_90d`` and ``last_visit_at`` recomputed in
  the same transaction; the grid's gap scores read as stale until rescored
  (``geodata.gaps.staleness`` counts the check-ins since the run).
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from geodata.errors import BadInput, Busy, Conflict, Forbidden, NotFound
from geodata.scope import Scope, where
from geodata.visits.common import visit_rm

KEY_LOCK_CLASS = 16016  # advisory lock namespace of visit idempotency keys
LOCK_TIMEOUT = "5s"
MAX_CLOCK_AHEAD = dt.timedelta(minutes=10)  # a phone's clock may run this far ahead of the server's
MAX_AGE = dt.timedelta(days=30)  # oldest check-in a phone may still send (offline queue)
# An imported visit this close in time to a check-in of the same customer and RM is the same visit.
DEDUP_MIN = 60.0

_ROW = """v.visit_id, v.customer_id, v.rm_code, v.kind, v.plan_id, v.checkin_at, v.received_at, v.visited_at,
ST_X(v.checkin_geom) AS lon, ST_Y(v.checkin_geom) AS lat, v.accuracy_m, v.distance_m, v.place_source,
v.flag_far, v.flag_short, v.checkout_at, v.note, v.outcome, v.idempotency_key, v.checkout_key, v.source"""


def _lock(conn: Connection, key: str) -> dt.datetime:
    """Hold the key for this transaction, or answer Busy at once: never wait for it.

    A request waiting on a lock holds a connection and a worker thread; the request holding the lock
    needs a worker thread to commit. Waiting could starve the server (hundreds of phones retrying at
    once), so a second request with a key in progress is told to retry (503, Retry-After), and any
    other lock (a cell's figures) is waited for at most ``LOCK_TIMEOUT``.
    """
    got, _, now = conn.execute(text(
        "SELECT pg_try_advisory_xact_lock(:c, hashtext(:k)), set_config('lock_timeout', :t, true), now()"),
        {"c": KEY_LOCK_CLASS, "k": key, "t": LOCK_TIMEOUT}).one()
    if not got:
        raise Busy(f"a request with idempotency key {key} is being recorded right now: retry in a moment")
    return now  # the transaction's time, as the server's clock says


@contextmanager
def _bounded_waits():
    """A lock not granted within LOCK_TIMEOUT is Busy (retry), not a database failure."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) == "55P03":  # lock_not_available
            raise Busy(f"the visit's cell is being updated by another request: retry in a moment ({exc.orig})"
                       .splitlines()[0]) from exc
        raise


def _by(conn: Connection, column: str, value: Any) -> dict[str, Any] | None:
    assert column in ("idempotency_key", "checkout_key", "visit_id")
    row = conn.execute(text(f"SELECT {_ROW} FROM visit v WHERE v.{column} = :v"), {"v": value}).mappings().first()
    return dict(row) if row else None


def _check_time(at: dt.datetime, now: dt.datetime, what: str) -> None:
    if at.tzinfo is None:
        raise BadInput(f"{what}: the time must carry its UTC offset (ISO 8601, e.g. 2026-12-07T09:30:00+08:00)")
    if at > now + MAX_CLOCK_AHEAD:
        raise BadInput(f"{what}: {at.isoformat()} is in the future (server time {now.isoformat()})")
    if at < now - MAX_AGE:
        raise BadInput(f"{what}: {at.isoformat()} is more than {MAX_AGE.days} days ago")


def _place(conn: Connection, customer_id: str, plan_id: int | None) -> tuple[str | None, str | None]:
    """EWKT of the stop's place and where it comes from: the plan stop, else customer, else village."""
    if plan_id is not None:
        row = conn.execute(text("SELECT ST_AsEWKT(geom), place_source FROM plan_stop WHERE plan_id = :p"
                                " AND customer_id = :c AND geom IS NOT NULL"), {"p": plan_id, "c": customer_id}).first()
        if row:
            return row[0], row[1]
    row = conn.execute(text(
        "SELECT ST_AsEWKT(coalesce(c.geom, vg.geom)), CASE WHEN c.geom IS NOT NULL THEN 'customer'"
        " WHEN vg.geom IS NOT NULL THEN 'village' END FROM customer c LEFT JOIN village vg ON vg.code = c.village_code"
        " WHERE c.customer_id = :c"), {"c": customer_id}).first()
    return (row[0], row[1]) if row else (None, None)


def check_in(conn: Connection, *, scope: Scope | None, rm_code: str, key: str, customer_id: str, kind: str,
             at: dt.datetime, lon: float, lat: float, accuracy_m: float | None, plan_id: int | None = None,
             far_m: float = 500.0, dedup_min: float = DEDUP_MIN) -> tuple[dict[str, Any], bool]:
    """Record a check-in (or answer the one stored under ``key``); returns (row, created)."""
    with _bounded_waits():
        return _check_in(conn, scope=scope, rm_code=rm_code, key=key, customer_id=customer_id, kind=kind, at=at,
                         lon=lon, lat=lat, accuracy_m=accuracy_m, plan_id=plan_id, far_m=far_m, dedup_min=dedup_min)


def _check_in(conn: Connection, *, scope, rm_code, key, customer_id, kind, at, lon, lat, accuracy_m, plan_id,
              far_m, dedup_min) -> tuple[dict[str, Any], bool]:
    now = _lock(conn, key)
    stored = _by(conn, "idempotency_key", key)
    if stored is not None:
        if stored["rm_code"] != rm_code or stored["customer_id"] != customer_id:
            raise Conflict(f"idempotency key {key} was already used for another check-in")
        return stored, False
    _check_time(at, now, "at")
    if kind not in ("面访", "电访"):
        raise BadInput(f"kind: {kind!r} is not 面访 or 电访")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadInput(f"lon, lat: ({lon}, {lat}) is not a WGS84 position")
    if accuracy_m is not None and not (0 <= accuracy_m < 1e6):
        raise BadInput(f"accuracy_m: {accuracy_m!r} must be >= 0 metres")
    cond = where(scope, "customer", "c") if scope is not None else None
    seen = conn.execute(text(f"SELECT 1 FROM customer c WHERE c.customer_id = :c AND {cond.sql if cond else 'TRUE'}"),
                        {**(cond.params if cond else {}), "c": customer_id}).first()
    if seen is None:
        raise NotFound(f"customer {customer_id!r} does not exist")
    if plan_id is not None and conn.execute(text("SELECT 1 FROM visit_plan WHERE plan_id = :p AND rm_code = :rm"),
                                            {"p": plan_id, "rm": rm_code}).first() is None:
        raise NotFound(f"visit plan {plan_id} does not exist")
    place, source = _place(conn, customer_id, plan_id)
    params = {"key": key, "c": customer_id, "rm": rm_code, "kind": kind, "at": at, "x": lon, "y": lat,
              "acc": accuracy_m, "plan": plan_id, "place": place, "src": source, "far": far_m,
              "tol": dt.timedelta(minutes=dedup_min)}
    # The distance, the far flag and the check-in columns, shared by both ways of recording.
    fields = ("kind = :kind, plan_id = :plan, checkin_at = :at, received_at = now(),"
              " checkin_geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326), accuracy_m = :acc, place_source = :src,"
              " distance_m = ST_Distance(ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography,"
              " ST_GeomFromEWKT(CAST(:place AS text))::geography),"
              " idempotency_key = CAST(:key AS uuid), source = 'checkin',"
              " flag_far = coalesce(ST_Distance(ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography,"
              " ST_GeomFromEWKT(CAST(:place AS text))::geography) - coalesce(CAST(:acc AS float8), 0) > :far, false)")
    merged = conn.execute(text(
        f"UPDATE visit v SET {fields} WHERE v.visit_id = (SELECT i.visit_id FROM visit i WHERE i.customer_id = :c"
        " AND i.rm_code = :rm AND i.source = 'import' AND i.idempotency_key IS NULL"
        " AND i.visited_at BETWEEN CAST(:at AS timestamptz) - CAST(:tol AS interval)"
        " AND CAST(:at AS timestamptz) + CAST(:tol AS interval)"
        " ORDER BY abs(extract(epoch FROM i.visited_at - CAST(:at AS timestamptz))) LIMIT 1) RETURNING v.visit_id"),
        params).scalar()
    if merged is None:
        merged = conn.execute(text(
            "INSERT INTO visit (customer_id, rm_code, visited_at, channel, source) VALUES (:c, :rm, :at, :kind,"
            " 'checkin') ON CONFLICT DO NOTHING RETURNING visit_id"), params).scalar()
        if merged is None:
            raise Conflict(f"customer {customer_id!r} already has a visit by {rm_code} at {at.isoformat()}")
        conn.execute(text(f"UPDATE visit v SET {fields} WHERE v.visit_id = :id"), {**params, "id": merged})
    conn.execute(text("UPDATE visit_task SET status = 'done', done_visit_id = :id WHERE rm_code = :rm"
                      " AND customer_id = :c AND status = 'open'"), {"id": merged, "rm": rm_code, "c": customer_id})
    refresh_customer_cells(conn, customer_id=customer_id)
    return _by(conn, "visit_id", merged), True


def check_out(conn: Connection, *, scope: Scope | None, rm_code: str | None, visit_id: int, key: str,
              at: dt.datetime, note: str | None, outcome: str | None,
              short_min: float = 5.0) -> tuple[dict[str, Any], bool]:
    """Record the end of a visit (or answer the check-out stored under ``key``); returns (row, created)."""
    with _bounded_waits():
        return _check_out(conn, scope=scope, rm_code=rm_code, visit_id=visit_id, key=key, at=at, note=note,
                          outcome=outcome, short_min=short_min)


def _check_out(conn: Connection, *, scope, rm_code, visit_id, key, at, note, outcome,
               short_min) -> tuple[dict[str, Any], bool]:
    owner = visit_rm(conn, scope=scope, visit_id=visit_id)
    if rm_code is not None and owner != rm_code:
        raise Forbidden(f"visit {visit_id} is {owner}'s: only that RM checks out")
    now = _lock(conn, key)
    stored = _by(conn, "checkout_key", key)
    if stored is not None:
        if stored["visit_id"] != visit_id:
            raise Conflict(f"idempotency key {key} was already used for another check-out")
        return stored, False
    row = conn.execute(text("SELECT checkin_at, checkout_key FROM visit WHERE visit_id = :v FOR UPDATE"),
                       {"v": visit_id}).mappings().one()
    if row["checkin_at"] is None:
        raise Conflict(f"visit {visit_id} was imported, not checked in: there is nothing to check out")
    if row["checkout_key"] is not None:
        raise Conflict(f"visit {visit_id} is already checked out")
    _check_time(at, now, "at")
    if at < row["checkin_at"]:
        raise BadInput(f"at: check-out {at.isoformat()} is before the check-in {row['checkin_at'].isoformat()}")
    conn.execute(text(
        "UPDATE visit SET checkout_at = :at, checkout_key = CAST(:key AS uuid), note = :note,"
        " outcome = coalesce(:outcome, outcome), flag_short = (:at - checkin_at) < CAST(:short AS interval)"
        " WHERE visit_id = :v"),
        {"at": at, "key": key, "note": note, "outcome": outcome, "v": visit_id,
         "short": dt.timedelta(minutes=short_min)})
    return _by(conn, "visit_id", visit_id), True


# Visit measures of one cell, as geodata.assign.refresh_cell_stats computes them for every cell.
_CELL_VISITS = """
UPDATE cell_stat s SET visits_90d = x.visits_90d, customers_visited_90d = x.visited, last_visit_at = x.last
  FROM (SELECT count(*) FILTER (WHERE vi.visited_at >= now() - interval '90 days') AS visits_90d,
               count(DISTINCT vi.customer_id) FILTER (WHERE vi.visited_at >= now() - interval '90 days') AS visited,
               max(vi.visited_at) AS last
          FROM customer_cell cc JOIN visit vi ON vi.customer_id = cc.customer_id
         WHERE cc.grid_id = :g AND cc.cell_id = :cell AND vi.visited_at <= now()) x
 WHERE s.grid_id = :g AND s.cell_id = :cell
"""


def refresh_customer_cells(conn: Connection, *, customer_id: str) -> list[dict[str, Any]]:
    """Recompute the visit measures of the customer's cell in the newest assigned grid of each kind."""
    cells = conn.execute(text(
        "SELECT DISTINCT ON (g.kind) g.id AS grid_id, cc.cell_id FROM customer c JOIN grid g"
        " ON g.county_code = c.county_code AND g.assigned_at IS NOT NULL"
        " JOIN customer_cell cc ON cc.grid_id = g.id AND cc.customer_id = c.customer_id"
        " WHERE c.customer_id = :c AND cc.cell_id IS NOT NULL ORDER BY g.kind, g.id DESC"),
        {"c": customer_id}).mappings().all()
    for cell in sorted(cells, key=lambda r: r["grid_id"]):  # one order everywhere: no deadlock between check-ins
        conn.execute(text(_CELL_VISITS), {"g": cell["grid_id"], "cell": cell["cell_id"]})
    return [dict(c) for c in cells]


def merge_imported(conn_or_cursor: Any, *, dedup_min: float = DEDUP_MIN) -> int:
    """Fold imported visits into check-ins of the same customer and RM within ``dedup_min`` minutes.

    The check-in keeps its time, position and flags and takes the import's channel and outcome
    where it has none; the imported row is deleted. Returns how many were merged. Called by the
    visits import in its transaction (a DB-API cursor) and usable with a connection.
    """
    sql = ("WITH pair AS (SELECT DISTINCT ON (i.visit_id) i.visit_id AS imp, k.visit_id AS ck, i.channel, i.outcome,"
           " i.import_run_id FROM visit i JOIN visit k ON k.customer_id = i.customer_id AND k.rm_code = i.rm_code"
           " AND k.source = 'checkin' AND k.visit_id <> i.visit_id"
           " AND i.visited_at BETWEEN k.visited_at - %(tol)s AND k.visited_at + %(tol)s"
           " WHERE i.source = 'import' ORDER BY i.visit_id, abs(extract(epoch FROM i.visited_at - k.visited_at))),"
           " upd AS (UPDATE visit v SET channel = coalesce(v.channel, p.channel), outcome = coalesce(v.outcome,"
           " p.outcome), import_run_id = p.import_run_id FROM pair p WHERE v.visit_id = p.ck RETURNING v.visit_id)"
           " DELETE FROM visit d USING pair p WHERE d.visit_id = p.imp RETURNING d.visit_id")
    tol = dt.timedelta(minutes=dedup_min)
    if hasattr(conn_or_cursor, "execute") and not isinstance(conn_or_cursor, Connection):
        conn_or_cursor.execute(sql, {"tol": tol})
        return conn_or_cursor.rowcount
    return len(conn_or_cursor.exec_driver_sql(sql, {"tol": tol}).all())


def purge_positions(conn: Connection, *, days: int) -> int:
    """Null the raw check-in positions (and their accuracy) older than ``days``; distance and flags stay."""
    return conn.execute(text(
        "UPDATE visit SET checkin_geom = NULL, accuracy_m = NULL WHERE checkin_geom IS NOT NULL"
        " AND received_at < now() - CAST(:d AS interval)"), {"d": dt.timedelta(days=int(days))}).rowcount
