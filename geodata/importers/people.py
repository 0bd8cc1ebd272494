"""Relationship managers (客户经理): each belongs to an existing outlet."""

from __future__ import annotations

import pandas as pd

from geodata import tables
from geodata.importers.base import Kind


def _check_rm(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    outlets = ctx.known.get("outlet", set())
    missing = (f["outlet_code"] != "") & ~f["outlet_code"].isin(outlets)
    rej.add(missing.to_numpy(), "outlet_code", "no such outlet (import outlets first)", f["outlet_code"])
    cap = pd.Series(out["capacity"], dtype=float)
    bad = cap.notna() & ((cap <= 0) | (cap > 2))
    rej.add(bad.to_numpy(), "capacity", "must be above 0 and at most 2 (1.0 = full time)", f["capacity"])
    # An RM without a legal entity code works for the outlet's.
    le = pd.Series(out["legal_entity_id"], dtype="Float64")
    out["legal_entity_id"] = le.fillna(f["outlet_code"].map(ctx.extra.get("outlet_le", {})).astype("Float64"))


RMS = Kind(
    name="rms", table=tables.rm, key=("code",),
    fields={"code": "text", "name": "text", "legal_entity": "legal_entity", "outlet_code": "text",
            "phone": "text", "capacity": "float", "hired_on": "date", "active": "flag"},
    required=("code", "name", "outlet_code"), check=_check_rm,
    fill={"capacity": 1.0, "active": "true"},
)
