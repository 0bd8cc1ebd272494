"""The integer programme of :mod:`grid.sites` handed to a solver: HiGHS (highspy) or CBC (PuLP).

Both take the grouped model (demand groups x useful candidates, group weights,
``k``) and return the chosen candidates, the solver's status text, whether it
proved the optimum, and its relative MIP gap.
"""

from __future__ import annotations

import ctypes
import os
import sys
from contextlib import contextmanager

import numpy as np
import pulp
from scipy.sparse import csr_matrix

from grid.errors import SiteSolverError


@contextmanager
def _stdout_discarded():
    """The process's stdout (file descriptor 1) is discarded meanwhile.

    highspy 1.16 prints its banner to stdout while constructing ``Highs()``,
    before ``output_flag`` can be set; on stdout it would corrupt the one JSON
    object that ``gridmkt ... --json`` prints there, and on stderr it showed in
    the middle of the demo's progress. Nothing else is written meanwhile.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)  # what C/C++ buffered goes out before stdout is back
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def solve_highs(mat: csr_matrix, weight: np.ndarray, k: int, start: np.ndarray,
                 time_limit_s: float | None, mip_gap: float) -> tuple[np.ndarray, str, bool, float]:
    """Solve the grouped MCLP with HiGHS (highspy), warm-started from a feasible ``start``.

    Returns the chosen local candidate indices, HiGHS's status text, whether it
    proved optimality, and the final relative MIP gap.
    """
    import highspy

    n_groups, n_cand = mat.shape
    # columns: x_0..x_{m-1} (open candidate), then y_0..y_{g-1} (group covered)
    # rows: y_g - sum_{j covers g} x_j <= 0 for each g, then sum_j x_j <= k
    per_row = np.diff(mat.indptr) + 1
    starts = np.concatenate([[0], np.cumsum(per_row), [per_row.sum() + n_cand]])
    index = np.empty(starts[-1], dtype=np.int32)
    value = np.empty(starts[-1], dtype=float)
    first = starts[:-2]
    index[first] = n_cand + np.arange(n_groups)
    value[first] = 1.0
    rest = np.ones(starts[-2], dtype=bool)
    rest[first] = False
    index[:starts[-2]][rest] = mat.indices
    value[:starts[-2]][rest] = -1.0
    index[starts[-2]:] = np.arange(n_cand)
    value[starts[-2]:] = 1.0

    lp = highspy.HighsLp()
    lp.num_col_ = n_cand + n_groups
    lp.num_row_ = n_groups + 1
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.concatenate([np.zeros(n_cand), weight])
    lp.col_lower_ = np.zeros(lp.num_col_)
    lp.col_upper_ = np.ones(lp.num_col_)
    lp.row_lower_ = np.full(lp.num_row_, -highspy.kHighsInf)
    lp.row_upper_ = np.concatenate([np.zeros(n_groups), [float(k)]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = starts.astype(np.int32)
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_cand + [highspy.HighsVarType.kContinuous] * n_groups

    with _stdout_discarded():
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", float(mip_gap))
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    h.passModel(lp)
    # the greedy answer as incumbent: a stopped solve is never worse than greedy
    x0 = np.zeros(n_cand)
    x0[start] = 1.0
    y0 = (np.asarray(mat @ x0) > 0).astype(float)
    sol = highspy.HighsSolution()
    sol.col_value = np.concatenate([x0, y0]).tolist()
    sol.value_valid = True
    h.setSolution(sol)
    h.run()
    status = h.getModelStatus()
    text = h.modelStatusToString(status)
    col = np.asarray(h.getSolution().col_value, dtype=float)
    if len(col) < n_cand:  # no incumbent reported back: keep the warm start
        return start, text, False, float("nan")
    optimal = status == highspy.HighsModelStatus.kOptimal
    gap = 0.0 if optimal else float(h.getInfo().mip_gap)
    return np.flatnonzero(col[:n_cand] > 0.5), text, optimal, gap


def solve_pulp(mat: csr_matrix, weight: np.ndarray, k: int, solver: str,
                time_limit_s: float | None, mip_gap: float) -> tuple[np.ndarray, str, bool, float]:
    """Solve the grouped MCLP through PuLP (CBC), as an independent cross-check of HiGHS."""
    backend = pulp.COIN_CMD(msg=False, timeLimit=time_limit_s, gapRel=mip_gap)
    if not backend.available():
        # PuLP 3.x deprecates its bundled CBC binary but still ships it
        backend = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=mip_gap)
    if not backend.available():
        raise SiteSolverError(f"solver {solver!r} is not available in this environment")
    prob = pulp.LpProblem("mclp", pulp.LpMaximize)
    add = getattr(prob, "add_variable", None)

    def var(name: str, cat: str) -> pulp.LpVariable:
        # PuLP 3.x deprecates building LpVariable directly; 2.x lacks add_variable
        return add(name, 0, 1, cat=cat) if add else pulp.LpVariable(name, 0, 1, cat=cat)

    x = [var(f"x{j}", pulp.LpBinary) for j in range(mat.shape[1])]
    ys = []
    for g in range(mat.shape[0]):
        y = var(f"y{g}", pulp.LpContinuous)
        ys.append((y, float(weight[g])))
        cols = mat.indices[mat.indptr[g]:mat.indptr[g + 1]]
        expr = pulp.LpAffineExpression([(y, 1.0)] + [(x[j], -1.0) for j in cols])
        prob += pulp.LpConstraint(expr, sense=pulp.LpConstraintLE, rhs=0.0)
    prob += pulp.LpAffineExpression(ys)
    prob += pulp.LpConstraint(pulp.LpAffineExpression([(v, 1.0) for v in x]),
                              sense=pulp.LpConstraintLE, rhs=k)
    prob.solve(backend)
    optimal = prob.sol_status == pulp.LpSolutionOptimal
    chosen = np.flatnonzero([(v.varValue or 0.0) > 0.5 for v in x])
    return chosen, pulp.LpSolution[prob.sol_status], optimal, 0.0 if optimal else float("nan")
