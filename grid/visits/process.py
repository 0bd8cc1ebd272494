"""The process score (过程积分) of an RM's week: how well the visit plan was followed, 0-100.

Each component is a share in [0, 1]:

============== ==============================================================
component      share
============== ==============================================================
``completion`` planned stops visited on their day / planned stops
``coverage``   territory customers visited within the visit window / all
``gap_cells``  visits in blank or under-served cells / visits
``clean``      check-ins with neither flag (far, short) / check-ins
============== ==============================================================

``score = 100 * sum(w_c * share_c) / sum(w)``, as the gap and visit scores do.
A component with nothing to count (no plan, no visit, no check-in) is 0: a
week without work earns nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from grid.errors import VisitConfigError

PROCESS_COMPONENTS: tuple[str, ...] = ("completion", "coverage", "gap_cells", "clean")
DEFAULT_PROCESS_WEIGHTS: dict[str, float] = {"completion": 40.0, "coverage": 30.0, "gap_cells": 20.0, "clean": 10.0}


@dataclass(frozen=True)
class ProcessWeights:
    """Weights of the process score's components (only their ratios matter)."""

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PROCESS_WEIGHTS))

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ProcessWeights:
        """Weights from a mapping; left-out components keep their default, unknown ones are an error.

        Examples
        --------
        >>> ProcessWeights.from_table({"clean": 0}).weights["clean"]
        0.0
        """
        out = dict(DEFAULT_PROCESS_WEIGHTS)
        for key, value in table.items():
            if key not in DEFAULT_PROCESS_WEIGHTS:
                raise VisitConfigError(f"process score weight {key!r} is not one of {', '.join(PROCESS_COMPONENTS)}")
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise VisitConfigError(f"process score weight {key}: {value!r} is not a number") from None
            if not math.isfinite(v) or v < 0:
                raise VisitConfigError(f"process score weight {key}: must be a finite number >= 0, got {value!r}")
            out[key] = v
        if sum(out.values()) <= 0:
            raise VisitConfigError("process score weights: at least one must be above 0")
        return cls(out)

    @classmethod
    def from_text(cls, text: str | None) -> ProcessWeights:
        """Weights from ``name=number`` pairs separated by commas (empty: the defaults).

        Examples
        --------
        >>> ProcessWeights.from_text("completion=50, coverage=50, gap_cells=0, clean=0").weights["coverage"]
        50.0
        """
        if not text or not text.strip():
            return cls()
        pairs = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise VisitConfigError(f"process score weights: {part.strip()!r} is not name=number")
            pairs[name.strip()] = value.strip()
        return cls.from_table(pairs)


def _share(part: float, whole: float) -> float:
    return min(max(part / whole, 0.0), 1.0) if whole > 0 else 0.0


def process_score(*, planned: int, planned_done: int, territory_customers: int, customers_visited: int,
                  visits: int, gap_visits: int, checkins: int, flagged: int,
                  weights: ProcessWeights | None = None) -> dict[str, float]:
    """The shares of each component and the score (0-100) of one RM's week.

    Examples
    --------
    >>> s = process_score(planned=10, planned_done=8, territory_customers=100, customers_visited=50,
    ...                   visits=10, gap_visits=5, checkins=10, flagged=1)
    >>> s["completion"], s["coverage"], s["gap_cells"], s["clean"], s["score"]
    (0.8, 0.5, 0.5, 0.9, 66.0)
    """
    w = (weights or ProcessWeights()).weights
    shares = {"completion": _share(planned_done, planned), "coverage": _share(customers_visited, territory_customers),
              "gap_cells": _share(gap_visits, visits), "clean": _share(checkins - flagged, checkins)}
    total = sum(w.values())
    score = 100.0 * sum(w[c] * shares[c] for c in PROCESS_COMPONENTS) / total
    return {**{c: round(shares[c], 4) for c in PROCESS_COMPONENTS}, "score": round(score, 1)}
