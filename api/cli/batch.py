"""``gridmkt batch assign``: many counties at once on a Dask cluster (a LocalCluster by default)."""

from __future__ import annotations

from pathlib import Path

import click

from api.cli import actor, cli, settings, user_option
from api.cli.output import command
from api.db import open_engine
from api.operations import batch as batch_ops


@cli.group()
def batch() -> None:
    """Heavy steps over many counties at once, on dask.distributed (docs/batch.md)."""


@command(batch, "assign")
@click.option("--grid", "grid_ids", type=int, multiple=True,
              help="Grid id (repeatable; default: the newest grid of every county that has one).")
@click.option("--kind", type=click.Choice(["h3", "village"]), default=None,
              help="Without --grid: the newest grid of this kind per county.")
@click.option("--parquet", "parquet", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="Read the customers from these GeoParquet files (as gridmkt export customers writes them)"
                   " instead of the store; repeatable.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:8786",
              help="A running Dask scheduler (default: $GRIDMKT_DASK_SCHEDULER, else a LocalCluster).")
@click.option("--workers", type=click.IntRange(1, 512), default=2, show_default=True,
              help="Worker processes of the LocalCluster (ignored with --scheduler).")
@click.option("--partition-rows", "rows", type=click.IntRange(1000), default=1_000_000, show_default=True,
              help="Customers per partition (a worker holds about one partition at a time).")
@click.option("--as-of", "as_of", default=None, help="Count visits in the cell statistics as of this date.")
@user_option
def batch_assign(ctx, grid_ids, kind, parquet, scheduler, workers, rows, as_of, user):
    """Assign the customers of many counties to their grids' cells, as `gridmkt assign customers` does for
    one: the same cell for every customer and the same cell statistics. Each county is written in its own
    transaction and is a job with progress."""
    s = settings()
    eng = open_engine(s.db)
    try:
        with ctx.progress("batch assign") as bar:
            out = batch_ops.run(eng, actor=actor(user), grid_ids=list(grid_ids) or None, kind=kind,
                                parquet=list(parquet) or None, scheduler=scheduler or s.batch.scheduler,
                                workers=workers, rows_per_part=rows, as_of=as_of, progress=bar)
    finally:
        eng.dispose()
    if not ctx.as_json:
        out["grids"] = [{k: v for k, v in r.items() if k != "stats"} for r in out["grids"]]
    return {"ok": True, **out}
