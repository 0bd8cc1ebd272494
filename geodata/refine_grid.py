"""Refining a new grid where it is too coarse for the work (issue 17): the customers' workload, the RMs' target.

The cells of a grid being built are split (:mod:`grid.refine`) where their
workload exceeds ``share`` of one RM's target. Workload is the territory
planner's default mix: each measure divided by its county total, weighted as
:data:`geodata.territories.DEFAULT_WEIGHTS` (copied here as :data:`POINT_WEIGHTS`
and :data:`HOUSEHOLD_WEIGHT`: geodata.territories reads grids). Customers,
deposit and loan sit at the customers' points; households where the
apportioning rule puts them (:func:`grid.apportion.household_sources`: a
village's own point, or spread over its group's area).
An RM's target is the county's workload over the capacity of its active RMs
(or over ``rms`` when given).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput

# The planner's default weights (geodata.territories.DEFAULT_WEIGHTS) of the measures customers carry,
# and of households (placed by the apportioning rule: own village points, or spread over group areas).
POINT_WEIGHTS = {"customers": 0.4, "deposit": 0.15, "loan": 0.15}
HOUSEHOLD_WEIGHT = 0.3


@dataclass(frozen=True)
class RefineOptions:
    """Refine a grid being built: cells over ``share`` of an RM's target are split, down to ``max_res``."""

    share: float = 0.2
    rms: float | None = None  # RMs (capacity) sharing the county's work; default: its active RMs
    max_res: int = 11
    village_res: int = 8  # village grids: the H3 resolution a village over the limit is cut by

    def check(self, base_res: int | None) -> RefineOptions:
        """The options, or BadInput naming the field and why."""
        if not (0 < self.share <= 10):
            raise BadInput(f"refine share must be above 0 and at most 10 (of an RM's target), got {self.share!r}")
        if self.rms is not None and not (self.rms > 0):
            raise BadInput(f"refine rms must be above 0, got {self.rms!r}")
        lowest = base_res if base_res is not None else self.village_res
        if not (lowest <= self.max_res <= 13):
            raise BadInput(f"refine max_res must be from the grid's resolution {lowest} to 13, got {self.max_res!r}")
        if not (6 <= self.village_res <= 12):
            raise BadInput(f"refine village_res must be from 6 to 12, got {self.village_res!r}")
        return self


def workload_points(conn: Connection, *, county_code: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """lon, lat and planner workload of every located customer of a county (its legal entity's only)."""
    rows = conn.execute(
        text(
            "SELECT ST_X(geom), ST_Y(geom), deposit_balance, loan_balance FROM customer "
            "WHERE county_code = :c AND geom IS NOT NULL"
            " AND coalesce(legal_entity_id = (SELECT legal_entity_id FROM county WHERE adcode = :c), true)"
        ),
        {"c": county_code},
    ).all()
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    lon, lat, dep, loan = arr.T
    weight = np.zeros(len(arr))
    for name, x in (("customers", np.ones(len(arr))), ("deposit", dep), ("loan", loan)):
        total = float(x.sum())
        if total > 0:
            weight += POINT_WEIGHTS[name] * x / total
    return lon, lat, weight


def county_rms(conn: Connection, *, county_code: str) -> float:
    """Capacity of the active RMs at the county's outlets."""
    return float(conn.execute(
        text("SELECT coalesce(sum(r.capacity), 0) FROM rm r JOIN outlet o ON o.code = r.outlet_code "
             "WHERE r.active AND o.county_code = :c"),
        {"c": county_code},
    ).scalar())


def household_workload(villages, county) -> tuple[np.ndarray, np.ndarray, np.ndarray, gpd.GeoDataFrame]:
    """Households as weighted points and areas (weights: HOUSEHOLD_WEIGHT over the county's placed households)."""
    from grid.apportion import household_sources

    pts, areas = household_sources(villages, county)
    total = float(pts["households"].sum() + areas["households"].sum())
    k = HOUSEHOLD_WEIGHT / total if total > 0 else 0.0
    areas = areas.assign(weight=areas["households"] * k)
    return pts["lon"].to_numpy(float), pts["lat"].to_numpy(float), pts["households"].to_numpy(float) * k, areas


def refine_cells(
    conn: Connection, *, county_code: str, kind: str, resolution: int | None,
    cells: gpd.GeoDataFrame, options: RefineOptions, county=None, villages=None,
) -> tuple[gpd.GeoDataFrame, dict]:
    """The cells refined by the county's work (customers; households when ``villages`` and ``county``
    are given), and what was done (for the grid's build report)."""
    from grid.refine import refine_h3_cells, refine_limit, refine_village_cells

    options = options.check(resolution if kind == "h3" else None)
    rms = options.rms if options.rms is not None else county_rms(conn, county_code=county_code)
    if rms <= 0:
        raise BadInput(f"county {county_code} has no active RMs to size cells for: give refine rms")
    lon, lat, weight = workload_points(conn, county_code=county_code)
    areas = None
    if villages is not None and county is not None and len(villages):
        hx, hy, hw, areas = household_workload(villages, county)
        lon, lat, weight = np.r_[lon, hx], np.r_[lat, hy], np.r_[weight, hw]
    total = float(weight.sum()) + (0.0 if areas is None else float(areas["weight"].sum()))
    limit = refine_limit(total, rms, options.share) if total > 0 else float("inf")
    if kind == "h3":
        fine = refine_h3_cells(cells, lon, lat, weight, limit=limit, max_res=options.max_res, areas=areas)
        fine = fine.assign(label=fine["cell_id"], village_codes=None, township_code=None)
    else:
        fine = refine_village_cells(cells, lon, lat, weight, limit=limit, village_res=options.village_res,
                                    max_res=options.max_res, areas=areas)
        parts = fine["cell_id"] != fine["parent_id"]
        fine.loc[parts, "label"] = fine.loc[parts, "label"] + " · " + fine.loc[parts, "cell_id"].str[-6:]
    split = int(fine.loc[fine["cell_id"] != fine["parent_id"], "parent_id"].nunique())
    report = {
        "share": options.share, "rms": rms, "max_res": options.max_res, "limit_workload": round(limit, 8),
        "cells_split": split, "cells_before": len(cells), "cells_after": len(fine),
        "over_limit_at_max_res": int((fine["workload"] > limit).sum()),
    }
    return fine.drop(columns=["workload"]), report
