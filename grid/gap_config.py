"""The configuration of the gap score: weights, class thresholds, normalisation caps.

Configuration comes in as data: :data:`DEFAULT_TABLE` holds the defaults, and a
user's weights file arrives as text (:meth:`GapConfig.from_toml_text`) or as the
parsed table (:meth:`GapConfig.from_table`); reading the file is the caller's
business (``gridmkt gaps score --weights``, the API's ``config_toml``). The
commented layout of such a file, with these defaults, is ``docs/gap_weights.toml``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from grid.errors import GapConfigError

__all__ = ["COMPONENTS", "DEFAULT_TABLE", "GapConfig", "GapConfigError"]

COMPONENTS: tuple[str, ...] = (
    "potential",
    "low_penetration",
    "no_owner",
    "no_recent_visit",
    "unvisited_customers",
    "far_outlet",
    "far_service_point",
    "open_leads",
)
# The defaults, section by section, as docs/gap_weights.toml explains them (a test keeps the two equal).
DEFAULT_TABLE: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "weights": MappingProxyType({
        "potential": 25,
        "low_penetration": 20,
        "no_owner": 20,
        "no_recent_visit": 10,
        "unvisited_customers": 5,
        "far_outlet": 5,
        "far_service_point": 10,
        "open_leads": 5,
    }),
    "thresholds": MappingProxyType({
        "min_households": 15,
        "recent_visit_days": 90,
        "under_served_score": 35.0,
    }),
    "normalisation": MappingProxyType({
        "potential_quantile": 0.95,
        "potential_cap_households": 0,
        "penetration_target": 1.0,
        "far_outlet_km": 10.0,
        "far_service_point_km": 5.0,
        "open_leads_cap": 5,
    }),
    "reasons": MappingProxyType({"max_reasons": 3}),
})

# (section, key) -> (kind, lower bound, lower bound inclusive, upper bound)
_SCALARS: dict[tuple[str, str], tuple[type, float, bool, float]] = {
    ("thresholds", "min_households"): (float, 0.0, True, math.inf),
    ("thresholds", "recent_visit_days"): (int, 0, False, math.inf),
    ("thresholds", "under_served_score"): (float, 0.0, True, 100.0),
    ("normalisation", "potential_quantile"): (float, 0.0, False, 1.0),
    ("normalisation", "potential_cap_households"): (float, 0.0, True, math.inf),
    ("normalisation", "penetration_target"): (float, 0.0, False, math.inf),
    ("normalisation", "far_outlet_km"): (float, 0.0, False, math.inf),
    ("normalisation", "far_service_point_km"): (float, 0.0, False, math.inf),
    ("normalisation", "open_leads_cap"): (float, 0.0, False, math.inf),
    ("reasons", "max_reasons"): (int, 1, True, math.inf),
}


@dataclass(frozen=True)
class GapConfig:
    """Weights, class thresholds and normalisation caps of the gap score.

    Build it with :meth:`default`, :meth:`from_toml_text` (the text of a
    weights file, read by the caller) or :meth:`from_table`; the field names
    are the keys of :data:`DEFAULT_TABLE` (sections flattened).

    Examples
    --------
    >>> cfg = GapConfig.from_toml_text("[weights]\\nno_owner = 40")
    >>> cfg.weights["no_owner"], cfg.weights["potential"], cfg.recent_visit_days
    (40.0, 25.0, 90)
    """

    weights: MappingProxyType
    min_households: float
    recent_visit_days: int
    under_served_score: float
    potential_quantile: float
    potential_cap_households: float
    penetration_target: float
    far_outlet_km: float
    far_service_point_km: float
    open_leads_cap: float
    max_reasons: int

    @classmethod
    def default(cls) -> GapConfig:
        """The defaults (:data:`DEFAULT_TABLE`)."""
        return cls.from_toml_text("")

    @classmethod
    def from_toml_text(cls, text: str) -> GapConfig:
        """Parse the text of a weights file; keys it leaves out keep their default.

        Raises :class:`GapConfigError` naming the key (``weights.no_owner``)
        for unknown keys, wrong types or values out of range.
        """
        try:
            user = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise GapConfigError(f"not valid TOML: {exc}") from exc
        except RecursionError:  # tomllib recurses once per nesting level of arrays and inline tables
            raise GapConfigError("not valid TOML: nested too deeply") from None
        return cls.from_table(user)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> GapConfig:
        """The configuration a gap run stored (weights and the flattened scalars), checked again; keys
        it lacks keep their default. Rescoring after an import or a publish uses it, so a grid
        scored with its own weights keeps them.

        Examples
        --------
        >>> cfg = GapConfig.from_stored({"weights": {"no_owner": 40}, "min_households": 3})
        >>> cfg.weights["no_owner"], cfg.weights["potential"], cfg.min_households, cfg.recent_visit_days
        (40.0, 25.0, 3.0, 90)
        """
        table: dict[str, dict[str, Any]] = {"weights": dict(stored.get("weights") or {})}
        for section, key in _SCALARS:
            if key in stored:
                table.setdefault(section, {})[key] = stored[key]
        return cls.from_table(table)

    @classmethod
    def from_table(cls, user: Mapping[str, Any]) -> GapConfig:
        """Like :meth:`from_toml_text`, from the parsed file (sections as tables)."""
        base = DEFAULT_TABLE
        for section, table in user.items():
            if section not in base:
                raise GapConfigError(f"{section}: unknown section (expected one of {sorted(base)})")
            if not isinstance(table, dict):
                raise GapConfigError(f"{section}: must be a table ([{section}])")
            for key in table:
                if key not in base[section]:
                    raise GapConfigError(f"{section}.{key}: unknown key (expected one of {sorted(base[section])})")
        merged = {s: {**base[s], **user.get(s, {})} for s in base}
        weights = {c: _number(f"weights.{c}", merged["weights"][c], float, 0.0, True, math.inf) for c in COMPONENTS}
        if sum(weights.values()) <= 0:
            raise GapConfigError("weights: at least one weight must be > 0")
        scalars = {
            key: _number(f"{section}.{key}", merged[section][key], *spec)
            for (section, key), spec in _SCALARS.items()
        }
        return cls(weights=MappingProxyType(weights), **scalars)

    def normalised_weights(self) -> dict[str, float]:
        """Weights rescaled to sum to 100 (the points each component can add)."""
        total = sum(self.weights.values())
        return {c: 100.0 * self.weights[c] / total for c in COMPONENTS}


def _number(name: str, value: Any, kind: type, lo: float, lo_incl: bool, hi: float) -> float | int:
    """Check one config number; the error names the key."""
    # bool is an int subclass, but `no_owner = true` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GapConfigError(f"{name}: must be a number, got {value!r}")
    if kind is int and not float(value).is_integer():
        raise GapConfigError(f"{name}: must be a whole number, got {value!r}")
    if not math.isfinite(value) or value < lo or (value == lo and not lo_incl) or value > hi:
        bound = f"{'>=' if lo_incl else '>'} {lo:g}" + (f" and <= {hi:g}" if hi < math.inf else "")
        raise GapConfigError(f"{name}: must be {bound}, got {value!r}")
    return int(value) if kind is int else float(value)
