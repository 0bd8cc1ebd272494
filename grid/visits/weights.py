"""Weights and thresholds of the day plan (``grid/visits/visit_weights.toml``, passed in as text)."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from grid.errors import VisitConfigError

COMPONENTS: tuple[str, ...] = ("open_lead", "overdue_visit", "gap_cell", "handover", "maturing")
# The packaged defaults; grid/visits/visit_weights.toml says the same, with comments (a test keeps them equal).
DEFAULT_TABLE: dict[str, dict[str, float]] = {
    "weights": {"open_lead": 30, "overdue_visit": 20, "gap_cell": 15, "handover": 25, "maturing": 10},
    "thresholds": {"min_score": 10.0, "visit_window_days": 90, "open_leads_cap": 3, "under_served_value": 0.5,
                   "maturing_horizon_days": 30, "maturing_grace_days": 7},
    "plan": {"max_stops": 12, "service_min": 20, "task_service_min": 30},
    "reasons": {"max_reasons": 3},
}
# (section, key) -> (kind, lower bound, lower bound inclusive, upper bound)
_SCALARS: dict[tuple[str, str], tuple[type, float, bool, float]] = {
    ("thresholds", "min_score"): (float, 0.0, True, 100.0),
    ("thresholds", "visit_window_days"): (int, 0, False, math.inf),
    ("thresholds", "open_leads_cap"): (float, 0.0, False, math.inf),
    ("thresholds", "under_served_value"): (float, 0.0, True, 1.0),
    ("thresholds", "maturing_horizon_days"): (int, 0, False, math.inf),
    ("thresholds", "maturing_grace_days"): (int, 0, True, math.inf),
    ("plan", "max_stops"): (int, 0, True, math.inf),
    ("plan", "service_min"): (float, 0.0, True, 24 * 60),
    ("plan", "task_service_min"): (float, 0.0, True, 24 * 60),
    ("reasons", "max_reasons"): (int, 1, True, math.inf),
}


@dataclass(frozen=True)
class VisitWeights:
    """Weights and thresholds of the day plan; field names are the keys of ``visit_weights.toml``.

    Examples
    --------
    >>> w = VisitWeights.from_toml_text("[weights]\\nhandover = 50\\n[plan]\\nmax_stops = 8")
    >>> w.weights["handover"], w.weights["open_lead"], w.max_stops
    (50.0, 30.0, 8)
    """

    weights: MappingProxyType
    min_score: float
    visit_window_days: int
    open_leads_cap: float
    under_served_value: float
    maturing_horizon_days: int
    maturing_grace_days: int
    max_stops: int
    service_min: float
    task_service_min: float
    max_reasons: int

    @classmethod
    def default(cls) -> VisitWeights:
        """The packaged defaults."""
        return cls.from_table({})

    @classmethod
    def from_toml_text(cls, text: str) -> VisitWeights:
        """Parse a weights file's text; keys it leaves out keep their default.

        Raises :class:`~grid.errors.VisitConfigError` naming the key for unknown
        keys, wrong types or values out of range.
        """
        try:
            table = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise VisitConfigError(f"not valid TOML: {exc}") from exc
        return cls.from_table(table)

    @classmethod
    def from_table(cls, user: Mapping[str, Any]) -> VisitWeights:
        """Like :meth:`from_toml_text`, from the parsed table (sections as dicts)."""
        base = DEFAULT_TABLE
        for section, table in user.items():
            if section not in base:
                raise VisitConfigError(f"{section}: unknown section (expected one of {sorted(base)})")
            if not isinstance(table, Mapping):
                raise VisitConfigError(f"{section}: must be a table ([{section}])")
            for key in table:
                if key not in base[section]:
                    raise VisitConfigError(f"{section}.{key}: unknown key (expected one of {sorted(base[section])})")
        merged = {s: {**base[s], **user.get(s, {})} for s in base}
        weights = {c: _number(f"weights.{c}", merged["weights"][c], float, 0.0, True, math.inf) for c in COMPONENTS}
        if sum(weights.values()) <= 0:
            raise VisitConfigError("weights: at least one weight must be > 0")
        scalars = {key: _number(f"{section}.{key}", merged[section][key], *spec)
                   for (section, key), spec in _SCALARS.items()}
        return cls(weights=MappingProxyType(weights), **scalars)


def _number(name: str, value: Any, kind: type, lo: float, lo_incl: bool, hi: float) -> float | int:
    """Check one config number; the error names the key."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VisitConfigError(f"{name}: must be a number, got {value!r}")
    if kind is int and not float(value).is_integer():
        raise VisitConfigError(f"{name}: must be a whole number, got {value!r}")
    if not math.isfinite(value) or value < lo or (value == lo and not lo_incl) or value > hi:
        bound = f"{'>=' if lo_incl else '>'} {lo:g}" + (f" and <= {hi:g}" if hi < math.inf else "")
        raise VisitConfigError(f"{name}: must be {bound}, got {value!r}")
    return int(value) if kind is int else float(value)
