"""GeoJSON for the API: Features and FeatureCollections from scoped rows, and a fast response class.

The rows come from ``geodata.reads`` (scope and paging in SQL).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from api.deps import Page


def to_feature(row: dict[str, Any], id_key: str) -> dict[str, Any]:
    """A GeoJSON Feature from a row with a ``geometry`` value; the rest become properties."""
    props = {k: v for k, v in row.items() if k != "geometry"}
    return {"type": "Feature", "id": row[id_key], "geometry": row.get("geometry"), "properties": props}


def collection(rows: list[dict[str, Any]], total: int, page: Page, id_key: str) -> dict[str, Any]:
    """A FeatureCollection with OGC-style counts and the offset of the next page, if any."""
    nxt = page.offset + len(rows)
    return {
        "type": "FeatureCollection",
        "features": [to_feature(r, id_key) for r in rows],
        "numberMatched": total,
        "numberReturned": len(rows),
        "next_offset": nxt if nxt < total else None,
    }


class GeoJSONResponse(JSONResponse):
    """GeoJSON rendered straight with json.dumps: big collections skip FastAPI's per-value encoder.

    The content must already be plain JSON values (see ``geodata.reads.values.jsonable``).
    """

    media_type = "application/geo+json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
