"""Map pages from the store: gather a page's data through geodata and render it with maps/.

Shared by ``gridmkt map ...`` (self-contained files, assets inlined) and the
API's /maps/... routes (``inline=False``: assets from /maps/static, masking
by the viewer's scope).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.engine import Connection

from api.masking import mask_name
from api.operations import visits as visit_ops
from api.settings import Settings
from geodata import gaps, grids, map_data, province, scenarios, territories
from geodata.errors import BadInput, NotFound
from geodata.reads import maps as index_reads
from geodata.reads.access import visible_rms
from geodata.reads.figures import grid_figures
from geodata.scope import Scope
from maps.base import Background, PageOptions
from maps.classify import class_breaks
from maps.compare import compare_page
from maps.dashboard import dashboard_page
from maps.preview import preview_page, village_status
from maps.province import province_page
from maps.rm import rm_page
from maps.visits import visits_page

MaskFn = Callable[[str | None], str | None]


def page_options(s: Settings, *, inline: bool = True, title: str = "gridmkt") -> PageOptions:
    """Page options from the link and basemap settings."""
    return PageOptions(
        title=title, tile_url=s.maps.tile_url, tile_crs=s.maps.tile_crs, attribution=s.maps.attribution,
        tag_url=s.links.tag_url, lead_url=s.links.lead_url, tag_cell_url=s.links.tag_cell_url,
        lead_cell_url=s.links.lead_cell_url, inline=inline,
    )


def background(conn: Connection, county_code: str) -> Background:
    """The context layer of a county's pages: its outline and neighbours, townships, villages with own points."""
    county = grids.load_county(conn, code=county_code)
    towns = map_data.township_points(conn, county_code=county_code)
    villages = grids.load_villages(conn, county_code=county_code)
    # A village placed at its township's or county's point would name the wrong spot.
    own = villages["lon"].notna() & (villages["coord_level"] == "village" if "coord_level" in villages else True)
    return Background(county=county["geometry"], county_name=county.get("name") or "", townships=towns,
                      villages=villages[own][["name", "lon", "lat"]],
                      neighbours=map_data.neighbour_counties(conn, county_code=county_code),
                      township_areas=map_data.township_areas(conn, county_code=county_code))


def with_places(conn: Connection, cells, grid_id: int):
    """``cells`` with place, place_inside and township: what a cell's popup is titled by (maps.places)."""
    places = map_data.cell_places(conn, grid_id=grid_id, cell_ids=None)
    return cells.merge(places, on="cell_id", how="left")


def dashboard_cells(conn: Connection, grid_id: int):
    """Cells with stats, owner, latest gap score, class, reason, components and measures flattened."""
    cells = grids.load_cells(conn, grid_id=grid_id, with_stats=True)
    cells["owner_rm"] = cells["cell_id"].map(territories.current_owners(conn, grid_id=grid_id))
    try:
        scores = gaps.latest_scores(conn, grid_id=grid_id)
    except NotFound:
        return with_places(conn, cells, grid_id)
    measures = pd.DataFrame(list(scores["measures"]), index=scores.index)
    extra = measures[[c for c in measures.columns if c not in cells.columns and c != "owner_rm"]]
    scored = pd.concat([scores[["cell_id", "score", "gap_class", "components", "reason_zh"]], extra], axis=1)
    out = with_places(conn, cells.merge(scored, on="cell_id", how="left"), grid_id)
    out.attrs["gap_run"] = scores.attrs["gap_run"]
    return out


def dashboard_html(conn: Connection, *, grid_id: int, options: PageOptions, measure: str = "gap_score",
                   outlets: list[str] | None = None, scope: Scope | None = None, tz: str = "Asia/Shanghai") -> str:
    """The branch dashboard of a grid (only cells of the given outlets' RMs when outlets are named).

    Its visits layer counts the window /maps/visits shows for this week (90 days to the week's end, in
    ``tz``), and its legend names the dates.

    Its summary figures (入格率 and the rest) are counted within ``scope``, numerator and denominator
    alike (``geodata.reads.figures``); without one, that of a manager of ``outlets`` (or system-wide).
    """
    g = grids.get_grid(conn, grid_id=grid_id)
    if scope is None:
        le = g.get("legal_entity_id")
        scope = (Scope("branch_manager", le, outlet_codes=tuple(outlets)) if outlets and le is not None
                 else Scope("admin", None))
    cells = dashboard_cells(conn, grid_id)
    gap_run = cells.attrs.get("gap_run")  # before filtering, which need not keep attrs
    if measure == "gap_score" and "score" not in cells:
        raise BadInput(f"grid {grid_id} has no gap scores: run gridmkt gaps score --grid {grid_id}, or pick --measure")
    if outlets:
        # Every RM of the outlets, as the branch manager's cell scope has them: an outlet without
        # RMs, or an RM who left but still owns cells, must not hide (or 404) the rest.
        codes = map_data.rms_at_outlets(conn, outlets=outlets)
        if not codes:
            raise NotFound(f"outlet(s) {', '.join(outlets)} have no RMs")
        rms = territories.rms_for(conn, grid_id=grid_id, rm_codes=codes, also_inactive=codes)
    else:
        rms = territories.rms_for(conn, grid_id=grid_id)
    if outlets:
        cells = cells[cells["owner_rm"].isin(set(rms["rm_id"]))]
        if cells.empty:
            raise NotFound(f"the RMs of outlet(s) {', '.join(outlets)} own no cells of grid {grid_id}")
    out, sp = map_data.facilities(conn, county_code=g["county_code"], outlets=outlets)
    return dashboard_page(
        cells, options=options, measure=measure, rms=rms[["rm_id", "name"]], outlets=out, service_points=sp,
        cell_customers=map_data.cell_customer_ids(conn, grid_id=grid_id, limit=options.max_link_ids),
        figures=grid_figures(conn, scope=scope, grid_ids=[grid_id])[grid_id], gap_run=gap_run,
        visit_cover=visit_ops.cover_of(conn, scope=scope, tz=tz, grid_id=grid_id),
        background=background(conn, g["county_code"]), title=f"{g['county_name']} 网格看板 dashboard",
    )


def rm_html(conn: Connection, *, grid_id: int, rm_code: str, options: PageOptions, mask: MaskFn = mask_name) -> str:
    """One RM's phone map: their cells and customers only."""
    g = grids.get_grid(conn, grid_id=grid_id)
    owned = sorted(c for c, r in territories.current_owners(conn, grid_id=grid_id).items() if r == rm_code)
    if not owned:
        raise NotFound(f"RM {rm_code!r} owns no cells of grid {grid_id}")
    cells = grids.load_cells(conn, grid_id=grid_id, cell_ids=owned, with_stats=True)
    cells = cells.merge(map_data.cell_places(conn, grid_id=grid_id, cell_ids=owned), on="cell_id", how="left")
    cells["owner_rm"] = rm_code
    customers = map_data.customers_in_cells(conn, grid_id=grid_id, cell_ids=owned)
    leads = customers.groupby("cell_id")["open_leads"].sum()
    cells["open_leads"] = cells["cell_id"].map(leads).fillna(0).astype(int)
    rm = map_data.rm_row(conn, rm_code=rm_code)
    out, _ = map_data.facilities(conn, county_code=g["county_code"], outlets=[rm["outlet_code"]] if rm else None)
    return rm_page(cells, customers, rm_code=rm_code, rm_name=(rm and rm["name"]) or "", options=options,
                   mask_name=mask, outlets=out, background=background(conn, g["county_code"]))


def preview_html(conn: Connection, *, options: PageOptions, grid_id: int | None = None,
                 import_run: int | None = None) -> str:
    """The planner's preview: a village grid's villages, or the villages of one import run."""
    run = None
    codes: set[str] | None = None
    if import_run is not None:
        run, county, codes = map_data.import_run_villages(conn, run_id=import_run)
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
    if codes is not None:
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
    cells = with_places(conn, grids.load_cells(conn, grid_id=grid_id, with_stats=True), grid_id)
    g = grids.get_grid(conn, grid_id=grid_id)
    rms = territories.rms_for(conn, grid_id=grid_id)
    return compare_page(cells, _assignment(conn, grid_id, a), _assignment(conn, grid_id, b), options=options,
                        per_rm=result.get("per_rm"), labels=(str(a), str(b)), rms=rms[["rm_id", "name"]],
                        customers_changing=result.get("customers_changing_rm"),
                        background=background(conn, g["county_code"]))


def recent_weeks(week: str, tz: str, n: int = 12) -> list[str]:
    """This week and the ``n - 1`` before it, newest first (and ``week`` if it is older)."""
    today = dt.datetime.now(dt.UTC).astimezone(ZoneInfo(tz)).date()
    out = []
    for i in range(n):
        y, w, _ = (today - dt.timedelta(weeks=i)).isocalendar()
        out.append(f"{y}-W{w:02d}")
    return out if week in out else [*out, week]


def visits_html(conn: Connection, *, scope: Scope, settings: Settings, options: PageOptions,
                week: str | None = None, grid_id: int | None = None) -> str:
    """The branch manager's visits page: the week report of the RMs ``scope`` may see, their flagged visits, and
    the visits layer on a grid (``grid_id``, else the one most of those RMs own cells of; of equals the one with
    more cells the reader sees, then the newest)."""
    tz = settings.visits.timezone
    seen = [g for g in index_reads.visible_grids(conn, scope=scope) if g["cells"]]
    rms = visible_rms(conn, scope=scope)
    owners = [r for r in index_reads.visible_rm_owners(conn, scope=scope) if r["code"] in rms]
    if grid_id is None and seen:
        # The grid most of the reader's RMs own cells of (their territories); of equals, the one showing the
        # reader more cells (an RM's 372 hexagons, not the one village cell they also hold on a village grid),
        # then the newest.
        held = {g["id"]: (sum(r["grid_id"] == g["id"] for r in owners), g["cells"], g["id"]) for g in seen}
        grid_id = max(held, key=held.get)
    # Territories counted on the map's grid: the table's customers add up to the map's.
    report = visit_ops.week_report(conn, scope=scope, settings=settings, week=week, grid_id=grid_id)
    flagged = visit_ops.flagged_visits(conn, scope=scope, settings=settings, week=report["week"])["items"]
    links = {}
    for r in sorted(owners, key=lambda r: (r["grid_id"] != grid_id, -r["grid_id"])):
        links.setdefault(r["code"], f"/maps/rm?grid_id={r['grid_id']}&rm_code={quote(r['code'], safe='')}")
    cells = cover = out = bg = None
    if grid_id is not None:
        cover = visit_ops.cell_cover(conn, scope=scope, settings=settings, grid_id=grid_id, week=report["week"])
        g = grids.get_grid(conn, grid_id=grid_id)
        ids = [r["cell_id"] for r in cover["items"]]
        if ids:
            cells = with_places(conn, grids.load_cells(conn, grid_id=grid_id, cell_ids=ids, with_stats=False), grid_id)
            owned = territories.current_owners(conn, grid_id=grid_id)
            cells["owner_rm"] = cells["cell_id"].map(lambda c: owned.get(c) if owned.get(c) in rms else None)
        mine = list(scope.outlet_codes) if scope.role == "branch_manager" else None
        if scope.role == "rm":
            rm = map_data.rm_row(conn, rm_code=scope.rm_code)
            mine = [rm["outlet_code"]] if rm and rm.get("outlet_code") else []
        out, _ = map_data.facilities(conn, county_code=g["county_code"], outlets=mine)
        bg = background(conn, g["county_code"])
    names = [(x["id"], f"{x['county_name']} · {x['kind']} #{x['id']}") for x in seen]
    return visits_page(report, flagged=flagged, weeks=recent_weeks(report["week"], tz), options=options,
                       rm_links=links, cells=cells, cover=cover, grid_id=grid_id, grids=names, outlets=out,
                       background=bg)


TILE_URL = "/tiles/{layer}/{z}/{x}/{y}.pbf?grid_id={grid_id}"
DASHBOARD_URL = "/maps/dashboard?grid_id={grid_id}"


def province_html(conn: Connection, *, scope: Scope, options: PageOptions, kind: str = "h3",
                  resolution: int | None = None) -> str:
    """Every county ``scope`` may see with its latest grid of ``kind``, drawn from the API's vector tiles.

    Served only (``/maps/province``): the page embeds county outlines and
    figures, never cells or customers. Counties whose grid shows ``scope`` no
    cell (a branch manager's other counties) are left out; NotFound when no
    grid is left.
    """
    rows = province.province_grids(conn, scope=scope, kind=kind, resolution=resolution)
    rows = [r for r in rows if r["grid_id"] is None or r["cells"] > 0]
    drawn = [r["grid_id"] for r in rows if r["grid_id"] is not None]
    if not drawn:
        which = f"{kind} grid" + ("" if resolution is None else f" at resolution {resolution}")
        raise NotFound(f"no {which} you may see: gridmkt grid build --county C --kind {kind}")
    classes = class_breaks(province.score_quantiles(conn, scope=scope, grid_ids=drawn), k=5)
    return province_page(rows, options=options, score_classes=classes, tile_url=TILE_URL,
                         dashboard_url=DASHBOARD_URL, kind=kind)


def write_page(html: str, path: Path) -> dict:
    """Write a page; report its path and size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return {"file": str(path), "bytes": path.stat().st_size}


