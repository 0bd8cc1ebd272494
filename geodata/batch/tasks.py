"""What runs on a batch worker: place one partition's customers with the shipped lookups, COPY the rows
to staging and return the partition's per-cell totals; write one county back. Plain functions of
picklable arguments, so any Dask scheduler (or none) can run them."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from geodata.assign import HOW, locate_customers
from geodata.batch import sources, store
from geodata.cell_stats import totals_frame
from grid.totals import cell_totals

_ENGINES: dict[str, Engine] = {}
_MUTEX = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per database per worker process (no pool kept: a task holds one connection at a time)."""
    with _MUTEX:
        if url not in _ENGINES:
            _ENGINES[url] = create_engine(url, poolclass=NullPool)
        return _ENGINES[url]


def read(db_url: str, part) -> pd.DataFrame:
    if isinstance(part, sources.StorePart):
        return sources.read_store(engine_for(db_url), part)
    return sources.read_parquet(part)


def place(part, bundles: dict[int, store.GridBundle], db_url: str, token: str | None, stage: bool = True) -> dict:
    """Place one partition; returns ``{grid id: (totals (3, cells) int64, rows per how)}`` and ``rows``.

    ``stage=False`` places and sums only, writing nothing (bench/bench_batch.py's locate+aggregate figures)."""
    customers = read(db_url, part)
    by_county = {b.county_code: b for b in bundles.values()}
    out: dict = {"rows": len(customers), "grids": {}}
    if not len(customers):
        return out
    codes, names = pd.factorize(customers["county_code"], use_na_sentinel=True)
    if not (codes == 0).all():  # each county's rows together, in file order: one take, then slices
        order = np.argsort(codes, kind="stable")
        customers = customers.take(order).reset_index(drop=True)
        codes = codes[order]
    bounds = np.searchsorted(codes, np.arange(len(names) + 1))
    raw = engine_for(db_url).raw_connection() if stage else None  # one connection for the partition's COPYs
    try:
        for k, county in enumerate(names):
            b = by_county.get(county)
            if b is None:
                continue  # a county this run does not assign
            mine = customers.iloc[bounds[k]:bounds[k + 1]].reset_index(drop=True)
            if b.legal_entity is not None and "legal_entity" in mine and mine["legal_entity"].notna().any():
                # Another legal entity's customers stay out of this one's cells (as the store read does).
                le = mine["legal_entity"]
                keep = le.isna() | le.isin(["", b.legal_entity]).fillna(False)
                mine = mine[keep.to_numpy(dtype=bool)].reset_index(drop=True)
            placed = locate_customers(b.kind, b.cells, b.villages, mine, locator=b.locator(),
                                      villages_to_cells=b.villages_to_cells())
            if raw is not None:
                store.stage_placed(raw, token=token, grid_id=b.grid_id, placed=placed)
            cell = placed["cell_index"].to_numpy()
            totals = cell_totals(cell, len(b.cells), mine["deposit_cents"].to_numpy(), mine["loan_cents"].to_numpy())
            how = np.bincount(placed["how"].array.codes, minlength=len(HOW)).astype(np.int64)
            out["grids"][b.grid_id] = (totals, how)
        if raw is not None:
            raw.commit()
    finally:
        if raw is not None:
            raw.close()
    return out


def add(a: tuple | None, b: tuple) -> tuple:
    """Two partitions' totals of one grid, added."""
    return b if a is None else (a[0] + b[0], a[1] + b[1])


def write_back(db_url: str, token: str, grid: store.GridBundle, totals: np.ndarray, how: np.ndarray,
               as_of: str | None) -> dict:
    """One county's write-back (``grid``: its shipped bundle; ``totals``, ``how``: the partitions' sums)."""
    return store.write_back(engine_for(db_url), token=token, grid=grid,
                            totals=totals_frame(grid.cells["cell_id"].to_numpy(), totals),
                            how=dict(zip(HOW, (int(x) for x in how), strict=True)), as_of=as_of)
