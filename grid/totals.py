"""Per-cell customer totals from a placement: what the batch mode sums on each partition and adds up."""

from __future__ import annotations

import numpy as np


def cell_totals(cell_index: np.ndarray, n_cells: int, deposit_cents: np.ndarray,
                loan_cents: np.ndarray) -> np.ndarray:
    """Customers, deposit and loan (in cents) per cell: an int64 array of shape (3, n_cells).

    ``cell_index`` is the cell's row (-1: no cell, not counted). Sums are exact while a cell's
    partial sum stays under 2**53 cents (9e13 yuan).

    Examples
    --------
    >>> cell_totals(np.array([0, 1, 1, -1]), 2, np.array([100, 5, 7, 9]), np.zeros(4, dtype=np.int64)).tolist()
    [[1, 2], [100, 12], [0, 0]]
    """
    idx = np.asarray(cell_index, dtype=np.int64)
    keep = idx >= 0
    idx = idx[keep]
    out = np.zeros((3, n_cells), dtype=np.int64)
    out[0] = np.bincount(idx, minlength=n_cells)[:n_cells]
    for row, values in ((1, deposit_cents), (2, loan_cents)):
        v = np.asarray(values, dtype=np.int64)[keep]
        out[row] = np.rint(np.bincount(idx, weights=v.astype(np.float64), minlength=n_cells)[:n_cells])
    return out
