"""``gridmkt map dashboard | rm | preview | compare``: export self-contained map pages."""

from __future__ import annotations

from pathlib import Path

import click

from api.cli import cli, settings
from api.cli.output import command
from api.db import open_engine
from api.map_pages import (
    compare_html,
    dashboard_html,
    page_options,
    preview_html,
    rm_html,
    write_page,
)
from geodata import scenarios
from geodata.errors import BadInput
from maps.dashboard import MEASURES


@cli.group("map")
def map_group() -> None:
    """Export map pages (one self-contained .html that opens offline).

    The province overview is served only (GET /maps/province on gridmkt serve): it draws every county
    from the server's vector tiles, which a file cannot carry.
    """


_out = click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
                    help="HTML file to write.")


@command(map_group, "dashboard")
@click.option("--grid", "grid_id", type=int, required=True, help="Grid id (see gridmkt grid list).")
@click.option("--outlet", "outlets", multiple=True, help="Only the cells of this outlet's RMs (repeatable).")
@click.option("--measure", type=click.Choice(list(MEASURES)), default="gap_score", show_default=True,
              help="What colours the cells.")
@_out
def map_dashboard(ctx, grid_id: int, outlets: tuple[str, ...], measure: str, output: Path):
    """Branch dashboard: cells by measure, territories, outlets, summary, cell popups with links."""
    with open_engine(settings().db).connect() as conn:
        html = dashboard_html(conn, grid_id=grid_id, options=page_options(settings()), measure=measure,
                              outlets=list(outlets) or None, tz=settings().visits.timezone)
    return write_page(html, output)


@command(map_group, "rm")
@click.option("--rm", "rm_code", required=True, help="RM code.")
@click.option("--grid", "grid_id", type=int, required=True, help="Grid id.")
@_out
def map_rm(ctx, rm_code: str, grid_id: int, output: Path):
    """RM phone map: that RM's cells and customers (names masked), lead badges, where-am-I."""
    with open_engine(settings().db).connect() as conn:
        html = rm_html(conn, grid_id=grid_id, rm_code=rm_code, options=page_options(settings()))
    return write_page(html, output)


@command(map_group, "preview")
@click.option("--grid", "grid_id", type=int, default=None, help="Village grid id.")
@click.option("--import-run", "import_run", type=int, default=None, help="Villages of this import run.")
@_out
def map_preview(ctx, grid_id: int | None, import_run: int | None, output: Path):
    """Planner preview: placed, merged and unplaced villages; rejected rows of the import run."""
    if grid_id is None and import_run is None:
        raise BadInput("name --grid or --import-run")
    with open_engine(settings().db).connect() as conn:
        html = preview_html(conn, options=page_options(settings()), grid_id=grid_id, import_run=import_run)
    return write_page(html, output)


@command(map_group, "compare")
@click.option("--grid", "grid_id", type=int, required=True, help="Grid id.")
@click.argument("a")
@click.argument("b", required=False, default=None)
@_out
def map_compare(ctx, grid_id: int, a: str, b: str | None, output: Path):
    """Scenario compare: A → B, or current → A with one name; moved cells, workload per RM."""
    if b is None:
        a, b = scenarios.CURRENT, a
    with open_engine(settings().db).connect() as conn:
        html = compare_html(conn, grid_id=grid_id, a=a, b=b, options=page_options(settings()))
    return write_page(html, output)

