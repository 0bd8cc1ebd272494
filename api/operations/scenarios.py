"""Changes to scenarios (the sandbox): create, plan (the optimiser), edit, publish (then rescore),
discard; each writes one audit row on ``scenario <id>``."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from geodata import audit, refresh
from geodata import scenarios as store
from geodata.reads import access
from geodata.scope import Scope


def _audit(conn: Connection, actor: str, action: str, scenario_id: int, detail: dict[str, Any]) -> None:
    audit.record(conn, username=actor, action=action, object_type="scenario", object_id=str(scenario_id),
                 detail=detail)


def create(conn: Connection, *, actor: str, grid_id: int, name: str, from_current: bool = True,
           scope: Scope | None = None) -> dict[str, Any]:
    """A new draft for a grid, copied from the current assignments (and locks) or empty."""
    if scope is not None:
        access.scoped_grid(conn, scope=scope, grid_id=grid_id)
    out = store.create_scenario(conn, grid_id=grid_id, name=name, user=actor, from_current=from_current)
    _audit(conn, actor, "create", out["id"], {"grid_id": grid_id, "name": name, "from_current": from_current})
    return out


def plan(conn: Connection, *, actor: str, grid_id: int, name: str, outlets: list[str] | None = None, seed: int = 0,
         weights: dict[str, float] | None = None, keep_current: bool = False, max_distance_km: float | None = None,
         progress=None, scope: Scope | None = None, without_rms: list[str] | None = None) -> dict[str, Any]:
    """Balance the grid's cells over the RMs (but ``without_rms``) into a (new or redone) draft; audit
    ``create scenario <id>``. With ``scope``, the grid and every RM of ``without_rms`` must be in it (an RM of
    another legal entity is "not found")."""
    if scope is not None:
        access.scoped_grid(conn, scope=scope, grid_id=grid_id)
        access.check_rms(conn, scope=scope, codes=tuple(without_rms or ()))
    params = {"grid_id": grid_id, "name": name, "outlets": outlets or None, "seed": seed, "weights": weights,
              "keep_current": keep_current, "max_distance_km": max_distance_km,
              **({"without_rms": without_rms} if without_rms else {})}
    out = store.plan_scenario(conn, user=actor, progress=progress, **params)
    _audit(conn, actor, "create", out["id"], {"planned": True, **params})
    return out


def edit(conn: Connection, *, actor: str, scenario_id: int, cell_ids: list[str], rm_code: str | None = None,
         locked: bool | None = None, scope: Scope | None = None) -> dict[str, Any]:
    """Set the RM and/or lock flag of cells in a draft."""
    if scope is not None:
        access.check_rms(conn, scope=scope, codes=(rm_code,))
    out = store.edit_scenario(conn, scenario_id=scenario_id, cell_ids=cell_ids, rm_code=rm_code, locked=locked)
    _audit(conn, actor, "update", scenario_id, {"rm_code": rm_code, "locked": locked, "cells": len(cell_ids)})
    return out


def publish(conn: Connection, *, actor: str, scenario_id: int) -> dict[str, Any]:
    """Make a draft current (history written) and rescore the grid's gaps; answers the hand-over list."""
    found = store.show_scenario(conn, scenario_id=scenario_id)
    out = store.publish(conn, scenario_id=scenario_id, user=actor)
    out["rescored"] = refresh.after_publish(conn, grid_id=found["grid_id"], scenario=found["name"])
    _audit(conn, actor, "publish", scenario_id, {"cells_changed": out["cells_changed"],
                                                 "customers_changing_rm": out["customers_changing_rm"]})
    return out


def discard(conn: Connection, *, actor: str, scenario_id: int) -> dict[str, Any]:
    """Throw a draft away (kept as ``discarded`` for the record)."""
    out = store.discard(conn, scenario_id=scenario_id)
    _audit(conn, actor, "delete", scenario_id, {"name": out["name"]})
    return out
