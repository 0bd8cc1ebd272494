"""Grid changes: build a grid version (one default resolution for both faces; refined where the work is
dense when asked, issue 17) and assign customers to it; each writes one audit row."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from geodata import assign as assign_store
from geodata import audit, grids
from geodata.catalog import COUNTIES
from geodata.errors import BadInput
from geodata.reads.collections import get_item
from geodata.refine_grid import RefineOptions
from geodata.scope import Scope

KINDS = grids.KINDS
DEFAULT_H3_RESOLUTION = 8
H3_RESOLUTIONS = (6, 10)  # coarsest and finest a county grid may be cut at
EVERYTHING = Scope(role="admin", legal_entity_id=None)


def build_params(conn: Connection, *, county_code: str, kind: str, resolution: int | None = None,
                 scope: Scope | None = None) -> dict[str, Any]:
    """The checked parameters of a build: the county in scope, the default resolution applied
    (8 for H3; a village grid has none). Both faces call this before any work starts."""
    # one lookup for both faces (the command line sees every county): the same NotFound either way
    get_item(conn, COUNTIES, scope=scope or EVERYTHING, key=county_code, geometry=False, fields=("adcode",))
    if kind not in KINDS:
        raise BadInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "village":
        return {"county_code": county_code, "kind": kind, "resolution": None}
    if resolution is None:
        resolution = DEFAULT_H3_RESOLUTION
    lo, hi = H3_RESOLUTIONS
    if not lo <= resolution <= hi:
        raise BadInput(f"an H3 grid's resolution is {lo}..{hi}, not {resolution}")
    return {"county_code": county_code, "kind": kind, "resolution": resolution}


REFINE_FIELDS = ("share", "rms", "max_res", "village_res")


def refine_options(refine: dict[str, Any] | None, *, resolution: int | None) -> RefineOptions | None:
    """Checked refinement options from a face's fields (``share``, ``rms``, ``max_res``, ``village_res``;
    None or absent = default); None (no refinement) unless a share is given."""
    if not refine or refine.get("share") is None:
        return None
    unknown = set(refine) - set(REFINE_FIELDS)
    if unknown:
        raise BadInput(f"unknown refine option(s) {', '.join(sorted(unknown))}; use {', '.join(REFINE_FIELDS)}")
    return RefineOptions(**{k: v for k, v in refine.items() if v is not None}).check(resolution)


def build(conn: Connection, *, actor: str, county_code: str, kind: str, resolution: int | None = None,
          progress=None, scope: Scope | None = None, refine: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cut a county into cells as a new grid version, refined if ``refine`` says so; audit ``create grid <id>``."""
    params = build_params(conn, county_code=county_code, kind=kind, resolution=resolution, scope=scope)
    options = refine_options(refine, resolution=params["resolution"])
    out = grids.build_grid(conn, **params, progress=progress, refine=options)
    detail = params if options is None else {**params, "refine": {k: getattr(options, k) for k in REFINE_FIELDS}}
    audit.record(conn, username=actor, action="create", object_type="grid", object_id=str(out["id"]),
                 detail=detail)
    return out


def assign(conn: Connection, *, actor: str, grid_id: int, progress=None, workers: int | None = None) -> dict[str, Any]:
    """Place every customer of the grid's county in one cell and refresh the cell statistics;
    audit ``create grid_assignment <grid id>``."""
    kw = {} if workers is None else {"workers": workers}
    out = assign_store.assign_customers(conn, grid_id=grid_id, progress=progress, **kw)
    audit.record(conn, username=actor, action="create", object_type="grid_assignment", object_id=str(grid_id),
                 detail={"customers": out["customers"], "by_point": out["by_point"],
                         "by_village_code": out["by_village_code"]})
    return out
