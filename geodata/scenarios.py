"""Scenarios: the sandbox (沙盘) where planners draft territory assignments before publishing.

A scenario is a draft set of assignments that changes nothing RMs see until it
is published. It remembers the grid's ``territory_version`` it was based on;
publishing after current assignments changed is refused (no lost updates).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput, Conflict, NotFound
from geodata.grids import get_grid
from geodata.territories import (
    apply_owner_changes,
    cells_for_planning,
    check_rm,
    check_weights,
    current_locks,
    current_owners,
    customers_changing,
    rms_for,
)

CURRENT = "current"


def _row(conn: Connection, scenario_id: int) -> dict:
    row = conn.execute(text("SELECT * FROM scenario WHERE id = :s"), {"s": scenario_id}).mappings().first()
    if row is None:
        raise NotFound(f"scenario {scenario_id} does not exist")
    return dict(row)


def find_scenario(conn: Connection, *, ref: str | int, grid_id: int | None = None) -> dict:
    """A scenario by id, or by name (the draft of that name; else its newest version)."""
    if isinstance(ref, int) or str(ref).isdigit():
        return _row(conn, int(ref))
    rows = conn.execute(
        text("SELECT id, grid_id FROM scenario WHERE name = :n AND (CAST(:g AS integer) IS NULL OR grid_id = :g) "
             "ORDER BY (status = 'draft') DESC, id DESC"),
        {"n": ref, "g": grid_id},
    ).all()
    if not rows:
        raise NotFound(f"no scenario named {ref!r}" + (f" for grid {grid_id}" if grid_id else ""))
    if len({r[1] for r in rows}) > 1:
        raise BadInput(f"scenario name {ref!r} is used in several grids; name the grid")
    return _row(conn, rows[0][0])


def list_scenarios(conn: Connection, *, grid_id: int | None = None, legal_entity_id: int | None = None) -> list[dict]:
    """Scenarios, newest first."""
    rows = conn.execute(
        text(
            "SELECT s.id, s.grid_id, s.name, s.status, s.base_version, s.created_by, s.created_at, s.published_at, "
            "(SELECT count(*) FROM scenario_cell sc WHERE sc.scenario_id = s.id AND sc.rm_code IS NOT NULL) AS owned_cells "
            "FROM scenario s JOIN grid g ON g.id = s.grid_id JOIN county c ON c.adcode = g.county_code "
            "WHERE (CAST(:g AS integer) IS NULL OR s.grid_id = :g) "
            "AND (CAST(:le AS integer) IS NULL OR c.legal_entity_id = :le) ORDER BY s.id DESC"
        ),
        {"g": grid_id, "le": legal_entity_id},
    ).mappings().all()
    return [dict(r) for r in rows]


def scenario_assignment(conn: Connection, *, scenario_id: int) -> dict[str, str]:
    """cell_id → rm_code of a scenario (owned cells only)."""
    rows = conn.execute(
        text("SELECT cell_id, rm_code FROM scenario_cell WHERE scenario_id = :s AND rm_code IS NOT NULL"),
        {"s": scenario_id},
    ).all()
    return dict(rows)


def _assignment(conn: Connection, grid_id: int, ref: str | int) -> dict[str, str]:
    if ref == CURRENT:
        return current_owners(conn, grid_id=grid_id)
    sc = find_scenario(conn, ref=ref, grid_id=grid_id)
    if sc["grid_id"] != grid_id:
        raise BadInput(f"scenario {sc['name']!r} belongs to grid {sc['grid_id']}, not {grid_id}")
    return scenario_assignment(conn, scenario_id=sc["id"])


def _write_cells(conn: Connection, scenario_id: int, assignment: dict[str, str], locked: set[str]) -> None:
    conn.execute(text("DELETE FROM scenario_cell WHERE scenario_id = :s"), {"s": scenario_id})
    cells = sorted(set(assignment) | locked)
    conn.execute(
        text("INSERT INTO scenario_cell (scenario_id, cell_id, rm_code, locked) "
             "SELECT :s, c, r, l FROM unnest(CAST(:c AS text[]), CAST(:r AS text[]), CAST(:l AS boolean[])) AS x(c, r, l)"),
        {"s": scenario_id, "c": cells, "r": [assignment.get(c) for c in cells], "l": [c in locked for c in cells]},
    )


def create_scenario(conn: Connection, *, grid_id: int, name: str, user: str, from_current: bool = True,
                    params: dict | None = None) -> dict:
    """A new draft, copied from current assignments (and locks) or empty."""
    g = get_grid(conn, grid_id=grid_id)
    if not name or len(name) > 100:
        raise BadInput("a scenario needs a name of 1 to 100 characters")
    # ON CONFLICT, not a look first: two users creating one name at once get 409, not a unique violation.
    sid = conn.execute(
        text("INSERT INTO scenario (grid_id, name, base_version, created_by, params) "
             "VALUES (:g, :n, :v, :u, CAST(:p AS jsonb)) "
             "ON CONFLICT (grid_id, name) WHERE status = 'draft' DO NOTHING RETURNING id"),
        {"g": grid_id, "n": name, "v": g["territory_version"], "u": user,
         "p": json.dumps({"from_current": from_current, **(params or {})}, default=str)},
    ).scalar()
    if sid is None:
        raise Conflict(f"grid {grid_id} already has a draft scenario named {name!r}")
    if from_current:
        _write_cells(conn, sid, current_owners(conn, grid_id=grid_id), current_locks(conn, grid_id=grid_id))
    return show_scenario(conn, scenario_id=sid)


def show_scenario(conn: Connection, *, scenario_id: int) -> dict:
    """A scenario's row with per-RM cell counts."""
    sc = _row(conn, scenario_id)
    per_rm = conn.execute(
        text("SELECT rm_code, count(*) AS cells, count(*) FILTER (WHERE locked) AS locked FROM scenario_cell "
             "WHERE scenario_id = :s GROUP BY rm_code ORDER BY rm_code NULLS LAST"),
        {"s": scenario_id},
    ).mappings().all()
    return {**sc, "per_rm": [dict(r) for r in per_rm]}


def _draft(conn: Connection, scenario_id: int) -> dict:
    # Locked until the caller's transaction ends: a publish, edit, plan or discard of the same draft
    # waits for the other and then sees its status (no edit lands in a published scenario).
    row = conn.execute(text("SELECT * FROM scenario WHERE id = :s FOR UPDATE"), {"s": scenario_id}).mappings().first()
    if row is None:
        raise NotFound(f"scenario {scenario_id} does not exist")
    sc = dict(row)
    if sc["status"] != "draft":
        raise Conflict(f"scenario {sc['name']!r} is {sc['status']}; only drafts can change")
    return sc


def edit_scenario(conn: Connection, *, scenario_id: int, cell_ids: list[str], rm_code: str | None = None,
                  locked: bool | None = None) -> dict:
    """Set the RM (None = unowned, unchanged when not given) and/or lock flag of cells in a draft."""
    sc = _draft(conn, scenario_id)
    known = {r[0] for r in conn.execute(
        text("SELECT cell_id FROM cell WHERE grid_id = :g AND cell_id = ANY(:c)"), {"g": sc["grid_id"], "c": cell_ids}
    )}
    missing = [c for c in cell_ids if c not in known]
    if missing:
        raise NotFound(f"grid {sc['grid_id']} has no cell(s) {', '.join(missing[:10])}")
    if rm_code is not None:
        check_rm(conn, sc["grid_id"], rm_code)
    conn.execute(
        text(
            "INSERT INTO scenario_cell (scenario_id, cell_id, rm_code, locked) "
            "SELECT :s, c, :r, coalesce(CAST(:l AS boolean), false) FROM unnest(CAST(:c AS text[])) AS c "
            "ON CONFLICT (scenario_id, cell_id) DO UPDATE SET "
            "rm_code = CASE WHEN CAST(:set_rm AS boolean) THEN EXCLUDED.rm_code ELSE scenario_cell.rm_code END, "
            "locked = coalesce(CAST(:l AS boolean), scenario_cell.locked)"
        ),
        {"s": scenario_id, "c": cell_ids, "r": rm_code, "l": locked, "set_rm": rm_code is not None},
    )
    return show_scenario(conn, scenario_id=scenario_id)


def plan_scenario(
    conn: Connection, *, grid_id: int, name: str, user: str, outlets: list[str] | None = None,
    seed: int = 0, weights: dict | None = None, keep_current: bool = False,
    max_distance_km: float | None = None, progress=None, without_rms: list[str] | None = None,
) -> dict:
    """Balance the grid's cells over the RMs of the chosen outlets into a (new or redone) draft.

    ``without_rms``: RMs left out of the plan (one who leaves, or a plan with one RM fewer); their cells
    are free, and with ``keep_current`` every other cell stays with its owner unless balance needs it.
    """
    from grid.territories import TerritoryPlan, nearest_outlet_baseline

    progress = progress or (lambda f, m="": None)
    weights = check_weights(weights)
    existing = conn.execute(
        text("SELECT id FROM scenario WHERE grid_id = :g AND name = :n AND status = 'draft'"), {"g": grid_id, "n": name}
    ).scalar()
    params = {"outlets": outlets, "seed": seed, "weights": weights, "keep_current": keep_current,
              "max_distance_km": max_distance_km, "optimiser": "grid.territories",
              **({"without_rms": sorted(without_rms)} if without_rms else {})}
    if existing is None:
        sc = create_scenario(conn, grid_id=grid_id, name=name, user=user, from_current=True, params=params)
        sid = sc["id"]
    else:
        sid = existing
    progress(0.1, "loading cells and RMs")
    cells = cells_for_planning(conn, grid_id=grid_id)
    rms = rms_for(conn, grid_id=grid_id, outlets=outlets)
    if without_rms:
        unknown = sorted(set(without_rms) - set(rms["rm_id"]))
        if unknown:
            raise NotFound(f"RM(s) {', '.join(unknown)} are not among the RMs planned for grid {grid_id}")
        rms = rms[~rms["rm_id"].isin(set(without_rms))].reset_index(drop=True)
        if rms.empty:
            raise BadInput("no RM is left to plan for")
    start = scenario_assignment(conn, scenario_id=sid)
    locked_cells = {r[0] for r in conn.execute(
        text("SELECT cell_id FROM scenario_cell WHERE scenario_id = :s AND locked"), {"s": sid})}
    rm_set = set(rms["rm_id"])
    locked = {c: start[c] for c in locked_cells if start.get(c) in rm_set}
    current = {c: r for c, r in current_owners(conn, grid_id=grid_id).items() if r in rm_set}
    progress(0.3, f"balancing {len(cells)} cells over {len(rms)} RMs")
    plan = TerritoryPlan.from_geodataframe(
        cells, rms, weights=weights, locked=locked, current=current, keep_current=keep_current,
        max_distance_km=max_distance_km, seed=seed,
    ).solve()
    baseline = nearest_outlet_baseline(plan)
    progress(0.9, "saving the draft")
    new = plan.assignment_series().to_dict()
    _draft(conn, sid)  # still a draft after the solve (another user may have published or discarded it)
    _write_cells(conn, sid, new, locked_cells)
    report = {"plan": plan.report.summary(), "baseline_nearest_outlet": baseline.report.summary(),
              "per_rm": _per_rm(plan.report.per_rm)}
    conn.execute(
        text("UPDATE scenario SET report = CAST(:r AS jsonb), params = params || CAST(:p AS jsonb) WHERE id = :s"),
        {"r": json.dumps(report, default=float), "p": json.dumps(params, default=str), "s": sid},
    )
    progress(1.0, "done")
    return {**show_scenario(conn, scenario_id=sid), "report": report}


def _per_rm(per_rm: pd.DataFrame) -> list[dict]:
    df = per_rm.reset_index() if per_rm.index.name else per_rm
    return json.loads(df.to_json(orient="records"))


def compare(conn: Connection, *, grid_id: int, a: str | int = CURRENT, b: str | int = CURRENT,
            weights: dict | None = None) -> dict:
    """Per-RM workload before/after, cells moved and customers changing RM between two assignments."""
    from grid.territories import evaluate_assignment

    first, second = _assignment(conn, grid_id, a), _assignment(conn, grid_id, b)
    cells = cells_for_planning(conn, grid_id=grid_id)
    involved = sorted(set(first.values()) | set(second.values()))
    rms = rms_for(conn, grid_id=grid_id, rm_codes=involved) if involved else pd.DataFrame(columns=["rm_id"])
    weights = check_weights(weights)
    moved = sorted(c for c in set(first) | set(second) if first.get(c) != second.get(c))
    result = {"grid_id": grid_id, "a": str(a), "b": str(b), "cells_moved": len(moved), "moved": [
        {"cell_id": c, "from_rm": first.get(c), "to_rm": second.get(c)} for c in moved[:5000]
    ]}
    if len(rms):
        known = set(rms["rm_id"])  # once, not once per cell
        sides = []
        for owners in (first, second):
            mine = {c: r for c, r in owners.items() if r in known}
            # An RM who owns nothing in a plan (one who leaves in it) has no target there: the others share it.
            cap = pd.to_numeric(rms["capacity"], errors="coerce").fillna(1.0)
            staff = rms.assign(capacity=cap.where(rms["rm_id"].isin(set(mine.values())), 0.0)) if mine else rms
            rep = evaluate_assignment(cells, staff, mine, weights=weights)
            sides.append((rep, rep.per_rm.set_index("rm"), _sums_per_rm(cells, mine, rms["rm_id"])))
        (ra, pa, sa), (rb, pb, sb) = sides
        result["per_rm"] = [
            {"rm_id": r, "cells_a": int(pa.loc[r, "cells"]), "cells_b": int(pb.loc[r, "cells"]),
             "customers_a": int(sa.at[r, "customers"]), "customers_b": int(sb.at[r, "customers"]),
             "households_a": round(float(sa.at[r, "households"]), 1),
             "households_b": round(float(sb.at[r, "households"]), 1),
             "target_pct_a": _pct(pa.loc[r, "workload"], pa.loc[r, "target"]),
             "target_pct_b": _pct(pb.loc[r, "workload"], pb.loc[r, "target"]),
             "workload_a": round(float(pa.loc[r, "workload"]), 6), "workload_b": round(float(pb.loc[r, "workload"]), 6),
             "deviation_a": _round(pa.loc[r, "deviation"]), "deviation_b": _round(pb.loc[r, "deviation"])}
            for r in pa.index
        ]
        result["summary_a"], result["summary_b"] = ra.summary(), rb.summary()
        result["customers_moved"] = int(cells.set_index("cell_id")["customers"].reindex(moved).fillna(0).sum())
    customers = _customers_between(conn, grid_id, first, second, moved)
    result["customers_changing_rm"] = customers["count"]
    result["handover_sample"] = customers["sample"]
    return result


def _sums_per_rm(cells: pd.DataFrame, owners: dict, rm_ids) -> pd.DataFrame:
    """Customers and households per RM of ``rm_ids`` under ``owners`` (cell_id → RM), 0 for RMs without cells."""
    rm = cells["cell_id"].astype(str).map(owners)
    sums = cells.assign(rm=rm)[rm.notna()].groupby("rm")[["customers", "households"]].sum()
    return sums.reindex(list(rm_ids)).fillna(0.0)


def _pct(workload, target) -> float | None:
    """Workload as a percentage of the RM's target (None for an RM without one)."""
    w, t = float(workload), float(target)
    return round(100.0 * w / t, 1) if t > 0 and np.isfinite(t) and np.isfinite(w) else None


def _round(v, digits: int = 4) -> float | None:
    v = float(v)
    return round(v, digits) if np.isfinite(v) else None


def _customers_between(conn: Connection, grid_id: int, first: dict, second: dict, moved: list[str]) -> dict:
    if not moved:
        return {"count": 0, "sample": []}
    count = conn.execute(
        text("SELECT count(*) FROM customer_cell WHERE grid_id = :g AND cell_id = ANY(:c)"), {"g": grid_id, "c": moved}
    ).scalar()
    rows = conn.execute(
        text("SELECT customer_id, cell_id FROM customer_cell WHERE grid_id = :g AND cell_id = ANY(:c) "
             "ORDER BY customer_id LIMIT 200"), {"g": grid_id, "c": moved}
    ).all()
    return {"count": int(count), "sample": [
        {"customer_id": cid, "cell_id": cell, "from_rm": first.get(cell), "to_rm": second.get(cell)} for cid, cell in rows
    ]}


def publish(conn: Connection, *, scenario_id: int, user: str) -> dict:
    """Make a draft current, writing history, in the caller's transaction; refuses stale drafts."""
    sc = _draft(conn, scenario_id)
    gid = sc["grid_id"]
    target = scenario_assignment(conn, scenario_id=scenario_id)
    owners = current_owners(conn, grid_id=gid)
    changes = {c: target.get(c) for c in set(owners) | set(target)}
    # An RM named by the draft may have left (or been edited in by another path) since.
    for rm in sorted({r for c, r in changes.items() if r is not None and owners.get(c) != r}):
        check_rm(conn, gid, rm)
    out = apply_owner_changes(
        conn, grid_id=gid, changes=changes, user=user, reason=f"published scenario {sc['name']}",
        scenario_id=scenario_id, expected_version=sc["base_version"],
    )
    locked = [r[0] for r in conn.execute(
        text("SELECT cell_id FROM scenario_cell WHERE scenario_id = :s AND locked"), {"s": scenario_id})]
    conn.execute(text("DELETE FROM cell_lock WHERE grid_id = :g"), {"g": gid})
    if locked:
        conn.execute(
            text("INSERT INTO cell_lock (grid_id, cell_id, locked_by, reason) SELECT :g, c, :u, :r "
                 "FROM unnest(CAST(:c AS text[])) AS c"),
            {"g": gid, "c": locked, "u": user, "r": f"scenario {sc['name']}"},
        )
    conn.execute(text("UPDATE scenario SET status = 'published', published_at = now() WHERE id = :s"), {"s": scenario_id})
    return {"scenario_id": scenario_id, "name": sc["name"], "status": "published", **out}


def discard(conn: Connection, *, scenario_id: int) -> dict:
    """Throw a draft away (kept as 'discarded' for the record)."""
    sc = _draft(conn, scenario_id)
    conn.execute(text("UPDATE scenario SET status = 'discarded' WHERE id = :s"), {"s": scenario_id})
    return {"scenario_id": scenario_id, "name": sc["name"], "status": "discarded"}


__all__ = [
    "CURRENT", "compare", "create_scenario", "customers_changing", "discard", "edit_scenario", "find_scenario",
    "list_scenarios", "plan_scenario", "publish", "scenario_assignment", "show_scenario",
]
