"""Who owns which cells (定格、定员、定责): current ownership, manual changes, locks, history.

Ownership is a history table: the current owner of a cell is its ``territory``
row with ``role = 'owner'`` and ``valid_to IS NULL``; co-owners (an outlet head
who oversees) are rows with ``role = 'co_owner'``. Every change closes the old
row, writes a new one with a reason and the user, bumps the grid's
``territory_version`` (so stale scenarios cannot be published) and returns the
customers whose RM changes, for hand-over. Locking or unlocking cells bumps
the version too: a published draft brings its own locks.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput, Conflict, NotFound
from geodata.grids import get_grid, load_cells

HANDOVER_LIST_LIMIT = 10_000
DEFAULT_WEIGHTS = {"customers": 0.4, "households": 0.3, "deposit": 0.15, "loan": 0.15}


WEIGHT_NAMES = ("customers", "households", "population", "deposit", "loan", "visits_90d", "travel")


def check_weights(weights: dict | None) -> dict:
    """Workload weights by allowed measure name, each a finite number >= 0 (BadInput otherwise)."""
    if not weights:
        return dict(DEFAULT_WEIGHTS)
    out = {}
    for name, value in weights.items():
        if name not in WEIGHT_NAMES:
            raise BadInput(f"unknown workload weight {name!r}; use {', '.join(WEIGHT_NAMES)}")
        try:
            w = float(value)
        except (TypeError, ValueError):
            raise BadInput(f"weight {name!r} must be a number, got {value!r}") from None
        if not (w >= 0 and w < float("inf")):
            raise BadInput(f"weight {name!r} must be a finite number >= 0, got {value!r}")
        out[name] = w
    if sum(v for k, v in out.items() if k != "travel") <= 0:
        raise BadInput("at least one workload weight other than travel must be above 0")
    return out


def current_owners(conn: Connection, *, grid_id: int) -> dict[str, str]:
    """cell_id → rm_code of the current owner, for owned cells of a grid."""
    rows = conn.execute(
        text("SELECT cell_id, rm_code FROM territory WHERE grid_id = :g AND role = 'owner' AND valid_to IS NULL"),
        {"g": grid_id},
    ).all()
    return dict(rows)


def current_locks(conn: Connection, *, grid_id: int) -> set[str]:
    """Cells the optimiser must not move."""
    return {r[0] for r in conn.execute(text("SELECT cell_id FROM cell_lock WHERE grid_id = :g"), {"g": grid_id})}


def _check_cells(conn: Connection, grid_id: int, cell_ids: list[str]) -> None:
    found = {r[0] for r in conn.execute(
        text("SELECT cell_id FROM cell WHERE grid_id = :g AND cell_id = ANY(:ids)"), {"g": grid_id, "ids": cell_ids}
    )}
    missing = [c for c in cell_ids if c not in found]
    if missing:
        raise NotFound(f"grid {grid_id} has no cell(s) {', '.join(missing[:10])}")


def check_rm(conn: Connection, grid_id: int, rm_code: str) -> None:
    """NotFound/BadInput unless the RM exists, is active and is not of another legal entity than the grid's."""
    row = conn.execute(
        text(
            "SELECT r.active, r.legal_entity_id, c.legal_entity_id AS county_le FROM rm r, grid g "
            "JOIN county c ON c.adcode = g.county_code WHERE r.code = :r AND g.id = :g"
        ),
        {"r": rm_code, "g": grid_id},
    ).mappings().first()
    if row is None:
        raise NotFound(f"RM {rm_code!r} does not exist")
    if not row["active"]:
        raise BadInput(f"RM {rm_code!r} is not active")
    if row["legal_entity_id"] and row["county_le"] and row["legal_entity_id"] != row["county_le"]:
        raise BadInput(f"RM {rm_code!r} belongs to another legal entity than grid {grid_id}'s county")


def _lock_grid(conn: Connection, grid_id: int) -> None:
    # Taken before ownership or locks are read for a change: what is checked is still true when it is written.
    if conn.execute(text("SELECT 1 FROM grid WHERE id = :g FOR UPDATE"), {"g": grid_id}).first() is None:
        raise NotFound(f"grid {grid_id} does not exist")


def customers_changing(conn: Connection, *, grid_id: int, changes: dict[str, str | None]) -> list[dict]:
    """Customers whose RM changes if ``changes`` (cell_id → new rm_code) is applied now."""
    if not changes:
        return []
    cells, rms = list(changes), list(changes.values())
    rows = conn.execute(
        text(
            "SELECT cc.customer_id, cc.cell_id, t.rm_code AS from_rm, ch.rm AS to_rm "
            "FROM unnest(CAST(:cells AS text[]), CAST(:rms AS text[])) AS ch(cell_id, rm) "
            "JOIN customer_cell cc ON cc.grid_id = :g AND cc.cell_id = ch.cell_id "
            "LEFT JOIN territory t ON t.grid_id = :g AND t.cell_id = ch.cell_id AND t.role = 'owner' "
            "AND t.valid_to IS NULL WHERE t.rm_code IS DISTINCT FROM ch.rm ORDER BY cc.customer_id LIMIT :lim"
        ),
        {"cells": cells, "rms": rms, "g": grid_id, "lim": HANDOVER_LIST_LIMIT},
    ).mappings().all()
    return [dict(r) for r in rows]


def apply_owner_changes(
    conn: Connection, *, grid_id: int, changes: dict[str, str | None], user: str, reason: str,
    scenario_id: int | None = None, expected_version: int | None = None,
) -> dict:
    """Write new current owners (None = unowned) with history; refuses a stale ``expected_version``."""
    # The time is read once the grid is locked, not now() (when the transaction began): a change
    # that began before another one but waited for it must not end that one's row before it started.
    row = conn.execute(
        text("SELECT territory_version, clock_timestamp() FROM grid WHERE id = :g FOR UPDATE"), {"g": grid_id}
    ).first()
    if row is None:
        raise NotFound(f"grid {grid_id} does not exist")
    version, at = row
    if expected_version is not None and version != expected_version:
        raise Conflict(
            f"the assignments of grid {grid_id} changed since this scenario was created "
            f"(version {expected_version}, now {version}); create the scenario again from current"
        )
    before = current_owners(conn, grid_id=grid_id)
    changes = {c: r for c, r in changes.items() if before.get(c) != r}
    handover = customers_changing(conn, grid_id=grid_id, changes=changes)
    moving = len(handover)
    if moving >= HANDOVER_LIST_LIMIT:
        # the list stops at the limit; the count must not (every customer of a changed cell changes RM)
        moving = conn.execute(
            text("SELECT count(*) FROM customer_cell WHERE grid_id = :g AND cell_id = ANY(:cells)"),
            {"g": grid_id, "cells": list(changes)},
        ).scalar_one()
    if changes:
        cells, rms = list(changes), list(changes.values())
        conn.execute(
            text("UPDATE territory SET valid_to = :at WHERE grid_id = :g AND role = 'owner' "
                 "AND valid_to IS NULL AND cell_id = ANY(:cells)"),
            {"g": grid_id, "cells": cells, "at": at},
        )
        conn.execute(
            text(
                "INSERT INTO territory (grid_id, cell_id, rm_code, role, valid_from, reason, changed_by, scenario_id) "
                "SELECT :g, c, r, 'owner', :at, :reason, :user, :sid "
                "FROM unnest(CAST(:cells AS text[]), CAST(:rms AS text[])) AS x(c, r) WHERE r IS NOT NULL"
            ),
            {"g": grid_id, "cells": cells, "rms": rms, "reason": reason, "user": user, "sid": scenario_id, "at": at},
        )
        conn.execute(text("UPDATE grid SET territory_version = territory_version + 1 WHERE id = :g"), {"g": grid_id})
    return {
        "grid_id": grid_id, "cells_changed": len(changes), "reason": reason,
        "customers_changing_rm": moving, "handover": handover,
        "territory_version": version + (1 if changes else 0),
    }


def assign_cells(conn: Connection, *, grid_id: int, cell_ids: list[str], rm_code: str, user: str,
                 reason: str = "manual assignment", force: bool = False) -> dict:
    """Give cells to an RM (locked cells only with ``force``)."""
    _lock_grid(conn, grid_id)
    _check_cells(conn, grid_id, cell_ids)
    check_rm(conn, grid_id, rm_code)
    locked = current_locks(conn, grid_id=grid_id) & set(cell_ids)
    if locked and not force:
        raise Conflict(f"cell(s) {', '.join(sorted(locked)[:10])} are locked; unlock them or force the change")
    return apply_owner_changes(conn, grid_id=grid_id, changes=dict.fromkeys(cell_ids, rm_code), user=user, reason=reason)


def move_cells(conn: Connection, *, grid_id: int, from_rm: str, to_rm: str, user: str,
               cell_ids: list[str] | None = None, reason: str = "manual move", force: bool = False) -> dict:
    """Move cells (all of ``from_rm``'s when none are named) to ``to_rm``."""
    _lock_grid(conn, grid_id)
    owners = current_owners(conn, grid_id=grid_id)
    owned = [c for c, r in owners.items() if r == from_rm]
    cell_ids = owned if cell_ids is None else cell_ids
    not_owned = [c for c in cell_ids if owners.get(c) != from_rm]
    if not_owned:
        raise BadInput(f"RM {from_rm!r} does not own cell(s) {', '.join(not_owned[:10])}")
    return assign_cells(conn, grid_id=grid_id, cell_ids=cell_ids, rm_code=to_rm, user=user, reason=reason,
                        force=force)


def set_locks(conn: Connection, *, grid_id: int, cell_ids: list[str], locked: bool, user: str,
              reason: str | None = None) -> dict:
    """Lock (the optimiser must not move them) or unlock cells."""
    _lock_grid(conn, grid_id)
    _check_cells(conn, grid_id, cell_ids)
    if locked:
        changed = conn.execute(
            text("INSERT INTO cell_lock (grid_id, cell_id, locked_by, reason) SELECT :g, c, :u, :r "
                 "FROM unnest(CAST(:cells AS text[])) AS c ON CONFLICT (grid_id, cell_id) DO NOTHING"),
            {"g": grid_id, "cells": cell_ids, "u": user, "r": reason},
        ).rowcount
    else:
        changed = conn.execute(text("DELETE FROM cell_lock WHERE grid_id = :g AND cell_id = ANY(:cells)"),
                               {"g": grid_id, "cells": cell_ids}).rowcount
    if changed:
        # Publishing a draft sets the grid's locks to the draft's: one made before this change is stale now,
        # or publishing it would silently undo the change.
        conn.execute(text("UPDATE grid SET territory_version = territory_version + 1 WHERE id = :g"), {"g": grid_id})
    return {"grid_id": grid_id, "locked": locked, "cells": len(cell_ids),
            "locked_cells": len(current_locks(conn, grid_id=grid_id))}


def set_co_owner(conn: Connection, *, grid_id: int, cell_ids: list[str], rm_code: str, user: str,
                 add: bool = True, reason: str = "co-owner") -> dict:
    """Add or remove a co-owner (e.g. an outlet head who oversees) on cells."""
    _check_cells(conn, grid_id, cell_ids)
    check_rm(conn, grid_id, rm_code)
    conn.execute(
        text("UPDATE territory SET valid_to = now() WHERE grid_id = :g AND role = 'co_owner' "
             "AND rm_code = :r AND valid_to IS NULL AND cell_id = ANY(:cells)"),
        {"g": grid_id, "r": rm_code, "cells": cell_ids},
    )
    if add:
        conn.execute(
            text("INSERT INTO territory (grid_id, cell_id, rm_code, role, reason, changed_by) "
                 "SELECT :g, c, :r, 'co_owner', :reason, :u FROM unnest(CAST(:cells AS text[])) AS c"),
            {"g": grid_id, "r": rm_code, "cells": cell_ids, "reason": reason, "u": user},
        )
    return {"grid_id": grid_id, "rm_code": rm_code, "cells": len(cell_ids), "co_owner": add}


def history(conn: Connection, *, grid_id: int, cell_id: str | None = None, rm_code: str | None = None,
            limit: int = 1000) -> list[dict]:
    """Ownership history, newest first."""
    rows = conn.execute(
        text(
            "SELECT cell_id, rm_code, role, valid_from, valid_to, reason, changed_by, scenario_id "
            "FROM territory WHERE grid_id = :g AND (CAST(:c AS text) IS NULL OR cell_id = :c) "
            "AND (CAST(:r AS text) IS NULL OR rm_code = :r) ORDER BY valid_from DESC, id DESC LIMIT :l"
        ),
        {"g": grid_id, "c": cell_id, "r": rm_code, "l": limit},
    ).mappings().all()
    return [dict(r) for r in rows]


def busiest_rm(conn: Connection, *, grid_id: int | None = None, county_code: str | None = None) -> dict | None:
    """The RM with the most current territory rows (of one grid, or of every grid of a county), with
    their outlet; ties go to the smallest code. None when no cell has an RM."""
    row = conn.execute(text(
        "SELECT r.code AS rm_code, r.outlet_code FROM territory t JOIN rm r ON r.code = t.rm_code"
        " JOIN grid g ON g.id = t.grid_id WHERE t.valid_to IS NULL"
        " AND (CAST(:g AS integer) IS NULL OR t.grid_id = :g) AND (CAST(:c AS text) IS NULL OR g.county_code = :c)"
        " GROUP BY r.code, r.outlet_code ORDER BY count(*) DESC, r.code LIMIT 1"),
        {"g": grid_id, "c": county_code}).mappings().first()
    return dict(row) if row else None


def rms_for(conn: Connection, *, grid_id: int, outlets: list[str] | None = None,
            rm_codes: list[str] | None = None, also_inactive: list[str] | None = None) -> pd.DataFrame:
    """Active RMs (and those of ``also_inactive``) with home points: named ones, those of the chosen
    outlets, or every outlet of the grid's county."""
    g = get_grid(conn, grid_id=grid_id)
    rows = conn.execute(
        text(
            "SELECT r.code AS rm_id, r.name, r.outlet_code, r.capacity, ST_X(o.geom) AS lon, ST_Y(o.geom) AS lat "
            "FROM rm r JOIN outlet o ON o.code = r.outlet_code"
            " WHERE (r.active OR r.code = ANY(CAST(:also AS text[]))) AND ("
            " CASE WHEN CAST(:codes AS text[]) IS NOT NULL THEN r.code = ANY(:codes)"
            " WHEN CAST(:outlets AS text[]) IS NOT NULL THEN r.outlet_code = ANY(:outlets)"
            " ELSE o.county_code = :county END)"
            # never an RM of another legal entity than the grid's county (named outlets come from requests)
            " AND (r.legal_entity_id IS NULL OR NOT EXISTS (SELECT 1 FROM county k WHERE k.adcode = :county"
            " AND k.legal_entity_id IS NOT NULL AND k.legal_entity_id <> r.legal_entity_id)) ORDER BY r.code"
        ),
        {"outlets": outlets, "codes": rm_codes, "county": g["county_code"], "also": also_inactive or []},
    ).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows], columns=["rm_id", "name", "outlet_code", "capacity", "lon", "lat"])
    if outlets:
        unknown = set(outlets) - set(df["outlet_code"])
        if unknown:
            raise NotFound(f"no active RMs at outlet(s) {', '.join(sorted(unknown))}")
    if df.empty:
        raise BadInput(f"no active RMs for grid {grid_id} (import rms, or plan for other outlets)")
    return df


def cells_for_planning(conn: Connection, *, grid_id: int) -> gpd.GeoDataFrame:
    """Cells with the workload measures the optimiser uses."""
    cells = load_cells(conn, grid_id=grid_id, with_stats=True)
    for col in ("customers", "households", "population", "deposit", "loan", "visits_90d"):
        cells[col] = pd.to_numeric(cells.get(col), errors="coerce").fillna(0.0).astype(float)
    return cells


def handover_rm(conn: Connection, *, grid_id: int, rm_code: str, user: str, to_rm: str | None = None,
                weights: dict | None = None, seed: int = 0) -> dict:
    """Everything an RM who leaves owns goes to one RM, or is spread by the optimiser."""
    _lock_grid(conn, grid_id)
    owners = current_owners(conn, grid_id=grid_id)
    owned = [c for c, r in owners.items() if r == rm_code]
    if not owned:
        raise BadInput(f"RM {rm_code!r} owns no cells of grid {grid_id}")
    if to_rm is not None:
        return move_cells(conn, grid_id=grid_id, from_rm=rm_code, to_rm=to_rm, user=user,
                          reason=f"handover from {rm_code}", force=True)
    from grid.territories import TerritoryPlan, handover

    cells = cells_for_planning(conn, grid_id=grid_id)
    # every RM who owns cells of this grid takes part, wherever their outlet is
    # the leaving RM is usually already inactive, but the plan must know whose cells it spreads
    rms = rms_for(conn, grid_id=grid_id, rm_codes=sorted(set(owners.values())), also_inactive=[rm_code])
    if len(rms) < 2:
        raise BadInput(f"RM {rm_code!r} is the only owner in grid {grid_id}: name who takes over")
    plan = TerritoryPlan.from_geodataframe(cells, rms, weights=check_weights(weights), current=owners, seed=seed)
    result = handover(plan, rm_code)
    new = result.assignment_series().to_dict()
    changes = {c: r for c, r in new.items() if c in owners and owners[c] == rm_code}
    out = apply_owner_changes(conn, grid_id=grid_id, changes=changes, user=user, reason=f"handover from {rm_code}")
    return {**out, "spread_over": sorted(set(changes.values()))}
