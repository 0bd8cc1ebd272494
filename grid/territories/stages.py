"""The improving stages of a plan, after its start: balance, compound moves, smoothing.

Each stage stops at the plan's tolerance or when the work budget
(:mod:`grid.territories.budget`, ``p.budget``) is spent; the order and the
reasons are in :mod:`grid.territories.solver`.
"""

from __future__ import annotations

import numpy as np

from grid.territories.budget import Budget
from grid.territories.chain import chain_moves
from grid.territories.recom import recombine, swap_territories
from grid.territories.smooth import smooth
from grid.territories.solver import Problem, polish, rebalance
from grid.territories.triples import recombine_triples


def improve(p: Problem, a: np.ndarray, anchor: np.ndarray, seeds: np.ndarray, *, tolerance: float, chains: bool,
            keep: bool, smoothing: Budget) -> np.ndarray:
    """Balance ``a`` (in place; anchors and seeds follow territory swaps) within ``p.budget``, then smooth within ``smoothing``."""
    for _ in range(2):
        rebalance(p, a, anchor, tolerance=tolerance)
        polish(p, a, anchor, tolerance=tolerance)
    if chains:
        swap_territories(p, a, anchor, tolerance=tolerance, seeds=seeds)
        # Borders of neighbouring pairs redrawn at once where single moves are stuck; chains carry the rest.
        # Each opens moves for the other: alternate in short bouts while they help.
        tried: set = set()
        for _ in range(8):
            before = a.copy()
            recombine(p, a, tolerance=tolerance, max_rounds=4)
            # Where no two-way split helps, three neighbours' cells pooled and re-cut into three.
            recombine_triples(p, a, tolerance=tolerance, tried=tried)
            polish(p, a, anchor, tolerance=tolerance)
            chain_moves(p, a, anchor, tolerance=tolerance, max_chains=p.k + 10)
            polish(p, a, anchor, tolerance=tolerance)
            if np.array_equal(a, before) or p.budget.over():
                break
    if not keep:
        # Ragged borders of fine grids shortened within a 4.5% band, then the balance polished again.
        p.budget = smoothing
        smooth(p, a, anchor, tolerance=tolerance)
        polish(p, a, anchor, tolerance=tolerance)
    return a
