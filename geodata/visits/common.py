"""What the visit modules share: scope checks on RMs, plans and visits, and local times of a plan's day."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import NotFound
from geodata.scope import Scope, where

DEFAULT_TZ = "Asia/Shanghai"


def check_rm(conn: Connection, *, scope: Scope | None, rm_code: str) -> dict[str, Any]:
    """The RM's row (code, legal entity, outlet, outlet point) if ``scope`` may see the RM; NotFound otherwise."""
    cond = where(scope, "rm", "r") if scope is not None else None
    row = conn.execute(text(
        "SELECT r.code, r.name, r.legal_entity_id, r.outlet_code, ST_X(o.geom) AS outlet_lon, ST_Y(o.geom) AS outlet_lat"
        " FROM rm r LEFT JOIN outlet o ON o.code = r.outlet_code"
        f" WHERE r.code = :rm AND {cond.sql if cond else 'TRUE'}"),
        {**(cond.params if cond else {}), "rm": rm_code}).mappings().first()
    if row is None:
        raise NotFound(f"RM {rm_code!r} does not exist")
    return dict(row)


def as_rm(rm: dict[str, Any]) -> Scope:
    """The scope the RM themselves has (their own customers and cells)."""
    return Scope(role="rm", legal_entity_id=rm["legal_entity_id"], rm_code=rm["code"]) \
        if rm["legal_entity_id"] is not None else Scope(role="admin", legal_entity_id=None)


def customer_clause(scope: Scope | None, rm: dict[str, Any], alias: str) -> tuple[str, dict[str, Any]]:
    """SQL condition: the customer (``alias``) is the RM's own AND visible to ``scope``.

    The RM's own customers are those of cells they currently own (``geodata.scope``); the
    requester (the RM, their branch manager, a planner) must see the customer too.
    """
    own = where(as_rm(rm), "customer", alias)
    sql, params = own.sql, dict(own.params)
    if scope is not None:
        mine = where(scope, "customer", alias)
        # Both clauses bind scope_* names: the requester's are renamed so the two never clash.
        renamed = mine.sql
        for k in sorted(mine.params, key=len, reverse=True):
            renamed = renamed.replace(f":{k}", f":req_{k}")
        sql = f"({sql}) AND ({renamed})"
        params.update({f"req_{k}": v for k, v in mine.params.items()})
    return sql, params


def plan_rm(conn: Connection, *, scope: Scope | None, plan_id: int) -> str:
    """The RM code of a plan ``scope`` may see; NotFound otherwise (also when out of scope)."""
    cond = where(scope, "rm", "r") if scope is not None else None
    rm = conn.execute(text(
        "SELECT p.rm_code FROM visit_plan p JOIN rm r ON r.code = p.rm_code"
        f" WHERE p.plan_id = :p AND {cond.sql if cond else 'TRUE'}"),
        {**(cond.params if cond else {}), "p": plan_id}).scalar()
    if rm is None:
        raise NotFound(f"visit plan {plan_id} does not exist")
    return rm


def visit_rm(conn: Connection, *, scope: Scope | None, visit_id: int) -> str:
    """The RM code of a visit ``scope`` may see (its RM and its customer); NotFound otherwise."""
    params: dict[str, Any] = {"v": visit_id}
    conds = ["TRUE"]
    if scope is not None:
        r, c = where(scope, "rm", "r"), where(scope, "customer", "c")
        conds = [r.sql, c.sql]
        params.update(r.params)
    rm = conn.execute(text(
        "SELECT v.rm_code FROM visit v JOIN rm r ON r.code = v.rm_code JOIN customer c ON c.customer_id = v.customer_id"
        f" WHERE v.visit_id = :v AND {' AND '.join(conds)}"), params).scalar()
    if rm is None:
        raise NotFound(f"visit {visit_id} does not exist")
    return rm


def local_day(plan_date: dt.date, minutes: float | None, tz: str) -> dt.datetime | None:
    """The aware time ``minutes`` after local midnight of ``plan_date`` (None stays None)."""
    if minutes is None or minutes != minutes:
        return None
    midnight = dt.datetime.combine(plan_date, dt.time(0), tzinfo=ZoneInfo(tz))
    return midnight + dt.timedelta(minutes=float(minutes))


def today(tz: str) -> dt.date:
    """Today's date where the bank is."""
    return dt.datetime.now(ZoneInfo(tz)).date()
