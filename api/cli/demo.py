"""``gridmkt demo``: real Ningxia data in, synthetic bank, grids, territories, gaps, maps, server."""

from __future__ import annotations

import click

from api.cli import cli, settings
from api.cli.output import command
from api.db import open_engine


@command(cli, "demo")
@click.option("--county", default="640121", show_default=True, help="County adcode to build grids for (640121 = 永宁县).")
@click.option("--customers", "n_customers", type=click.IntRange(100, 20_000_000), default=100_000, show_default=True,
              help="Synthetic customers in the demo county.")
@click.option("--seed", type=int, default=20261122, show_default=True, help="Seed of every synthetic draw.")
@click.option("--res", type=click.IntRange(6, 10), default=8, show_default=True, help="H3 resolution of the demo grid.")
@click.option("--province", is_flag=True,
              help="Also give every other county an H3 grid (at --res) with synthetic customers assigned and gaps "
                   "scored, so that /maps/province shows the whole province (a few minutes).")
@click.option("--province-customers", type=click.IntRange(0, 5_000_000), default=20_000, show_default=True,
              help="With --province: synthetic customers spread over the other counties by households.")
@click.option("--no-serve", is_flag=True, help="Run every step and exit instead of serving the API.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def demo(ctx, county, n_customers, seed, res, province, province_customers, no_serve, host, port):
    """Load the Ningxia demo through the normal importers and build everything on it.

    Grids, territories and maps are built for one county; with --province every other county
    also gets an H3 grid with customers assigned and gaps scored (pipeline step "province").
    """
    from api.demo import ALT_SCENARIO, DemoContext, run_demo

    s = settings()
    engine = open_engine(s.db)

    def on_step(name, result, seconds):
        ctx.say(f"[green]✓[/green] {name} ({seconds:.1f} s)")

    with ctx.progress_factory() as factory:
        dctx = DemoContext(
            engine=engine, settings=s, county=county, customers=n_customers, seed=seed, res=res,
            province=province, province_customers=province_customers, workdir=s.db.home / "demo", progress=factory,
        )
        results = run_demo(dctx, on_step=on_step)
    engine.dispose()
    base = f"http://{host}:{port}"
    h3 = results["grids"]["h3"]["grid_id"]
    village = results["grids"]["village"]["grid_id"]
    rm_code = results.get("maps", {}).get("rm_code")
    results["urls"] = {
        "api docs": f"{base}/docs",
        "sign in": f"{base}/maps/login",
        "dashboard": f"{base}/maps/dashboard?grid_id={h3}",
        "rm map": f"{base}/maps/rm?grid_id={h3}&rm_code={rm_code}",
        "rm day": f"{base}{results['visits']['day_path']}" if results.get("visits", {}).get("day_path") else None,
        "planner preview": f"{base}/maps/preview?grid_id={village}",
        "scenario compare": f"{base}/maps/compare?grid_id={h3}&a=current&b={ALT_SCENARIO}",
        "province": f"{base}/maps/province",
        **{f"offline {k.removeprefix('map ')}": v for k, v in results.get("maps", {}).get("urls", {}).items()},
    }
    results["urls"] = {k: v for k, v in results["urls"].items() if v}
    for name, url in results["urls"].items():
        ctx.say(f"  {name:18} {url}")
    if no_serve:
        return results if ctx.as_json else _summary(results)
    ctx.say(f"serving on {base} (Ctrl-C to stop); users admin, planner, branch_manager, rm, analyst (user name = role); "
            f"password {results['users']['password']}")
    if ctx.as_json:
        from api.cli.output import dumps

        click.echo(dumps(results))
        ctx.printed = True
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(s), host=host, port=port, log_level="warning")
    return None if ctx.as_json else after_serving(s)


def after_serving(s) -> dict:
    """What is still running once the API server has stopped (Ctrl-C), and how to stop it."""
    if s.db.url:
        return {"API server": "stopped", "database": "external (GRIDMKT_DATABASE_URL), left as it was"}
    return {"API server": "stopped",
            "database": f"the embedded PostGIS cluster under {s.db.home.resolve()} is still running, "
                        "so that later gridmkt commands find the demo data; stop it with: gridmkt db down "
                        "(./run gridmkt db down from the project folder)"}


def _second(c: dict) -> str:
    """What the demo's second scenario changes, in words."""
    who = f"{c['rm_leaving']} leaves" if c.get("rm_leaving") else "same RMs"
    return (f"{c['scenario']} ({who}): {c['cells_moved']:,} of {c['cells']:,} cells and "
            f"{c.get('customers_moved') or 0:,} customers change RM")


def _summary(results: dict) -> dict:
    """What a person wants to read at the end of the demo (``--json`` gives everything)."""
    grids = results["grids"]
    plan = results["territories"]["h3"]["plan"]
    prov = results.get("province")
    return {
        "seconds per step": ", ".join(f"{k} {v['seconds']:.0f}" for k, v in results.items()
                                      if isinstance(v, dict) and "seconds" in v),
        "customers": grids["h3"]["customers"],
        "H3 grid": f"#{grids['h3']['grid_id']}: {grids['h3']['cells']} cells",
        "village grid": f"#{grids['village']['grid_id']}: {grids['village']['cells']} cells "
                        f"({grids['village']['report'].get('merged_villages', 0)} villages merged at shared points)",
        "territories": f"{plan['rms']} RMs, contiguity {plan['contiguity']:.0%}, CV {plan['cv']:.2f}",
        "second scenario": _second(results["territories"]["h3"]["compare"]),
        "gap classes (H3)": ", ".join(f"{k} {v}" for k, v in results["gaps"]["h3"]["classes"].items()),
        **({"province": f"{prov['counties']} more counties: {prov['cells']:,} H3 cells, "
                        f"{prov['placed']:,} of {prov['customers']:,} customers placed"} if prov else {}),
        "demo users": "admin, planner, branch_manager, rm, analyst / " + results["users"]["password"],
    }
