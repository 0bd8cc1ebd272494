"""``gridmkt grid build | list`` and ``gridmkt assign customers``."""

from __future__ import annotations

import click

from api.cli import actor, cli, settings, user_option
from api.cli.output import command
from api.db import open_engine
from api.operations import grids as grid_ops
from geodata import grids


@cli.group()
def grid() -> None:
    """Build grid versions (H3 or village cells) that tile a county, and list them."""


@command(grid, "build")
@click.option("--county", "county_code", required=True, help="6-digit county adcode, e.g. 640121.")
@click.option("--kind", type=click.Choice(grid_ops.KINDS), default="h3", show_default=True, help="h3 hexagons or village cells.")
@click.option("--res", "resolution", type=click.IntRange(*grid_ops.H3_RESOLUTIONS), default=None,
              help=f"H3 resolution {grid_ops.H3_RESOLUTIONS[0]}..{grid_ops.H3_RESOLUTIONS[1]} (h3 grids; "
                   f"default {grid_ops.DEFAULT_H3_RESOLUTION}, as through the API).")
@click.option("--refine-share", type=float, default=None,
              help="Refine where the work is dense: split cells whose customers' workload exceeds this share of "
                   "an RM's target (e.g. 0.5), recursively. Off when not given.")
@click.option("--refine-rms", type=float, default=None,
              help="RMs (capacity) sharing the county's work, for the target (default: its active RMs).")
@click.option("--refine-max-res", type=click.IntRange(6, 13), default=None,
              help="Finest H3 resolution refinement goes to (default 11).")
@user_option
def grid_build(ctx, county_code: str, kind: str, resolution: int | None, refine_share: float | None,
               refine_rms: float | None, refine_max_res: int | None, user: str | None):
    """Cut a county into cells; building again makes a new grid version.

    With --refine-share, H3 cells too busy for one RM are replaced by their children (clipped to the
    county), and village cells by the H3 cells inside them, until each holds at most that share of an
    RM's target; see docs/grids.md.
    """
    refine = {"share": refine_share, "rms": refine_rms, "max_res": refine_max_res}
    eng = open_engine(settings().db)
    with eng.begin() as conn:  # checked before the progress bar starts (the same checks as the API's)
        params = grid_ops.build_params(conn, county_code=county_code, kind=kind, resolution=resolution)
        grid_ops.refine_options(refine, resolution=params["resolution"])
    with ctx.progress(f"grid {county_code} {kind}") as bar, eng.begin() as conn:
        return grid_ops.build(conn, actor=actor(user), county_code=county_code, kind=kind, resolution=resolution,
                              refine=refine, progress=bar)


@command(grid, "list")
@click.option("--county", "county_code", default=None, help="Only grids of this county.")
def grid_list(ctx, county_code: str | None):
    """Grid versions with county, kind, resolution, cell count and creation time."""
    eng = open_engine(settings().db)
    with eng.connect() as conn:
        return {"grids": grids.list_grids(conn, county_code=county_code)}


@command(grid, "rollup")
@click.option("--grid", "grid_id", type=int, required=True, help="H3 grid id.")
@click.option("--res", "resolution", type=click.IntRange(0, 15), required=True, help="Coarser H3 resolution.")
def grid_rollup(ctx, grid_id: int, resolution: int):
    """Summarise an H3 grid at a coarser resolution (parents), without rebuilding it."""
    eng = open_engine(settings().db)
    with eng.connect() as conn:
        cells = grids.rollup_cells(conn, grid_id=grid_id, res=resolution)
    totals = {c: float(cells[c].sum()) for c in grids.STAT_COLUMNS if c in cells}
    return {"grid_id": grid_id, "res": resolution, "cells": len(cells), "totals": totals}


@cli.group()
def assign() -> None:
    """Assign customers to the cells of a grid version."""


@command(assign, "customers")
@click.option("--grid", "grid_id", type=int, required=True, help="Grid id (see gridmkt grid list).")
@user_option
def assign_customers(ctx, grid_id: int, user: str | None):
    """Put every customer of the grid's county into exactly one cell (or list why not)."""
    eng = open_engine(settings().db)
    with ctx.progress(f"assign grid {grid_id}") as bar, eng.begin() as conn:
        return grid_ops.assign(conn, actor=actor(user), grid_id=grid_id, progress=bar, workers=2)
