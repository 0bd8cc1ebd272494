"""Manual territory changes: assign, move, lock, co-owner, hand-over; each answers the hand-over list
(customers whose RM changes) and writes one audit row ``update territory <grid id>``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from geodata import audit
from geodata import territories as store
from geodata.reads import access
from geodata.scope import Scope

ASSIGN_REASON = "manual assignment"
MOVE_REASON = "manual move"


def _rms_in_scope(conn: Connection, scope: Scope | None, *codes: str | None) -> None:
    if scope is not None:
        access.check_rms(conn, scope=scope, codes=codes)


def _audit(conn: Connection, actor: str, grid_id: int, change: str, cells: list[str] | None, **params: Any) -> None:
    audit.record(conn, username=actor, action="update", object_type="territory", object_id=str(grid_id),
                 detail={"change": change, **params, "cells": len(cells or [])})


def assign(conn: Connection, *, actor: str, grid_id: int, cell_ids: list[str], rm_code: str,
           reason: str | None = None, force: bool = False, scope: Scope | None = None) -> dict[str, Any]:
    """Give cells to an RM (locked cells only with ``force``)."""
    _rms_in_scope(conn, scope, rm_code)
    out = store.assign_cells(conn, grid_id=grid_id, cell_ids=cell_ids, rm_code=rm_code, user=actor,
                             reason=reason or ASSIGN_REASON, force=force)
    _audit(conn, actor, grid_id, "assign", cell_ids, rm_code=rm_code, reason=reason, force=force)
    return out


def move(conn: Connection, *, actor: str, grid_id: int, from_rm: str, to_rm: str,
         cell_ids: list[str] | None = None, reason: str | None = None, force: bool = False,
         scope: Scope | None = None) -> dict[str, Any]:
    """Move cells (all of ``from_rm``'s when ``cell_ids`` is None) to another RM."""
    _rms_in_scope(conn, scope, from_rm, to_rm)
    out = store.move_cells(conn, grid_id=grid_id, from_rm=from_rm, to_rm=to_rm, user=actor, cell_ids=cell_ids,
                           reason=reason or MOVE_REASON, force=force)
    _audit(conn, actor, grid_id, "move", cell_ids, from_rm=from_rm, to_rm=to_rm,
           reason=reason, force=force)
    return out


def lock(conn: Connection, *, actor: str, grid_id: int, cell_ids: list[str], locked: bool = True,
         reason: str | None = None, scope: Scope | None = None) -> dict[str, Any]:
    """Lock (or unlock) cells; no customer changes RM."""
    out = store.set_locks(conn, grid_id=grid_id, cell_ids=cell_ids, locked=locked, user=actor, reason=reason)
    _audit(conn, actor, grid_id, "lock" if locked else "unlock", cell_ids, locked=locked, reason=reason)
    return {**out, "customers_changing_rm": 0, "handover": []}


def co_owner(conn: Connection, *, actor: str, grid_id: int, cell_ids: list[str], rm_code: str, add: bool = True,
             scope: Scope | None = None) -> dict[str, Any]:
    """Add (or remove) a co-owner on cells; owners do not change."""
    _rms_in_scope(conn, scope, rm_code)
    out = store.set_co_owner(conn, grid_id=grid_id, cell_ids=cell_ids, rm_code=rm_code, user=actor, add=add)
    _audit(conn, actor, grid_id, "co-owner", cell_ids, rm_code=rm_code, add=add)
    return {**out, "customers_changing_rm": 0, "handover": []}


def handover(conn: Connection, *, actor: str, grid_id: int, rm_code: str, to_rm: str | None = None, seed: int = 0,
             scope: Scope | None = None) -> dict[str, Any]:
    """Hand over every cell of an RM who leaves, to ``to_rm`` or spread by the optimiser."""
    _rms_in_scope(conn, scope, rm_code, to_rm)
    out = store.handover_rm(conn, grid_id=grid_id, rm_code=rm_code, user=actor, to_rm=to_rm, seed=seed)
    _audit(conn, actor, grid_id, "handover", None, rm_code=rm_code, to_rm=to_rm, seed=seed)
    return out
