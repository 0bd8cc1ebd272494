"""A plan's work budget: counted steps, so the same inputs give the same plan on any machine.

The optimiser stops its improving stages when its budget is spent. The budget
is counted in work units, not seconds: one unit per contiguity-checked move
(:class:`grid.territories.solver._Mover`), and per cell for the larger steps
(a spanning tree of a recombination, a shortest-path round of the start), so
a loaded or slow machine runs exactly the same steps as a quiet one, just
later. The wall clock (``time_limit_s``) is kept only as a safety net: when
it runs out before the work budget does, the plan stops early like before
and ``timed_out`` says so (only then can two runs differ).

The default work budget grows with the plan's size
(:func:`default_work`); plans that reach their tolerance stop well before it.
"""

from __future__ import annotations

import math
import time

#: Work units per cell and per RM of the default budget (:func:`default_work`).
WORK_PER_CELL = 60.0
WORK_PER_RM = 2_000.0


def default_work(n_cells: int, n_rms: int) -> float:
    """Work units a plan of ``n_cells`` cells over ``n_rms`` RMs may spend by default.

    >>> default_work(1_000, 50)
    160000.0
    """
    return WORK_PER_CELL * n_cells + WORK_PER_RM * n_rms


class Budget:
    """Work units left, and a wall-clock safety net.

    >>> b = Budget(work=3)
    >>> b.spend(2); b.over()
    False
    >>> b.spend(1); b.over(), b.timed_out
    (True, False)
    >>> late = Budget(work=10, time_limit_s=-1.0)  # the safety net: the clock ran out first
    >>> late.over(), late.timed_out
    (True, True)
    """

    def __init__(self, work: float | None = None, time_limit_s: float | None = None, *, end: float | None = None) -> None:
        self.limit = math.inf if work is None else float(work)
        self.used = 0.0
        if end is None:
            end = math.inf if time_limit_s is None else time.monotonic() + time_limit_s
        self.end = end
        self.timed_out = False

    def spend(self, units: float = 1.0) -> None:
        """Count ``units`` of work done."""
        self.used += units

    def over(self) -> bool:
        """True once the work budget is spent, or (safety net) the wall clock has run out."""
        if self.used >= self.limit:
            return True
        if self.end != math.inf and time.monotonic() > self.end:
            self.timed_out = True
            return True
        return False

    def part(self, share: float) -> Budget:
        """A budget of ``share`` of the work left, with the same wall-clock end (``timed_out`` is passed back by :meth:`absorb`)."""
        left = self.limit - self.used
        return Budget(None if left == math.inf else max(0.0, share * left), end=self.end)

    def absorb(self, other: Budget) -> None:
        """Count a part's work and time-out as this budget's own."""
        self.used += other.used
        self.timed_out |= other.timed_out
