"""Townships and villages: official codes, names, counts and the best point known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geodata import tables
from geodata.importers.base import Kind


def parent_code(out: dict, name: str, code: pd.Series, n: int) -> None:
    """Fill an empty parent code from the first ``n`` digits of the row's own code."""
    given = pd.Series(out.get(name), index=code.index, dtype=object)
    derived = code.str.slice(0, n).where(code.str.len() >= n, None)
    out[name] = given.where(given.notna(), derived)


def _check_township(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    parent_code(out, "county_code", f["code"], 6)


def _check_village(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    parent_code(out, "county_code", f["code"], 6)
    parent_code(out, "township_code", f["code"], 9)
    # A village code that does not start with its stated township's code is a typing error.
    tc = pd.Series(out["township_code"], dtype=object).fillna("").to_numpy(dtype=str)
    ok = np.char.startswith(f["code"].to_numpy(dtype=str), tc)
    rej.add(~ok, "township_code", "village code does not start with it", f["township_code"])


TOWNSHIPS = Kind(
    name="townships", table=tables.township, key=("code",),
    fields={"code": "code9", "name": "text", "county_code": "code6", "population": "int",
            "households": "int", "lon": "lon", "lat": "lat"},
    required=("code", "name"), point="optional", check=_check_township,
)

VILLAGES = Kind(
    name="villages", table=tables.village, key=("code",),
    fields={"code": "code12", "name": "text", "township_code": "code9", "township_name": "text",
            "county_code": "code6", "households": "int", "population": "int", "lon": "lon", "lat": "lat",
            "coord_level": "enum:village|township|county|none", "is_community": "flag"},
    required=("code", "name"), point="optional", check=_check_village,
)
