"""Territory plan report: balance, contiguity, compactness, distance and churn of an assignment."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from grid.territories.bounds import (
    achievable_targets,
    deviation_bound,
    heaviest_cell,
    unreachable_reasons,
)
from grid.territories.graph import pieces_per_owner


@dataclass
class PlanReport:
    """Figures of one assignment; ``per_rm`` has one row per RM, the rest are plan totals."""

    per_rm: pd.DataFrame
    max_abs_deviation: float
    cv: float
    contiguity: float
    compactness_mean: float
    mean_km: float
    max_km: float
    cells_changed: int
    customers_changed: float
    empty_rms: int
    beyond_max_distance: int
    virtual_edges_used: int
    notes: list[str] = field(default_factory=list)
    deviation_bound: float = 0.0
    indivisible_share: float = 0.0
    adjusted_max_deviation: float = 0.0
    per_region: pd.DataFrame | None = None
    # Why the raw max deviation cannot reach 5% (in words, per region when there are regions); empty if it can.
    unreachable: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Plan totals as a plain dict (JSON-ready)."""
        return {
            "rms": int(len(self.per_rm)),
            "cells": int(self.per_rm["cells"].sum()),
            "max_abs_deviation": round(self.max_abs_deviation, 4),
            "cv": round(self.cv, 4),
            "contiguity": round(self.contiguity, 4),
            "compactness_mean": None if math.isnan(self.compactness_mean) else round(self.compactness_mean, 4),
            "mean_km": round(self.mean_km, 3),
            "max_km": round(self.max_km, 3),
            "cells_changed": self.cells_changed,
            "customers_changed": float(self.customers_changed),
            "empty_rms": self.empty_rms,
            "beyond_max_distance": self.beyond_max_distance,
            "virtual_edges_used": self.virtual_edges_used,
            "deviation_bound": round(self.deviation_bound, 4),
            "indivisible_share": round(self.indivisible_share, 4),
            "adjusted_max_deviation": round(self.adjusted_max_deviation, 4),
            "regions": 1 if self.per_region is None else int(len(self.per_region)),
            "unreachable_5pct": list(self.unreachable),
        }


def polsby_popper(geoms: np.ndarray, assignment: np.ndarray, k: int) -> np.ndarray:
    """Polsby-Popper compactness 4πA/P² of each owner's dissolved metric cells (NaN if none).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> g = np.array([box(0, 0, 1, 1), box(1, 0, 2, 1), box(5, 5, 6, 6)])
    >>> np.round(polsby_popper(g, np.array([0, 0, 1]), 3), 3).tolist()
    [0.698, 0.785, nan]
    """
    out = np.full(k, np.nan)
    a = np.asarray(assignment)
    order = np.argsort(a, kind="stable")
    bounds = np.searchsorted(a[order], np.arange(k + 1))
    for r in range(k):
        members = order[bounds[r] : bounds[r + 1]]
        if len(members) == 0:
            continue
        # A tiny snap merges float-noisy shared edges so they do not count as perimeter.
        shape = shapely.union_all(geoms[members], grid_size=0.01)
        perim = shape.length
        if perim > 0:
            out[r] = 4 * math.pi * shape.area / perim**2
    return out


def plan_report(
    assignment: np.ndarray,
    workload: np.ndarray,
    adjacency,
    rm_home_xy: np.ndarray,
    cell_xy: np.ndarray,
    capacity: np.ndarray,
    *,
    travel: float = 0.0,
    current: np.ndarray | None = None,
    customers: np.ndarray | None = None,
    geometry: np.ndarray | None = None,
    rm_ids=None,
    virtual_edges: np.ndarray | None = None,
    max_distance_km: float | None = None,
    regions: tuple[np.ndarray, np.ndarray] | None = None,
    locked: np.ndarray | None = None,
) -> PlanReport:
    """Report on an assignment of cells (rows) to RMs (rows; -1 = unowned).

    Parameters
    ----------
    assignment : ndarray (n,) int
    workload : ndarray (n,)
        Owner-independent workload per cell.
    adjacency : sparse (n, n)
        Cell graph used for contiguity (with virtual edges when the islands rule applies).
    rm_home_xy, cell_xy : ndarray (k, 2), (n, 2)
        Metres.
    capacity : ndarray (k,)
        Targets are the total workload split in proportion to capacity; RMs with
        capacity 0 have no target and are left out of deviation figures.
    travel : float
        Workload added per metre between a cell and its owner's home.
    current : ndarray (n,) int, optional
        Owners before the plan, for ``cells_changed`` / ``customers_changed``.
    customers : ndarray (n,), optional
        Customers per cell (``customers_changed``).
    geometry : ndarray of metric polygons (n,), optional
        For Polsby-Popper compactness (NaN without it).
    regions : (ndarray (n,), ndarray (k,)), optional
        Region label of each cell and each RM: targets are then each region's
        workload split over its own RMs, and ``per_region`` holds the figures per region.
    locked : ndarray (n,) int, optional
        RM row each cell is locked to (-1 free), for the deviation bound.

    Returns
    -------
    PlanReport
        ``deviation`` is (workload - target) / target; ``cv`` is the coefficient of
        variation of workload / target over RMs with capacity; ``contiguity`` is the
        share of non-empty territories that are one connected piece.
        ``deviation_bound`` is a lower bound on the max deviation of any plan of
        whole cells (:func:`grid.territories.bounds.deviation_bound`), with a note
        when it is above 0; ``adjusted_max_deviation`` is the max deviation from
        the achievable targets, as the solver balances them (an RM whose heaviest
        cell exceeds its target is judged against what that cell would cost an
        RM of the region's largest capacity, the others share the rest).

    Examples
    --------
    >>> from grid.territories.graph import pairs_to_csr
    >>> adj = pairs_to_csr(np.array([[0, 1], [1, 2], [2, 3]]), 4)
    >>> xy = np.array([[0, 0], [1, 0], [2, 0], [3, 0]], dtype=float)
    >>> r = plan_report(np.array([0, 0, 1, 1]), np.ones(4), adj, xy[[0, 3]], xy, np.ones(2))
    >>> r.max_abs_deviation, r.contiguity
    (0.0, 1.0)
    """
    a = np.asarray(assignment, dtype=np.int64)
    k = len(capacity)
    cap = np.asarray(capacity, dtype=float)
    owned = a >= 0
    dist = np.full(len(a), np.nan)
    dist[owned] = np.hypot(*(np.asarray(cell_xy)[owned] - np.asarray(rm_home_xy)[a[owned]]).T)
    load = np.bincount(a[owned], weights=np.asarray(workload, dtype=float)[owned], minlength=k)
    if travel:
        load += travel * np.bincount(a[owned], weights=dist[owned], minlength=k)
    active = cap > 0
    cell_w = np.where(owned, np.asarray(workload, dtype=float), 0.0)
    if travel:
        cell_w[owned] += travel * dist[owned]
    balance = _balance(a, cell_w, np.asarray(workload, dtype=float), load, cap, regions, locked)
    target = balance["target"]
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(active, (load - target) / target, np.nan)
        ratio = np.where(active, load / target, np.nan)
    cells = np.bincount(a[owned], minlength=k)
    pieces = pieces_per_owner(adjacency, a, k)
    km = dist / 1000.0
    mean_km = np.bincount(a[owned], weights=km[owned], minlength=k) / np.maximum(cells, 1)
    max_km = np.zeros(k)
    np.maximum.at(max_km, a[owned], km[owned])
    pp = polsby_popper(np.asarray(geometry), a, k) if geometry is not None else np.full(k, np.nan)
    per_rm = pd.DataFrame(
        {
            "rm": list(rm_ids) if rm_ids is not None else np.arange(k),
            "capacity": cap,
            "cells": cells,
            "workload": load,
            "target": target,
            "deviation": dev,
            "pieces": pieces,
            "contiguous": pieces == 1,
            "polsby_popper": pp,
            "mean_km": np.where(cells > 0, mean_km, np.nan),
            "max_km": np.where(cells > 0, max_km, np.nan),
        }
    )
    nonempty = cells > 0
    notes: list[str] = []
    if (~owned).any():
        notes.append(f"{int((~owned).sum())} cells have no owner")
    broken = per_rm.loc[nonempty & (pieces > 1), "rm"].tolist()
    if broken:
        notes.append(f"territories not contiguous (locks or islands make it impossible): {broken}")
    empty = int((active & ~nonempty).sum())
    if empty:
        notes.append(f"{empty} RMs have no cells (more RMs than reachable cells)")
    changed, cust_changed = 0, 0.0
    if current is not None:
        cur = np.asarray(current)
        moved = cur != a
        changed = int(moved.sum())
        if customers is not None:
            cust_changed = float(np.asarray(customers, dtype=float)[moved].sum())
    beyond = 0
    if max_distance_km is not None:
        beyond = int((km[owned] > max_distance_km).sum())
        if beyond:
            notes.append(f"{beyond} cells lie beyond {max_distance_km} km of their RM's home")
    used = 0
    if virtual_edges is not None and len(virtual_edges):
        ve = np.asarray(virtual_edges)
        used = int(((a[ve[:, 0]] == a[ve[:, 1]]) & (a[ve[:, 0]] >= 0)).sum())
    rv = ratio[active & np.isfinite(ratio)]
    bound = float(balance["bound"])
    if balance["share"] > 1:
        notes.append(
            f"the heaviest cell holds {balance['share']:.2f} times the largest target: no plan of whole cells "
            f"can bring the max deviation below {bound:.1%} (judge the plan against that bound)"
        )
    elif bound > 0:
        notes.append(f"locked cells or too few cells: the max deviation cannot go below {bound:.1%}")
    if balance["reasons"]:
        notes.append("a raw max deviation of 5% cannot be reached: " + "; ".join(balance["reasons"]))
    return PlanReport(
        per_rm=per_rm,
        max_abs_deviation=float(np.nanmax(np.abs(dev))) if active.any() else 0.0,
        cv=float(rv.std() / rv.mean()) if len(rv) and rv.mean() > 0 else 0.0,
        contiguity=float((pieces[nonempty] == 1).mean()) if nonempty.any() else 1.0,
        compactness_mean=float(np.nanmean(pp)) if np.isfinite(pp).any() else math.nan,
        mean_km=float(np.nanmean(km)) if owned.any() else 0.0,
        max_km=float(np.nanmax(km)) if owned.any() else 0.0,
        cells_changed=changed,
        customers_changed=cust_changed,
        empty_rms=empty,
        beyond_max_distance=beyond,
        virtual_edges_used=used,
        notes=notes,
        deviation_bound=bound,
        indivisible_share=float(balance["share"]),
        adjusted_max_deviation=float(balance["adjusted"]),
        per_region=balance["per_region"],
        unreachable=balance["reasons"],
    )


def _region_rows(regions, n: int, k: int) -> tuple[list, np.ndarray, np.ndarray]:
    """Region labels, and each cell's and RM's label index (all 0 without regions)."""
    if regions is None:
        return [None], np.zeros(n, dtype=np.int64), np.zeros(k, dtype=np.int64)
    cell_reg, rm_reg = (np.asarray(x, dtype=object) for x in regions)
    labels = sorted(set(cell_reg.tolist()) | set(rm_reg.tolist()), key=str)
    index = {g: i for i, g in enumerate(labels)}
    return labels, np.array([index[g] for g in cell_reg]), np.array([index[g] for g in rm_reg])


def _balance(a, cell_w, base, load, cap, regions, locked) -> dict:
    """Targets per region, the deviation bound, the indivisible share and the deviation from achievable targets."""
    k, n = len(cap), len(a)
    labels, creg, rreg = _region_rows(regions, n, k)
    target = np.zeros(k)
    floor = heaviest_cell(a, cell_w, k)
    rows, bound, share, adjusted, reasons = [], 0.0, 0.0, 0.0, []
    for g, label in enumerate(labels):
        rms, cells = rreg == g, creg == g
        total = float(load[rms].sum())
        c = np.where(rms, cap, 0.0)
        if c.sum() > 0:
            target[rms] = total * c[rms] / c.sum()
        lk = None if locked is None else np.where(np.asarray(locked)[cells] >= 0, np.asarray(locked)[cells], -1)
        b, sh, _ = deviation_bound(base[cells], c, total, locked=lk)
        why = unreachable_reasons(base[cells], c, total, locked=lk)
        reasons += [why_ if label is None else f"{label}: {why_}" for why_ in why]
        act = rms & (cap > 0)
        adj = 0.0
        if act.any() and total > 0:
            # The heavy-cell excuse scaled to the holder's capacity, as in the solver (territories_solver._deviation).
            excuse = floor * c / c[act].max()
            goal = achievable_targets(total, c, np.where(rms, excuse, 0.0))
            level = (goal[act] / cap[act]).min()
            if level > 0:
                adj = float(np.abs((load[act] - goal[act]) / (level * cap[act])).max())
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = (load[act] - target[act]) / target[act]
            ratio = load[act] / target[act]
        rows.append({
            "region": label, "cells": int(cells.sum()), "rms": int(act.sum()), "workload": total,
            "max_abs_deviation": float(np.nanmax(np.abs(dev))) if act.any() else 0.0,
            "cv": float(np.nanstd(ratio) / np.nanmean(ratio)) if act.any() and np.nanmean(ratio) > 0 else 0.0,
            "deviation_bound": b, "indivisible_share": sh, "adjusted_max_deviation": adj,
            "unreachable_5pct": "; ".join(why),
        })
        bound, share, adjusted = max(bound, b), max(share, sh), max(adjusted, adj)
    per_region = None if regions is None else pd.DataFrame(rows)
    return {"target": target, "bound": bound, "share": share, "adjusted": adjusted, "per_region": per_region,
            "reasons": reasons}

