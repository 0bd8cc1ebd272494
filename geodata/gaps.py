"""Coverage-gap measures, scores and site suggestions for a grid version (store side of grid.gaps).

Measures come from ``cell_stat`` (after ``assign customers``), current
ownership by active RMs (the cells of an RM marked inactive have no owner
until they are handed over), leads, and straight-line distances to the nearest outlet and
service point, measured in the metric projection (grid.projection). Scores
are stored per computation run (``gap_run``) with the grid version and time,
so the latest one is what maps and exports show.

One reference date per run (``gap_run.as_of``, default now): the visit
measures (``visits_90d``, ``customers_visited_90d``, ``last_visit_at`` in
``cell_stat``) are counted again as of it before scoring, and "days since the
last visit" is measured from it, so a reason never contradicts a measure.
"""

from __future__ import annotations

import io
import json
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata import assign
from geodata.errors import BadInput, NotFound
from geodata.grids import get_grid, load_cells
from geodata.visit_measures import reference_time, refresh_visit_stats
from grid.projection import metric_crs, project_points


def _points(conn: Connection, table: str, grid_id: int) -> np.ndarray:
    """Outlets or service points of the bank that owns the grid's county (all, if the county has none)."""
    sql = {"outlet": "SELECT ST_X(p.geom), ST_Y(p.geom) FROM outlet p",
           "service_point": "SELECT ST_X(p.geom), ST_Y(p.geom) FROM service_point p"}[table]
    rows = conn.execute(text(
        sql + " WHERE (SELECT c.legal_entity_id FROM grid g JOIN county c ON c.adcode = g.county_code "
        "WHERE g.id = :g) IS NULL OR p.legal_entity_id = (SELECT c.legal_entity_id FROM grid g "
        "JOIN county c ON c.adcode = g.county_code WHERE g.id = :g)"), {"g": grid_id}).all()
    return np.array(rows, dtype=float).reshape(-1, 2)


def nearest_km(cell_lonlat: np.ndarray, facility_lonlat: np.ndarray, crs) -> np.ndarray:
    """Straight-line km from each cell point to the nearest facility (NaN when there is none)."""
    if len(facility_lonlat) == 0:
        return np.full(len(cell_lonlat), np.nan)
    fx, fy = project_points(facility_lonlat[:, 0], facility_lonlat[:, 1], crs)
    cx, cy = project_points(cell_lonlat[:, 0], cell_lonlat[:, 1], crs)
    d, _ = cKDTree(np.column_stack([fx, fy])).query(np.column_stack([cx, cy]))
    return d / 1000.0


def _cells(conn: Connection, grid_id: int) -> gpd.GeoDataFrame:
    """The grid's cells with their statistics; BadInput when it has none (nothing to score or cover)."""
    cells = load_cells(conn, grid_id=grid_id, with_stats=True)
    if cells.empty:
        raise BadInput(f"grid {grid_id} has no cells")
    return cells


# Each cell's current owner, if active: an RM marked inactive (left the bank) works no cell, so until
# handed over their cells have no owner. What scores measure, and what staleness compares with.
_ACTIVE_OWNERS = ("SELECT t.cell_id, t.rm_code FROM territory t JOIN rm r ON r.code = t.rm_code"
                  " WHERE t.grid_id = :g AND t.role = 'owner' AND t.valid_to IS NULL AND r.active")


def cell_measures(conn: Connection, *, grid_id: int, as_of: str | None = None) -> gpd.GeoDataFrame:
    """One row per cell with the columns grid.gaps.score_cells expects, plus geometry.

    ``days_since_visit`` is measured from ``as_of`` (default now); the visit counts are read from
    ``cell_stat`` as stored (:func:`score_grid` counts them again as of the same date first).
    """
    g = get_grid(conn, grid_id=grid_id)
    if g["assigned_at"] is None:
        raise BadInput(f"grid {grid_id} has no customer assignment yet: assign its customers first")
    cells = _cells(conn, grid_id)
    owners = dict(conn.execute(text(_ACTIVE_OWNERS), {"g": grid_id}).all())
    leads = dict(conn.execute(
        text("SELECT cc.cell_id, count(*) FROM lead l JOIN customer_cell cc ON cc.customer_id = l.customer_id "
             "AND cc.grid_id = :g WHERE l.status = 'open' AND cc.cell_id IS NOT NULL GROUP BY cc.cell_id"),
        {"g": grid_id}).all())
    now = reference_time(as_of)
    reps = shapely.point_on_surface(cells.geometry.to_numpy())
    lonlat = shapely.get_coordinates(reps)
    crs = metric_crs(cells)
    last = pd.to_datetime(cells["last_visit_at"], utc=True)
    out = gpd.GeoDataFrame({
        "cell_id": cells["cell_id"],
        "label": cells["label"],
        "households": cells["households"].astype(float),
        "population": cells["population"].astype(float),
        "customers": cells["customers"].fillna(0).astype(float),
        "deposit": cells["deposit"].fillna(0).astype(float),
        "loan": cells["loan"].fillna(0).astype(float),
        "owner_rm": cells["cell_id"].map(owners),
        "visits_90d": cells["visits_90d"].fillna(0).astype(float),
        "customers_visited_90d": cells["customers_visited_90d"].fillna(0).astype(float),
        "days_since_visit": ((now - last).dt.total_seconds() / 86400.0).astype(float),
        "dist_outlet_km": nearest_km(lonlat, _points(conn, "outlet", grid_id), crs),
        "dist_service_point_km": nearest_km(lonlat, _points(conn, "service_point", grid_id), crs),
        "open_leads": cells["cell_id"].map(leads).fillna(0).astype(float),
        "apportioned": cells["apportioned"].fillna(False).astype(bool),
    }, geometry=cells.geometry, crs=4326)
    return out


def score_grid(conn: Connection, *, grid_id: int, config_text: str | None = None, trigger: str = "manual",
               as_of: str | None = None, config=None) -> dict:
    """Score every cell, store the run, return a summary with the top blank areas.

    The weights are ``config`` (a :class:`grid.gaps.GapConfig`), else ``config_text`` (TOML), else the
    packaged defaults. ``as_of`` (default now) is the run's one reference date: the cells' visit
    measures are counted again as of it, days since the last visit measured from it, and it is
    stored on the run (``gap_run.as_of``) and returned."""
    from grid.gaps import GapConfig, rank_blank_areas, score_cells

    if config is None:
        config = GapConfig.from_toml_text(config_text) if config_text else GapConfig.default()
    when = refresh_visit_stats(conn, grid_id=grid_id, as_of=as_of)
    measures = cell_measures(conn, grid_id=grid_id, as_of=when)
    scores = score_cells(pd.DataFrame(measures.drop(columns=["geometry", "label"])), config)
    run_id = conn.execute(
        text("INSERT INTO gap_run (grid_id, config, trigger, as_of) VALUES (:g, CAST(:c AS jsonb), :t, :a) RETURNING id"),
        {"g": grid_id, "c": json.dumps(_config_dict(config), default=float), "t": trigger, "a": when.to_pydatetime()},
    ).scalar_one()
    _copy_scores(conn, run_id, scores, measures)
    blanks = rank_blank_areas(scores, top=20)
    counts = scores["gap_class"].value_counts().to_dict()
    return {
        "grid_id": grid_id, "gap_run_id": run_id, "as_of": when.isoformat(), "cells": len(scores),
        "classes": {k: int(counts.get(k, 0)) for k in ("blank", "under-served", "covered", "no-potential")},
        "score_mean": round(float(scores["score"].mean()), 2) if len(scores) else 0.0,
        "top_blank": blanks[["cell_id", "score", "reason_zh", "reason_en"]].to_dict("records"),
    }


def _copy_scores(conn: Connection, run_id: int, scores: pd.DataFrame, measures: pd.DataFrame) -> None:
    """COPY one gap_score row per scored cell, the JSON and text built column by column."""
    n = len(scores)
    comp_cols = [c for c in scores.columns if c.startswith(("comp_", "contrib_"))]
    measure_cols = [c for c in measures.columns if c not in ("geometry", "cell_id", "label")]
    # the measures in the scores' row order (score_cells sorts by cell_id)
    m = pd.DataFrame(measures.drop(columns=["geometry"])).set_index("cell_id").reindex(scores["cell_id"].to_numpy())
    comps = _json_objects({c: _json_values(scores[c]) for c in comp_cols}, n)
    meas = {c: _json_values(m[c]) for c in measure_cols}
    for c in ("penetration", "balance_per_household"):
        meas[c] = _json_values(scores[c]) if c in scores else ["null"] * n
    columns = [
        [str(run_id)] * n, [str(v) for v in scores["cell_id"].tolist()],
        [repr(v) for v in scores["score"].to_numpy(dtype=float).tolist()], [str(v) for v in scores["gap_class"].tolist()],
        comps, _json_objects(meas, n), [v or "" for v in scores["reason_zh"].tolist()],
        [v or "" for v in scores["reason_en"].tolist()],
    ]
    line = "\t".join(["%s"] * len(columns)) + "\n"
    buf = io.StringIO("".join(map(line.__mod__, zip(*map(_copy_text, columns), strict=True))))
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.copy_expert("COPY gap_score (gap_run_id, cell_id, score, gap_class, components, measures, reason_zh, "
                        "reason_en) FROM STDIN", buf)


def _num(v):
    """One stored JSON value: numbers rounded to 6 decimals, missing or non-finite numbers as null."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer, np.floating, int, float)):
        return round(float(v), 6)
    return v


def _json_values(values) -> list[str]:
    """JSON text of each value, as ``json.dumps(_num(v), ensure_ascii=False)`` writes it, for a whole column."""
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind == "b":
        return np.where(arr, "true", "false").tolist()
    if arr.dtype.kind in "iuf":
        f = np.ascontiguousarray(arr, dtype=float)
        # each distinct value (by its bits, so -0.0 stays apart from 0.0) is formatted once
        bits, inverse = np.unique(f.view(np.int64), return_inverse=True)
        text_ = np.array([repr(round(v, 6)) if math.isfinite(v) else "null" for v in bits.view(np.float64).tolist()],
                         dtype=object)
        return text_[inverse.reshape(-1)].tolist()
    return [json.dumps(_num(v), ensure_ascii=False) for v in arr.tolist()]


def _json_objects(columns: dict[str, list[str]], n: int) -> list[str]:
    """Per row, the JSON object of the columns' JSON texts (key order and spacing as json.dumps writes them)."""
    if not columns:
        return ["{}"] * n
    template = "{" + ", ".join(json.dumps(k, ensure_ascii=False).replace("%", "%%") + ": %s" for k in columns) + "}"
    return list(map(template.__mod__, zip(*columns.values(), strict=True)))


def _copy_text(values: list[str]) -> list[str]:
    """Values as fields of COPY's text format: backslashes doubled, tabs and newlines as spaces."""
    joined = "".join(values)
    if "\\" not in joined and "\t" not in joined and "\n" not in joined:
        return values
    return [v.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ") for v in values]


def _config_dict(config) -> dict:
    from dataclasses import fields

    out = {f.name: getattr(config, f.name) for f in fields(config)}
    out["weights"] = dict(out["weights"])
    return out


def latest_run(conn: Connection, *, grid_id: int) -> dict | None:
    """The newest gap run of a grid (None when never scored): when computed, the date it scored as of
    (``as_of``), and the weights and thresholds it used."""
    row = conn.execute(
        text("SELECT id, computed_at, as_of, trigger, config FROM gap_run WHERE grid_id = :g ORDER BY id DESC LIMIT 1"),
        {"g": grid_id},
    ).mappings().first()
    return dict(row) if row else None


def staleness(conn: Connection, *, grid_id: int, run: dict) -> dict:
    """What changed since a gap run that its scores do not show yet.

    Publishing a scenario and imports rescore by themselves (``geodata.refresh``);
    a manual territory change (assign, move, hand-over), a new customer
    assignment or a check-in does not. Counted: cells whose active owner is not
    the one the run scored, whether customers were assigned again after it,
    customers imported after the grid was last assigned
    (``assign.assignment_staleness``), and visits checked in since.
    """
    owners_changed = conn.execute(text(
        f"SELECT count(*) FROM gap_score s LEFT JOIN ({_ACTIVE_OWNERS}) o ON o.cell_id = s.cell_id"
        " WHERE s.gap_run_id = :r AND (s.measures->>'owner_rm') IS DISTINCT FROM o.rm_code"),
        {"g": grid_id, "r": run["id"]}).scalar_one()
    assigned_since = bool(conn.execute(text("SELECT coalesce(assigned_at > :t, false) FROM grid WHERE id = :g"),
                                       {"g": grid_id, "t": run["computed_at"]}).scalar())
    # Check-ins update their cell's visit measures at once (geodata.visits.checkins); the scores wait for a rescore.
    checkins = conn.execute(text(
        "SELECT count(*) FROM visit v JOIN customer_cell cc ON cc.grid_id = :g AND cc.customer_id = v.customer_id"
        " WHERE v.received_at > :t"), {"g": grid_id, "t": run["computed_at"]}).scalar_one()
    reasons = []
    if checkins:
        reasons.append(f"{checkins} visit(s) checked in since scoring")
    if owners_changed:
        reasons.append(f"{owners_changed} cell(s) have another owner than when scored")
    if assigned_since:
        reasons.append("customers were assigned to cells again after scoring")
    # Customers imported after the last assignment (its automatic re-run never happened, a crash):
    # scores and cell figures count them where they were.
    reasons += assign.assignment_staleness(conn, grid_id=grid_id)
    return {"stale": bool(reasons), "stale_reasons": reasons, "cells_owner_changed": int(owners_changed),
            "checkins_since": int(checkins)}


def latest_scores(conn: Connection, *, grid_id: int, gap_class: str | None = None,
                  cell_ids: list[str] | None = None) -> pd.DataFrame:
    """Latest score, class, components, measures and reasons per cell; ``attrs['gap_run']`` is the run,
    with :func:`staleness` (``stale``, ``stale_reasons``, ``cells_owner_changed``)."""
    run = latest_run(conn, grid_id=grid_id)
    if run is None:
        raise NotFound(f"grid {grid_id} has no gap scores yet: score it first")
    run = {**run, **staleness(conn, grid_id=grid_id, run=run)}
    rows = conn.execute(
        text("SELECT cell_id, score, gap_class, components, measures, reason_zh, reason_en FROM gap_score "
             "WHERE gap_run_id = :r AND (CAST(:k AS text) IS NULL OR gap_class = :k) "
             "AND (CAST(:ids AS text[]) IS NULL OR cell_id = ANY(:ids)) ORDER BY score DESC, cell_id"),
        {"r": run["id"], "k": gap_class, "ids": cell_ids},
    ).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows])
    df.attrs["gap_run"] = run
    return df


def blank_areas(conn: Connection, *, grid_id: int, top: int = 50) -> list[dict]:
    """Blank cells ranked by score, with the reason in plain words (zh and en)."""
    df = latest_scores(conn, grid_id=grid_id, gap_class="blank")
    return df.head(top).to_dict("records") if len(df) else []


def suggest_sites(conn: Connection, *, grid_id: int, count: int, radius_km: float,
                  candidates: pd.DataFrame | None = None) -> dict:
    """Up to ``count`` new service-point sites maximising households newly covered within ``radius_km``.

    ``candidates`` (lon, lat[, name] in WGS84) default to every cell's representative point; given
    ones outside the grid's county are left out and named in ``candidates_outside_county``.
    """
    from grid.sites import suggest_sites as mclp

    if count < 1 or radius_km <= 0:
        raise BadInput("count must be at least 1 and radius_km above 0")
    cells = _cells(conn, grid_id)
    if cells["households"].isna().all():
        raise BadInput(f"grid {grid_id} has no household statistics: assign its customers first")
    crs = metric_crs(cells)
    demand = shapely.get_coordinates(shapely.point_on_surface(cells.geometry.to_numpy()))
    dx, dy = project_points(demand[:, 0], demand[:, 1], crs)
    weight = cells["households"].fillna(0).to_numpy(dtype=float)
    outside: list[str] = []
    if candidates is None:
        cand_lonlat, cand_ids = demand, cells["cell_id"].tolist()
    else:
        cand_lonlat = candidates[["lon", "lat"]].to_numpy(dtype=float)
        cand_ids = candidates.get("name", pd.Series(range(len(candidates)))).astype(str).tolist()
        bad = np.flatnonzero(~np.isfinite(cand_lonlat).all(axis=1))
        if len(bad):
            raise BadInput(f"candidates: row {bad[0] + 1} ({cand_ids[bad[0]]}) has no valid lon/lat")
        # the bank opens service points in its own county only: candidates in no cell are left out
        points = shapely.points(cand_lonlat)
        inside = np.zeros(len(cand_lonlat), dtype=bool)
        inside[shapely.STRtree(cells.geometry.to_numpy()).query(points, predicate="intersects")[0]] = True
        outside = [n for n, ok in zip(cand_ids, inside, strict=True) if not ok]
        if not inside.any():
            raise BadInput(f"candidates: none of the {len(cand_ids)} points lies inside the county of grid {grid_id}")
        cand_lonlat, cand_ids = cand_lonlat[inside], [n for n, ok in zip(cand_ids, inside, strict=True) if ok]
    cx, cy = project_points(cand_lonlat[:, 0], cand_lonlat[:, 1], crs)
    existing = np.vstack([_points(conn, "outlet", grid_id), _points(conn, "service_point", grid_id)])
    ex, ey = project_points(existing[:, 0], existing[:, 1], crs) if len(existing) else (np.array([]), np.array([]))
    res = mclp(np.column_stack([dx, dy]), weight, np.column_stack([cx, cy]), np.column_stack([ex, ey]),
               count, radius_km)
    running = res.covered_before
    suggestions = []
    for rank, (ci, gain) in enumerate(zip(res.chosen, res.newly_covered, strict=True), start=1):
        running += float(gain)
        suggestions.append({
            "rank": rank, "candidate": cand_ids[int(ci)], "lon": round(float(cand_lonlat[ci, 0]), 6),
            "lat": round(float(cand_lonlat[ci, 1]), 6), "households_newly_covered": round(float(gain), 1),
            "households_covered_after": round(running, 1),
        })
    return {
        "grid_id": grid_id, "radius_km": radius_km, "count": count, "method": res.method,
        "status": res.status, "optimal": bool(res.optimal), "total_households": round(res.total_demand, 1),
        "households_covered_before": round(res.covered_before, 1),
        "households_covered_after": round(res.covered_after, 1), "suggestions": suggestions,
        **({"candidates_outside_county": outside} if candidates is not None else {}),
    }
