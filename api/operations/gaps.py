"""Gap changes: score a grid (the configuration checked before any work), suggest service-point sites;
each writes one audit row."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from geodata import audit, gaps
from geodata.errors import BadInput
from grid.gaps import GapConfig, GapConfigError

SITES_MAX_COUNT = 100
SITES_MAX_RADIUS_KM = 100.0


def check_config(config_text: str | None) -> None:
    """BadInput naming the mistake when a gap configuration (TOML text) does not parse or validate."""
    if config_text:
        try:
            GapConfig.from_toml_text(config_text)
        except GapConfigError as exc:
            raise BadInput(f"config_toml: {exc}") from exc  # the API field; the CLI says the same (one message)


def score(conn: Connection, *, actor: str, grid_id: int, config_text: str | None = None, trigger: str = "manual",
          as_of: str | None = None) -> dict[str, Any]:
    """Score every cell and store the run; audit ``create gap_run <grid id>``."""
    check_config(config_text)
    out = gaps.score_grid(conn, grid_id=grid_id, config_text=config_text, trigger=trigger, as_of=as_of)
    audit.record(conn, username=actor, action="create", object_type="gap_run", object_id=str(grid_id),
                 detail={"custom_config": bool(config_text), "as_of": as_of, "cells": out["cells"]})
    return out


def check_sites(*, count: int, radius_km: float) -> None:
    """BadInput unless 1 <= count <= 100 and 0 < radius_km <= 100 (both faces' limits)."""
    if not 1 <= count <= SITES_MAX_COUNT:
        raise BadInput(f"count must be 1..{SITES_MAX_COUNT}, not {count}")
    if not 0 < radius_km <= SITES_MAX_RADIUS_KM:
        raise BadInput(f"radius_km must be above 0 and at most {SITES_MAX_RADIUS_KM:g}, not {radius_km}")


def sites(conn: Connection, *, actor: str, grid_id: int, count: int, radius_km: float,
          candidates: pd.DataFrame | None = None) -> dict[str, Any]:
    """Where up to ``count`` new service points cover most households; audit ``create site_suggestion <grid id>``."""
    check_sites(count=count, radius_km=radius_km)
    out = gaps.suggest_sites(conn, grid_id=grid_id, count=count, radius_km=radius_km, candidates=candidates)
    audit.record(conn, username=actor, action="create", object_type="site_suggestion", object_id=str(grid_id),
                 detail={"count": count, "radius_km": radius_km,
                         "candidates": None if candidates is None else len(candidates)})
    return out
