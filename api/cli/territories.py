"""``gridmkt territories ...`` (ownership, balancing) and ``gridmkt scenarios ...`` (the sandbox)."""

from __future__ import annotations

import json

import click

from api.cli import actor, cli, settings, user_option
from api.cli.output import command
from api.db import open_engine
from api.operations import scenarios as sc_ops
from api.operations import territories as terr_ops
from geodata import scenarios as sc
from geodata import territories as terr


def _weights(text_: str | None) -> dict | None:
    if not text_:
        return None
    try:
        w = json.loads(text_)
    except json.JSONDecodeError:
        pairs = [kv.split("=", 1) for kv in text_.split(",")]
        bad = [kv for kv, p in zip(text_.split(","), pairs, strict=True) if len(p) != 2]
        if bad:
            raise click.BadParameter(f"weights must be name=number pairs, not {bad[0]!r}", param_hint="--weights") from None
        w = dict(pairs)
    try:
        return {k.strip(): float(v) for k, v in w.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise click.BadParameter(f"weights must be name=number pairs: {exc}", param_hint="--weights") from exc


@cli.group()
def territories() -> None:
    """Who owns which cells: automatic balancing into a scenario, manual changes, locks, history."""


@command(territories, "plan")
@click.option("--grid", "grid_id", type=int, required=True, help="Grid id.")
@click.option("--outlet", "outlets", multiple=True, help="Plan for the RMs of these outlets (repeatable; default all of the county).")
@click.option("--scenario", "name", required=True, help="Draft scenario to create or redo.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed: the same seed gives the same plan.")
@click.option("--weights", default=None, help="Workload weights, e.g. customers=0.4,households=0.3,deposit=0.15,loan=0.15,travel=0.1")
@click.option("--keep-current", is_flag=True, help="Keep current owners unless balance needs a move.")
@click.option("--max-distance-km", type=float, default=None, help="Cells farther than this from an RM's home outlet are not given to that RM.")
@click.option("--without", "without_rms", multiple=True,
              help="Leave this RM out (repeatable): a plan with one RM fewer; with --keep-current the others keep their cells unless balance needs a move.")
@user_option
def plan(ctx, grid_id, outlets, name, seed, weights, keep_current, max_distance_km, without_rms, user):
    """Divide a grid's cells among RMs (balanced, contiguous, compact) into a draft scenario."""
    eng = open_engine(settings().db)
    with ctx.progress("planning") as bar, eng.begin() as conn:
        return sc_ops.plan(conn, actor=actor(user), grid_id=grid_id, name=name, outlets=list(outlets) or None,
                           seed=seed, weights=_weights(weights), keep_current=keep_current,
                           max_distance_km=max_distance_km, progress=bar, without_rms=list(without_rms) or None)


@command(territories, "assign")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--rm", "rm_code", required=True, help="RM code (employee number).")
@click.option("--cell", "cells", multiple=True, required=True, help="Cell id (repeatable).")
@click.option("--force", is_flag=True, help="Also reassign locked cells.")
@click.option("--reason", default=None, help=f"Why (kept in the history; default {terr_ops.ASSIGN_REASON!r}).")
@user_option
def assign_cmd(ctx, grid_id, rm_code, cells, force, reason, user):
    """Give cells to an RM now (history written; lists customers changing RM)."""
    with open_engine(settings().db).begin() as conn:
        return terr_ops.assign(conn, actor=actor(user), grid_id=grid_id, cell_ids=list(cells), rm_code=rm_code,
                               reason=reason, force=force)


@command(territories, "move")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--from", "from_rm", required=True)
@click.option("--to", "to_rm", required=True)
@click.option("--cell", "cells", multiple=True, help="Cells to move (default: all of --from).")
@click.option("--force", is_flag=True, help="Also move locked cells.")
@click.option("--reason", default=None, help=f"Why (kept in the history; default {terr_ops.MOVE_REASON!r}).")
@user_option
def move_cmd(ctx, grid_id, from_rm, to_rm, cells, force, reason, user):
    """Move cells between RMs."""
    with open_engine(settings().db).begin() as conn:
        return terr_ops.move(conn, actor=actor(user), grid_id=grid_id, from_rm=from_rm, to_rm=to_rm,
                             cell_ids=list(cells) or None, reason=reason, force=force)


@command(territories, "lock")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--cell", "cells", multiple=True, required=True)
@click.option("--unlock", is_flag=True, help="Remove the lock instead.")
@click.option("--reason", default=None)
@user_option
def lock_cmd(ctx, grid_id, cells, unlock, reason, user):
    """Lock cells so the optimiser never moves them (or --unlock)."""
    with open_engine(settings().db).begin() as conn:
        return terr_ops.lock(conn, actor=actor(user), grid_id=grid_id, cell_ids=list(cells), locked=not unlock,
                             reason=reason)


@command(territories, "co-owner")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--rm", "rm_code", required=True, help="RM code of the co-owner.")
@click.option("--cell", "cells", multiple=True, required=True)
@click.option("--remove", is_flag=True, help="Remove the co-owner instead.")
@user_option
def co_owner_cmd(ctx, grid_id, rm_code, cells, remove, user):
    """Add a co-owner (e.g. an outlet head who oversees) on cells, or --remove them; owners stay."""
    with open_engine(settings().db).begin() as conn:
        return terr_ops.co_owner(conn, actor=actor(user), grid_id=grid_id, cell_ids=list(cells), rm_code=rm_code,
                                 add=not remove)


@command(territories, "handover")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--rm", "rm_code", required=True, help="The RM who leaves.")
@click.option("--to", "to_rm", default=None, help="Give everything to this RM (default: spread by the optimiser).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the optimiser (reproducible spread).")
@user_option
def handover_cmd(ctx, grid_id, rm_code, to_rm, seed, user):
    """Hand over all cells of an RM who leaves."""
    with open_engine(settings().db).begin() as conn:
        return terr_ops.handover(conn, actor=actor(user), grid_id=grid_id, rm_code=rm_code, to_rm=to_rm, seed=seed)


@command(territories, "history")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--cell", "cell_id", default=None)
@click.option("--rm", "rm_code", default=None)
def history_cmd(ctx, grid_id, cell_id, rm_code):
    """Ownership history of a grid (optionally of one cell or one RM), newest first."""
    with open_engine(settings().db).connect() as conn:
        return {"history": terr.history(conn, grid_id=grid_id, cell_id=cell_id, rm_code=rm_code)}


@cli.group()
def scenarios() -> None:
    """Draft territory assignments: list, show, create, compare, publish, discard."""


@command(scenarios, "list")
@click.option("--grid", "grid_id", type=int, default=None)
def list_cmd(ctx, grid_id):
    """Scenarios, newest first."""
    with open_engine(settings().db).connect() as conn:
        return {"scenarios": sc.list_scenarios(conn, grid_id=grid_id)}


@command(scenarios, "show")
@click.argument("name")
@click.option("--grid", "grid_id", type=int, default=None, help="Grid id, when the name is used in several grids.")
def show_cmd(ctx, name, grid_id):
    """One scenario with its plan report and per-RM cell counts."""
    with open_engine(settings().db).connect() as conn:
        return sc.show_scenario(conn, scenario_id=sc.find_scenario(conn, ref=name, grid_id=grid_id)["id"])


@command(scenarios, "create")
@click.argument("name")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--empty", is_flag=True, help="Start empty instead of from current assignments.")
@user_option
def create_cmd(ctx, name, grid_id, empty, user):
    """Create a draft scenario from current assignments (or empty)."""
    with open_engine(settings().db).begin() as conn:
        return sc_ops.create(conn, actor=actor(user), grid_id=grid_id, name=name, from_current=not empty)


@command(scenarios, "edit")
@click.argument("name")
@click.option("--grid", "grid_id", type=int, default=None)
@click.option("--cell", "cells", multiple=True, required=True)
@click.option("--rm", "rm_code", default=None, help="New owner of the cells in the draft.")
@click.option("--lock/--unlock", "locked", default=None, help="Lock or unlock the cells in the draft.")
@user_option
def edit_cmd(ctx, name, grid_id, cells, rm_code, locked, user):
    """Edit a draft by hand: give cells to an RM and/or lock them."""
    with open_engine(settings().db).begin() as conn:
        sid = sc.find_scenario(conn, ref=name, grid_id=grid_id)["id"]
        return sc_ops.edit(conn, actor=actor(user), scenario_id=sid, cell_ids=list(cells), rm_code=rm_code,
                           locked=locked)


@command(scenarios, "compare")
@click.argument("a")
@click.argument("b", default=sc.CURRENT)
@click.option("--grid", "grid_id", type=int, required=True)
def compare_cmd(ctx, a, b, grid_id):
    """Compare two scenarios (or one against 'current'): workload per RM, cells moved, customers changing RM."""
    with open_engine(settings().db).connect() as conn:
        return sc.compare(conn, grid_id=grid_id, a=a, b=b)


@command(scenarios, "publish")
@click.argument("name")
@click.option("--grid", "grid_id", type=int, default=None)
@user_option
def publish_cmd(ctx, name, grid_id, user):
    """Make a draft current (history written, one transaction); refused if current changed since."""
    with open_engine(settings().db).begin() as conn:
        return sc_ops.publish(conn, actor=actor(user), scenario_id=sc.find_scenario(conn, ref=name, grid_id=grid_id)["id"])


@command(scenarios, "discard")
@click.argument("name")
@click.option("--grid", "grid_id", type=int, default=None)
@user_option
def discard_cmd(ctx, name, grid_id, user):
    """Discard a draft."""
    with open_engine(settings().db).begin() as conn:
        return sc_ops.discard(conn, actor=actor(user), scenario_id=sc.find_scenario(conn, ref=name, grid_id=grid_id)["id"])
