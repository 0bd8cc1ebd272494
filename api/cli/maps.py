"""``gridmkt map dashboard | rm | preview | compare``: export self-contained map pages.

The ``*_html`` functions take an open connection, gather the page's data
through geodata (plus a few read-only lookups below that geodata has no
function for yet) and call ``maps/``; the API's /maps/... routes can call the
same functions with ``inline=False`` options and the viewer's masking.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

from api.cli import cli, settings
from api.cli.output import command
from api.db import open_engine
from api.masking import mask_name
from api.settings import Settings
from geodata import gaps, grids, scenarios, territories
from geodata.errors import BadInput, NotFound
from maps.base import Background, PageOptions
from maps.compare import compare_page
from maps.dashboard import MEASURES, dashboard_page
from maps.preview import preview_page, village_status
from maps.rm import rm_page

MaskFn = Callable[[str | None], str | None]


def page_options(s: Settings, *, inline: bool = True, title: str = "gridmkt") -> PageOptions:
    """Page options from the link and basemap settings."""
    return PageOptions(
        title=title, tile_url=s.maps.tile_url, tile_crs=s.maps.tile_crs, attribution=s.maps.attribution,
        tag_url=s.links.tag_url, lead_url=s.links.lead_url, tag_cell_url=s.links.tag_cell_url,
        lead_cell_url=s.links.lead_cell_url, inline=inline,
    )


def _frame(conn: Connection, sql: str, params: dict, cols: list[str]) -> pd.DataFrame:
    rows = conn.execute(text(sql), params).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=cols)


def background(conn: Connection, county_code: str) -> Background:
    """County outline, township seats and village points of a county."""
    county = grids.load_county(conn, code=county_code)
    towns = _frame(conn, "SELECT name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM township "
                         "WHERE county_code = :c AND geom IS NOT NULL ORDER BY code", {"c": county_code},
                   ["name", "lon", "lat"])
    villages = grids.load_villages(conn, county_code=county_code)
    return Background(county=county["geometry"], townships=towns,
                      villages=villages[villages["lon"].notna()][["name", "lon", "lat"]])


def facilities(conn: Connection, county_code: str, outlets: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Outlets and service points of a county (only the given outlets and their points, if any)."""
    params = {"c": county_code, "o": outlets}
    cols = ["code", "name", "lon", "lat"]
    out = _frame(conn, "SELECT code, name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM outlet WHERE county_code = :c "
                       "AND (CAST(:o AS text[]) IS NULL OR code = ANY(:o)) ORDER BY code", params, cols)
    sp = _frame(conn, "SELECT code, name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM service_point "
                      "WHERE county_code = :c AND (CAST(:o AS text[]) IS NULL OR outlet_code = ANY(:o)) ORDER BY code",
                params, cols)
    return out, sp


def cell_customer_ids(conn: Connection, grid_id: int, limit: int) -> dict[str, list[str]]:
    """The first ``limit`` customer ids per cell (for the tag/lead links)."""
    rows = conn.execute(text(
        "SELECT cell_id, (array_agg(customer_id ORDER BY customer_id))[1:CAST(:n AS integer)] FROM customer_cell "
        "WHERE grid_id = :g AND cell_id IS NOT NULL GROUP BY cell_id"), {"g": grid_id, "n": limit}).all()
    return {c: list(ids) for c, ids in rows}


def dashboard_cells(conn: Connection, grid_id: int):
    """Cells with stats, owner, latest gap score, class, reason, components and measures flattened."""
    cells = grids.load_cells(conn, grid_id=grid_id, with_stats=True)
    cells["owner_rm"] = cells["cell_id"].map(territories.current_owners(conn, grid_id=grid_id))
    try:
        scores = gaps.latest_scores(conn, grid_id=grid_id)
    except NotFound:
        return cells
    measures = pd.DataFrame(list(scores["measures"]), index=scores.index)
    extra = measures[[c for c in measures.columns if c not in cells.columns and c != "owner_rm"]]
    scored = pd.concat([scores[["cell_id", "score", "gap_class", "components", "reason_zh"]], extra], axis=1)
    return cells.merge(scored, on="cell_id", how="left")


def dashboard_html(conn: Connection, *, grid_id: int, options: PageOptions, measure: str = "gap_score",
                   outlets: list[str] | None = None) -> str:
    """The branch dashboard of a grid (only cells of the given outlets' RMs when outlets are named)."""
    g = grids.get_grid(conn, grid_id=grid_id)
    cells = dashboard_cells(conn, grid_id)
    if measure == "gap_score" and "score" not in cells:
        raise BadInput(f"grid {grid_id} has no gap scores: run gridmkt gaps score --grid {grid_id}, or pick --measure")
    rms = territories.rms_for(conn, grid_id=grid_id, outlets=outlets)
    if outlets:
        cells = cells[cells["owner_rm"].isin(set(rms["rm_id"]))]
        if cells.empty:
            raise NotFound(f"the RMs of outlet(s) {', '.join(outlets)} own no cells of grid {grid_id}")
    out, sp = facilities(conn, g["county_code"], outlets)
    total = conn.execute(text("SELECT count(*) FROM customer WHERE county_code = :c"), {"c": g["county_code"]}).scalar()
    return dashboard_page(
        cells, options=options, measure=measure, rms=rms[["rm_id", "name"]], outlets=out, service_points=sp,
        cell_customers=cell_customer_ids(conn, grid_id, options.max_link_ids), county_customers=int(total or 0),
        background=background(conn, g["county_code"]), title=f"{g['county_name']} 网格看板 dashboard",
    )


def rm_customers(conn: Connection, grid_id: int, cell_ids: list[str]) -> pd.DataFrame:
    """Customers in the given cells with their point (NULL when unknown) and open lead count."""
    return _frame(conn, (
        "SELECT c.customer_id, c.name, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, cc.cell_id, "
        "COALESCE(l.n, 0) AS open_leads FROM customer_cell cc JOIN customer c ON c.customer_id = cc.customer_id "
        "LEFT JOIN (SELECT customer_id, count(*) AS n FROM lead WHERE status = 'open' GROUP BY customer_id) l "
        "ON l.customer_id = c.customer_id WHERE cc.grid_id = :g AND cc.cell_id = ANY(:cells) ORDER BY c.customer_id"),
        {"g": grid_id, "cells": cell_ids}, ["customer_id", "name", "lon", "lat", "cell_id", "open_leads"],
    ).astype({"lon": float, "lat": float})


def rm_html(conn: Connection, *, grid_id: int, rm_code: str, options: PageOptions, mask: MaskFn = mask_name) -> str:
    """One RM's phone map: their cells and customers only."""
    g = grids.get_grid(conn, grid_id=grid_id)
    owned = sorted(c for c, r in territories.current_owners(conn, grid_id=grid_id).items() if r == rm_code)
    if not owned:
        raise NotFound(f"RM {rm_code!r} owns no cells of grid {grid_id}")
    cells = grids.load_cells(conn, grid_id=grid_id, cell_ids=owned, with_stats=True)
    cells["owner_rm"] = rm_code
    customers = rm_customers(conn, grid_id, owned)
    leads = customers.groupby("cell_id")["open_leads"].sum()
    cells["open_leads"] = cells["cell_id"].map(leads).fillna(0).astype(int)
    rm = conn.execute(text("SELECT name, outlet_code FROM rm WHERE code = :r"), {"r": rm_code}).mappings().first()
    out, _ = facilities(conn, g["county_code"], [rm["outlet_code"]] if rm else None)
    return rm_page(cells, customers, rm_code=rm_code, rm_name=(rm and rm["name"]) or "", options=options,
                   mask_name=mask, outlets=out, background=background(conn, g["county_code"]))


def preview_html(conn: Connection, *, options: PageOptions, grid_id: int | None = None,
                 import_run: int | None = None) -> str:
    """The planner's preview: a village grid's villages, or the villages of one import run."""
    run = None
    if import_run is not None:
        row = conn.execute(text("SELECT id, kind, file_name, status, counts, started_at FROM import_run WHERE id = :r"),
                           {"r": import_run}).mappings().first()
        if row is None:
            raise NotFound(f"import run {import_run} does not exist")
        run = dict(row)
        county = conn.execute(text("SELECT county_code FROM village WHERE import_run_id = :r GROUP BY county_code "
                                   "ORDER BY count(*) DESC LIMIT 1"), {"r": import_run}).scalar()
        if county is None:
            raise NotFound(f"import run {import_run} loaded no villages (kind {run['kind']})")
        if grid_id is None:
            found = [x for x in grids.list_grids(conn, county_code=county) if x["kind"] == "village"]
            grid_id = found[0]["id"] if found else None
    if grid_id is not None:
        g = grids.get_grid(conn, grid_id=grid_id)
        county = g["county_code"]
        if g["kind"] != "village":
            raise BadInput(f"grid {grid_id} is an {g['kind']} grid; the preview shows village grids")
        cells = grids.load_cells(conn, grid_id=grid_id, with_stats=False)
        if run is None:
            report = g.get("report") or {}
            run = {"file_name": f"grid {grid_id}", "status": "built",
                   "counts": {k: report.get(k) for k in ("villages", "placed", "merged_villages") if k in report}}
    else:
        cells = None
    villages = grids.load_villages(conn, county_code=county)
    if import_run is not None:
        codes = {r[0] for r in conn.execute(text("SELECT code FROM village WHERE import_run_id = :r"), {"r": import_run})}
        villages = villages[villages["code"].isin(codes)]
    return preview_page(village_status(villages, cells), options=options, cells=cells, run_summary=run,
                        background=background(conn, county), title="导入预览 import preview")


def _assignment(conn: Connection, grid_id: int, ref: str) -> dict[str, str]:
    if ref == scenarios.CURRENT:
        return territories.current_owners(conn, grid_id=grid_id)
    return scenarios.scenario_assignment(conn, scenario_id=scenarios.find_scenario(conn, ref=ref, grid_id=grid_id)["id"])


def compare_html(conn: Connection, *, grid_id: int, a: str, b: str = scenarios.CURRENT,
                 options: PageOptions) -> str:
    """Two assignments of a grid (scenario names/ids or ``current``) on one page."""
    result = scenarios.compare(conn, grid_id=grid_id, a=a, b=b)
    cells = grids.load_cells(conn, grid_id=grid_id, with_stats=True)
    g = grids.get_grid(conn, grid_id=grid_id)
    return compare_page(cells, _assignment(conn, grid_id, a), _assignment(conn, grid_id, b), options=options,
                        per_rm=result.get("per_rm"), labels=(str(a), str(b)),
                        customers_changing=result.get("customers_changing_rm"),
                        background=background(conn, g["county_code"]))


def write_page(html: str, path: Path) -> dict:
    """Write a page; report its path and size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return {"file": str(path), "bytes": path.stat().st_size}


@cli.group("map")
def map_group() -> None:
    """Export map pages (one self-contained .html that opens offline)."""


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
                              outlets=list(outlets) or None)
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

