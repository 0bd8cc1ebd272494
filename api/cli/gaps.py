"""``gridmkt gaps score | blank | cell`` and ``gridmkt sites suggest``."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from api.cli import actor, cli, settings, user_option
from api.cli.output import command
from api.db import open_engine
from api.operations import gaps as gap_ops
from geodata import gaps as gaps_mod


@cli.group()
def gaps() -> None:
    """Coverage gaps (业务空白区域): explainable 0-100 scores per cell, blank areas ranked."""


@command(gaps, "score")
@click.option("--grid", "grid_id", type=int, required=True, help="Grid id (customers assigned).")
@click.option("--weights", "weights_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="TOML file with [weights], [thresholds], [normalisation] overriding the defaults (layout and defaults: docs/gap_weights.toml).")
@click.option("--as-of", default=None,
              help="Score as of this date or time (default now), e.g. 2026-11-01: visits in the last 90 days and "
                   "days since the last visit are both counted as of it, and it is recorded on the run.")
@user_option
def score(ctx, grid_id, weights_file, as_of, user):
    """Score every cell of a grid and store the run with its time."""
    if as_of is not None:
        try:
            pd.Timestamp(as_of)
        except ValueError:
            raise click.BadParameter(f"{as_of!r} is not a date, e.g. 2026-11-01", param_hint="--as-of") from None
    text_ = weights_file.read_text(encoding="utf-8") if weights_file else None
    gap_ops.check_config(text_)
    with open_engine(settings().db).begin() as conn:
        return gap_ops.score(conn, actor=actor(user), grid_id=grid_id, config_text=text_, trigger="cli", as_of=as_of)


@command(gaps, "blank")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--top", type=click.IntRange(1, 10_000), default=20, show_default=True)
def blank(ctx, grid_id, top):
    """Blank areas ranked by score, with the reason in plain words (中文 / English)."""
    with open_engine(settings().db).connect() as conn:
        rows = gaps_mod.blank_areas(conn, grid_id=grid_id, top=top)
    return {"grid_id": grid_id, "blank_areas": [
        {"cell_id": r["cell_id"], "score": round(r["score"], 1), "reason_zh": r["reason_zh"], "reason_en": r["reason_en"]}
        for r in rows
    ]}


@command(gaps, "cell")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--cell", "cell_id", required=True)
def cell(ctx, grid_id, cell_id):
    """Why one cell scores what it does: measures, components and contributions."""
    with open_engine(settings().db).connect() as conn:
        df = gaps_mod.latest_scores(conn, grid_id=grid_id, cell_ids=[cell_id])
    if df.empty:
        raise click.BadParameter(f"grid {grid_id} has no scored cell {cell_id!r}", param_hint="--cell")
    return df.iloc[0].to_dict()


@cli.group()
def sites() -> None:
    """Where new service points (便民服务点) would cover most households."""


@command(sites, "suggest")
@click.option("--grid", "grid_id", type=int, required=True)
@click.option("--count", type=click.IntRange(1, gap_ops.SITES_MAX_COUNT), required=True, help=f"Most new sites to choose (1..{gap_ops.SITES_MAX_COUNT}).")
@click.option("--radius-km", type=click.FloatRange(0, gap_ops.SITES_MAX_RADIUS_KM, min_open=True), required=True,
              help=f"Coverage radius in km (above 0, at most {gap_ops.SITES_MAX_RADIUS_KM:g}).")
@click.option("--candidates", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV with lon,lat[,name] (WGS84) of candidate points (those outside the county are left out); "
                   "default: every cell of the grid.")
@user_option
def suggest(ctx, grid_id, count, radius_km, candidates, user):
    """Maximal covering location with existing outlets and service points kept fixed (HiGHS MILP)."""
    gap_ops.check_sites(count=count, radius_km=radius_km)
    cand = None
    if candidates is not None:
        try:
            cand = pd.read_csv(candidates)
        except (ValueError, pd.errors.ParserError) as exc:  # empty, not CSV, not UTF-8
            raise click.BadParameter(f"{candidates.name}: cannot be read as CSV ({exc})", param_hint="--candidates") from None
        missing = {"lon", "lat"} - set(cand.columns)
        if missing:
            raise click.BadParameter(f"{candidates} lacks column(s) {', '.join(sorted(missing))}", param_hint="--candidates")
    with open_engine(settings().db).begin() as conn:
        return gap_ops.sites(conn, actor=actor(user), grid_id=grid_id, count=count, radius_km=radius_km,
                             candidates=cand)
