"""The Ningxia demo as a pipeline of named steps.

Real public data goes in through the same importers users use (the 22 county
boundaries in GCJ-02, the official village and township list with its best
known points); the bank's own data (legal entities, outlets, service points,
RMs, customers, visits, leads, tags) is generated, seeded and labelled
synthetic. Later steps build grids, assign customers, plan and publish
territories, score gaps, suggest sites, create demo users, make today's visit
plans of the county's RMs and export maps.
With ``province`` set, one more step gives every other county an H3 grid
(and a modest number of synthetic customers) for the province overview.

A step is ``(name, function(ctx) -> dict)``; add one by appending to
:data:`STEPS` (and to :data:`ONLY_IF` if it is optional). Each step's result
is kept in ``ctx.results[name]`` for the steps after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from api.settings import Settings
from geodata import DEMO_DATA
from geodata.importers.spatial import to_multipolygons
from geodata.visit_measures import reference_time

DATA = DEMO_DATA
USER = "demo"
DEMO_PASSWORD = "gridmkt-demo"  # printed by the demo; the demo users are for a local sandbox only
# Customer numbers of the other counties (--province) start here: above any demo county's (--customers <= 20M).
PROVINCE_ID_OFFSET = 1_000_000_000
ProgressFn = Callable[[float, str], None]


@dataclass
class DemoContext:
    """What every step can see."""

    engine: Engine
    settings: Settings
    county: str = "640121"
    customers: int = 100_000
    seed: int = 20261122
    res: int = 8
    # The province step: every other county gets an H3 grid and, among them, this many customers.
    province: bool = False
    province_customers: int = 20_000
    province_counties: tuple[str, ...] | None = None  # None: every county the reference step imports
    workdir: Path = Path(".gridmkt/demo")
    progress: Callable[[str], ProgressFn] = lambda label: (lambda f, m="": None)
    results: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    # The demo's one reference date: when it runs. Synthetic visits and leads are dated up to the day
    # before (activity_day), customers' birth and opening dates and RMs' hiring dates are seeded offsets
    # before that day, customers are assigned and gaps scored as of it, so that scoring again
    # later (gridmkt gaps score, or after an import or a publish, both as of now) gives the same classes.
    as_of: str = field(default_factory=lambda: reference_time().isoformat())

    @property
    def activity_day(self) -> np.datetime64:
        """The day synthetic activity is dated up to (exclusive): the day the demo runs (UTC)."""
        return np.datetime64(pd.Timestamp(self.as_of).tz_convert("UTC").date(), "D")


def _import(ctx: DemoContext, kind: str, path: Path, *, crs: str = "wgs84", synthetic: bool = True,
            mapping: dict | None = None) -> dict:
    from geodata.importers import run_import

    summary = run_import(
        ctx.engine, kind=kind, path=path, user=USER, crs=crs, mapping=mapping, synthetic=synthetic,
        rejects_dir=ctx.settings.db.home / "rejects", progress=ctx.progress(f"import {kind}"),
    )
    keep = ("run_id", "status", "inserted", "updated", "unchanged", "rejected", "warnings")
    return {k: summary.get(k) for k in keep if k in summary} | {"counts": summary.get("counts")}


def _villages_wgs84() -> pd.DataFrame:
    v = pd.read_csv(DATA / "ningxia_villages.csv", dtype={"code": str, "street_code": str, "county_code": str})
    return v.rename(columns={"street_code": "township_code", "street_name": "township_name",
                             "lon_wgs84": "lon", "lat_wgs84": "lat"})


def _prepared(ctx: DemoContext) -> dict:
    """Counties, villages with estimated households, and legal entities: computed once per run."""
    if "prepared" not in ctx.cache:
        from grid.synth import legal_entities, village_households

        counties = gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")
        pop = pd.read_csv(DATA / "ningxia_county_population_2020.csv", dtype={"code": str})
        county = pop[pop["level"] == "county"]
        county_pop = dict(zip(county["code"], county["pop_2020_census"], strict=True))
        # The official list has no household counts: spread each county's 2020 census
        # population over its villages (skewed); the import run is labelled synthetic.
        villages = village_households(_villages_wgs84(), county_pop, np.random.default_rng([ctx.seed, 1]))
        entities = legal_entities(pd.DataFrame(counties.drop(columns="geometry")))
        # The boundaries as the importer stores them (WGS84, like the village points): customers stay inside.
        within = dict(zip(counties["adcode"], to_multipolygons(counties.geometry.to_numpy(), "gcj02"), strict=True))
        ctx.cache["prepared"] = {"counties": counties, "villages": villages, "entities": entities, "within": within}
    return ctx.cache["prepared"]


def step_reference(ctx: DemoContext) -> dict:
    """Real data: counties (GCJ-02 as shipped), townships, villages (households estimated from the census)."""
    prep = _prepared(ctx)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    le_path = ctx.workdir / "legal_entities.csv"
    prep["entities"].to_csv(le_path, index=False)
    # Counties first: a legal-entities file links the counties it names.
    out = {"counties": _import(ctx, "counties", DATA / "ningxia_counties_gcj02.geojson", crs="gcj02", synthetic=False)}
    out["legal-entities"] = _import(ctx, "legal-entities", le_path)
    out["townships"] = _import(
        ctx, "townships", DATA / "ningxia_townships.csv", crs="gcj02", synthetic=False,
        mapping={"street_code": "code", "street_name": "name", "county_code": "county_code",
                 "town_lon_gcj": "lon", "town_lat_gcj": "lat"},
    )
    raw = pd.read_csv(DATA / "ningxia_villages.csv", dtype=str)
    est = prep["villages"].set_index("code")
    raw["households"] = raw["code"].map(est["households"]).astype("Int64")
    raw["population"] = raw["code"].map(est["population"]).astype("Int64")
    vpath = ctx.workdir / "villages_with_household_estimates.csv"
    raw[["code", "name", "street_code", "street_name", "county_code", "households", "population",
         "lon_gcj02", "lat_gcj02", "coord_level", "is_community"]].to_csv(vpath, index=False)
    out["villages"] = _import(
        ctx, "villages", vpath, crs="gcj02", synthetic=True,
        mapping={"street_code": "township_code", "street_name": "township_name", "lon_gcj02": "lon", "lat_gcj02": "lat"},
    )
    return out


def step_synthetic(ctx: DemoContext) -> dict:
    """Synthetic bank: outlets and service points province-wide, RMs, customers of the demo county, activity."""
    from grid import synth

    prep = _prepared(ctx)
    counties, villages, entities = prep["counties"], prep["villages"], prep["entities"]
    rng = np.random.default_rng([ctx.seed, 2])
    outs = synth.outlets(villages, counties, 17, rng)
    points = synth.service_points(villages, outs, 0.8, rng)
    day = ctx.activity_day  # every synthetic date is a seeded offset before the day the demo runs
    staff = synth.rms(outs, rng=rng, as_of=day)
    files = {}
    for kind, df in (("outlets", outs), ("service-points", points), ("rms", staff)):
        files[kind] = ctx.workdir / f"{kind}.csv"
        df.to_csv(files[kind], index=False)
    local = villages[villages["county_code"] == ctx.county]
    if local.empty:
        raise ValueError(f"county {ctx.county} has no villages in the shipped list")
    cpath = ctx.workdir / "customers.csv"
    sample = []
    with open(cpath, "w", encoding="utf-8", newline="") as fh:
        made = synth.customers(local, ctx.customers, rng, entity_of=synth.entity_by_county(entities),
                               within=prep["within"], as_of=day)
        for i, chunk in enumerate(made):
            chunk.to_csv(fh, index=False, header=(i == 0))
            sample.append(chunk)
    custs = pd.concat(sample, ignore_index=True)
    files["customers"] = cpath
    local_staff = staff[staff["outlet_code"].isin(outs.loc[outs["county_code"] == ctx.county, "code"])]
    for kind, df in (("visits", synth.visits(custs, local_staff, rng=rng, outlets=outs, as_of=day)),
                     ("leads", synth.leads(custs, rng, as_of=day)), ("tags", synth.tags(custs, rng))):
        files[kind] = ctx.workdir / f"{kind}.csv"
        df.to_csv(files[kind], index=False)
    out = {"entities": len(entities), "outlets": len(outs), "service_points": len(points), "rms": len(staff),
           "customers": len(custs)}
    for kind in ("outlets", "service-points", "rms", "customers", "visits", "leads", "tags"):
        out[f"import {kind}"] = _import(ctx, kind, files[kind])
    return out


def step_grids(ctx: DemoContext) -> dict:
    """An H3 grid and a village grid for the demo county, customers assigned to both."""
    from geodata import assign, grids

    out = {}
    for kind, res in (("h3", ctx.res), ("village", None)):
        with ctx.engine.begin() as conn:
            g = grids.build_grid(conn, county_code=ctx.county, kind=kind, resolution=res,
                                 progress=ctx.progress(f"grid {kind}"))
            a = assign.assign_customers(conn, grid_id=g["id"], progress=ctx.progress(f"assign {kind}"),
                                        as_of=ctx.as_of)
        out[kind] = {"grid_id": g["id"], "cells": g["cell_count"], "report": g["report"],
                     **{k: a[k] for k in ("customers", "by_point", "by_village_code", "outside_county", "no_location")}}
    return out


# The second scenario the demo compares with the published plan: one RM fewer (the least loaded one leaves),
# the others keeping their cells unless balance needs a move. A planner weighs such a plan; one that
# re-draws most of the county (a travel-weighted plan moved 1,234 of 1,600 cells) nobody would.
ALT_SCENARIO = "demo-one-fewer"


def _lightest_rm(per_rm: list[dict]) -> str | None:
    """The RM with the least workload among those who own cells in a plan (ties: lowest code)."""
    owning = [r for r in per_rm if r.get("cells", 0) > 0]
    return min(owning, key=lambda r: (r["workload"], str(r["rm"])))["rm"] if len(owning) > 1 else None


def step_territories(ctx: DemoContext) -> dict:
    """Plan territories for the county's outlets, publish, and compare a second scenario (one RM fewer)."""
    from geodata import scenarios

    out = {}
    for kind in ("h3", "village"):
        gid = ctx.results["grids"][kind]["grid_id"]
        with ctx.engine.begin() as conn:
            plan = scenarios.plan_scenario(conn, grid_id=gid, name="demo-plan", user=USER, seed=ctx.seed,
                                           progress=ctx.progress(f"territories {kind}"))
            pub = scenarios.publish(conn, scenario_id=plan["id"], user=USER)
            leaving = _lightest_rm(plan["report"]["per_rm"])
            alt = scenarios.plan_scenario(conn, grid_id=gid, name=ALT_SCENARIO, user=USER, seed=ctx.seed + 1,
                                          keep_current=True, without_rms=[leaving] if leaving else None)
            cmp = scenarios.compare(conn, grid_id=gid, a="current", b=ALT_SCENARIO)
        out[kind] = {"grid_id": gid, "plan": plan["report"]["plan"], "baseline": plan["report"]["baseline_nearest_outlet"],
                     "published_cells": pub["cells_changed"], "second_scenario": alt["id"],
                     "compare": {"scenario": ALT_SCENARIO, "rm_leaving": leaving, "cells": plan["report"]["plan"]["cells"],
                                 **{k: cmp.get(k) for k in ("cells_moved", "customers_moved", "customers_changing_rm")}}}
    return out


def step_gaps(ctx: DemoContext) -> dict:
    """Score coverage gaps on both grids and suggest new service points on the H3 grid."""
    from geodata import gaps

    out = {}
    for kind in ("h3", "village"):
        gid = ctx.results["grids"][kind]["grid_id"]
        with ctx.engine.begin() as conn:
            s = gaps.score_grid(conn, grid_id=gid, trigger="demo", as_of=ctx.as_of)
        out[kind] = {"gap_run_id": s["gap_run_id"], "classes": s["classes"], "top_blank": s["top_blank"][:3]}
    with ctx.engine.connect() as conn:
        out["sites"] = gaps.suggest_sites(conn, grid_id=ctx.results["grids"]["h3"]["grid_id"], count=5, radius_km=3.0)
    return out


def _other_counties(ctx: DemoContext) -> pd.DataFrame:
    """adcode and name of the counties the province step builds (all but the demo county), in adcode order."""
    counties = pd.DataFrame(_prepared(ctx)["counties"].drop(columns="geometry"))
    if ctx.province_counties is not None:
        unknown = set(ctx.province_counties) - set(counties["adcode"])
        if unknown:
            raise ValueError(f"not in the shipped counties: {', '.join(sorted(unknown))}")
        counties = counties[counties["adcode"].isin(ctx.province_counties)]
    return counties[counties["adcode"] != ctx.county].sort_values("adcode")[["adcode", "name"]]


def _province_customers(ctx: DemoContext, codes: list[str]) -> dict:
    """Synthetic customers of the other counties (clustered around their villages), imported like the rest."""
    from grid import synth

    prep = _prepared(ctx)
    villages = prep["villages"][prep["villages"]["county_code"].isin(codes)]
    path = ctx.workdir / "customers_province.csv"
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    made = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for i, chunk in enumerate(synth.customers(
                villages, ctx.province_customers, np.random.default_rng([ctx.seed, 3]),
                entity_of=synth.entity_by_county(prep["entities"]), id_offset=PROVINCE_ID_OFFSET,
                within=prep["within"], as_of=ctx.activity_day)):
            chunk.to_csv(fh, index=False, header=(i == 0))
            made += len(chunk)
    return {"customers": made, "import customers": _import(ctx, "customers", path)}


def step_province(ctx: DemoContext) -> dict:
    """Every other county: synthetic customers, an H3 grid, customers assigned, gaps scored (``--province``)."""
    from geodata import assign, gaps, grids

    others = _other_counties(ctx)
    codes = others["adcode"].tolist()
    out = _province_customers(ctx, codes) if ctx.province_customers > 0 and codes else {"customers": 0}
    bar = ctx.progress("province")
    per_county = {}
    # One bar for the step; each county's share split over build, assign and score.
    for i, (code, name) in enumerate(zip(codes, others["name"], strict=True)):
        def part(lo: float, hi: float, i: int = i, name: str = name) -> ProgressFn:
            return lambda f, m="": bar((i + lo + (hi - lo) * f) / len(codes), f"{name} {m}".strip())

        with ctx.engine.begin() as conn:
            g = grids.build_grid(conn, county_code=code, kind="h3", resolution=ctx.res, progress=part(0.0, 0.5))
            a = assign.assign_customers(conn, grid_id=g["id"], progress=part(0.5, 0.8), as_of=ctx.as_of)
            part(0.8, 1.0)(0.0, "gap scores")
            s = gaps.score_grid(conn, grid_id=g["id"], trigger="demo", as_of=ctx.as_of)
        part(0.8, 1.0)(1.0, "done")
        per_county[code] = {"name": name, "grid_id": g["id"], "cells": g["cell_count"], "customers": a["customers"],
                            "placed": a["by_point"] + a["by_village_code"], "blank_cells": s["classes"].get("blank", 0)}
    rows = per_county.values()
    return out | {"counties": len(per_county), "cells": sum(r["cells"] for r in rows),
                  "placed": sum(r["placed"] for r in rows), "grids": per_county}


def step_users(ctx: DemoContext) -> dict:
    """Demo users of every role in the demo county's legal entity (password printed below)."""
    from api.auth import hash_password
    from geodata import grids, territories, users

    with ctx.engine.begin() as conn:
        le = grids.load_county(conn, code=ctx.county)["legal_entity_id"]
        busiest = territories.busiest_rm(conn, county_code=ctx.county)
        rm_code, outlet = (busiest["rm_code"], busiest["outlet_code"]) if busiest else (None, None)
        pw = hash_password(DEMO_PASSWORD)
        made = []
        specs = [("admin", "admin", None, None, []), ("planner", "planner", le, None, []),
                 ("branch_manager", "branch_manager", le, None, [outlet] if outlet else []),
                 ("rm", "rm", le, rm_code, []), ("analyst", "analyst", le, None, [])]
        for username, role, le_id, rm, outlets in specs:
            if role == "rm" and rm is None:
                continue
            users.delete_user(conn, username=username)
            users.create_user(conn, username=username, password_hash=pw, role=role, legal_entity_id=le_id,
                              rm_code=rm, outlet_codes=outlets)
            made.append({"username": username, "role": role, "rm_code": rm, "outlets": outlets})
    return {"password": DEMO_PASSWORD, "users": made}


def step_visits(ctx: DemoContext) -> dict:
    """Today's visit plan and route for every RM of the demo county (the phone page of one: /maps/rm/{rm}/day)."""
    from dataclasses import replace

    from api.operations import visits as ops
    from geodata.visits import plans

    settings = replace(ctx.settings, visits=replace(ctx.settings.visits, time_limit_s=0.5))
    with ctx.engine.connect() as conn:
        rms = plans.rms_with_territory(conn, county_code=ctx.county)
    made, stops, dropped = 0, 0, 0
    for rm in rms:
        with ctx.engine.begin() as conn:  # one plan per transaction: a failing RM keeps the others' plans
            day = ops.make_plan(conn, actor=USER, scope=None, settings=settings, rm_code=rm)
        made, stops, dropped = made + 1, stops + len(day["stops"]), dropped + len(day["dropped"])
    rm_code = next((u["rm_code"] for u in ctx.results.get("users", {}).get("users", []) if u.get("rm_code")),
                   rms[0] if rms else None)
    return {"plans": made, "stops": stops, "dropped": dropped, "rm_code": rm_code,
            "day_path": f"/maps/rm/{rm_code}/day" if rm_code else None}


def step_maps(ctx: DemoContext) -> dict:
    """Export the dashboard, one RM's phone map, the planner preview and a scenario compare as offline pages."""
    from api import map_pages as pages_of
    from geodata import territories

    out_dir = ctx.workdir / "maps"
    opts = pages_of.page_options(ctx.settings)
    h3, village = ctx.results["grids"]["h3"]["grid_id"], ctx.results["grids"]["village"]["grid_id"]
    rm_code = next((u["rm_code"] for u in ctx.results.get("users", {}).get("users", []) if u.get("rm_code")), None)
    files: dict[str, str] = {}
    with ctx.engine.connect() as conn:
        if rm_code is None:  # no demo RM user: the RM owning most cells
            busiest = territories.busiest_rm(conn, grid_id=h3)
            rm_code = busiest["rm_code"] if busiest else None
        pages = {
            "dashboard": lambda: pages_of.dashboard_html(conn, grid_id=h3, options=opts,
                                                            tz=ctx.settings.visits.timezone),
            "rm": lambda: pages_of.rm_html(conn, grid_id=h3, rm_code=rm_code, options=opts),
            "preview": lambda: pages_of.preview_html(conn, grid_id=village, options=opts),
            "compare": lambda: pages_of.compare_html(conn, grid_id=h3, a="current", b=ALT_SCENARIO, options=opts),
        }
        for name, build in pages.items():
            files[name] = pages_of.write_page(build(), out_dir / f"{name}.html")["file"]
    urls = {f"map {name}": Path(path).resolve().as_uri() for name, path in files.items()}
    return {"urls": urls, "files": files, "rm_code": rm_code}


STEPS: list[tuple[str, Callable[[DemoContext], dict]]] = [
    ("reference", step_reference),
    ("synthetic", step_synthetic),
    ("grids", step_grids),
    ("territories", step_territories),
    ("gaps", step_gaps),
    ("province", step_province),
    ("users", step_users),
    ("visits", step_visits),
    ("maps", step_maps),
]
# Optional steps run only when their condition holds (the default demo stays one county).
ONLY_IF: dict[str, Callable[[DemoContext], bool]] = {"province": lambda ctx: ctx.province}


def run_demo(ctx: DemoContext, *, on_step: Callable[[str, dict, float], None] | None = None) -> dict:
    """Run every step in order (optional ones when :data:`ONLY_IF` says so); returns all results with per-step seconds."""
    for name, fn in STEPS:
        if name in ONLY_IF and not ONLY_IF[name](ctx):
            continue
        t0 = time.perf_counter()
        ctx.results[name] = fn(ctx)
        seconds = round(time.perf_counter() - t0, 2)
        ctx.results[name]["seconds"] = seconds
        if on_step:
            on_step(name, ctx.results[name], seconds)
    return ctx.results
