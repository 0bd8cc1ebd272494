"""Plain JSON values from what the database and pandas hand back (numpy scalars, Decimal, timestamps, NaN)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import shapely


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy/pandas scalars, timestamps and NaN (→ None), recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__float__") and not isinstance(value, (int, str)):
        return float(value)  # Decimal from NUMERIC columns
    return value


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-ready dicts (geometry columns left out)."""
    cols = [c for c in df.columns if c != "geometry"]
    return [jsonable(dict(zip(cols, row, strict=True))) for row in df[cols].itertuples(index=False, name=None)]


def geojson_geometries(geoms) -> list[dict | None]:
    """GeoJSON geometry dicts of shapely geometries (None stays None)."""
    return [None if g is None else json.loads(g) for g in shapely.to_geojson(list(geoms))]


def page_answer(rows: list[Any], total: int, *, offset: int) -> dict[str, Any]:
    """The usual list answer ``{items, total, next_offset}``."""
    nxt = offset + len(rows)
    return {"items": rows, "total": total, "next_offset": nxt if nxt < total else None}


def feature_collection(features: list[dict], total: int, *, offset: int, **extra: Any) -> dict[str, Any]:
    """A FeatureCollection with OGC-style counts and the offset of the next page, if any."""
    nxt = offset + len(features)
    return {"type": "FeatureCollection", **extra, "features": features, "numberMatched": total,
            "numberReturned": len(features), "next_offset": nxt if nxt < total else None}
