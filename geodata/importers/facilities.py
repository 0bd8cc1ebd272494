"""Legal entities (法人机构), outlets (网点) and service points (便民服务点)."""

from __future__ import annotations

import pandas as pd

from geodata import tables
from geodata.importers.base import Kind
from geodata.importers.places import parent_code


def _county_from_village(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    if "village_code" in out:
        parent_code(out, "county_code", pd.Series(out["village_code"], dtype=object).fillna(""), 6)


def _check_service_point(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    _county_from_village(f, out, ctx, rej)
    outlets = ctx.known.get("outlet", set())
    given = f["outlet_code"] != ""
    missing = given & ~f["outlet_code"].isin(outlets)
    rej.add(missing.to_numpy(), "outlet_code", "no such outlet (import outlets first)", f["outlet_code"])


def _check_legal_entity(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    codes = f["county_codes"].str.replace(r"[，,\s]+", ";", regex=True).str.strip(";")
    bad = codes.str.split(";").map(lambda xs: any(x and not (len(x) == 6 and x.isdigit()) for x in xs))
    rej.add(bad.to_numpy(dtype=bool), "county_codes", "adcodes must be 6 digits, ';'-separated", f["county_codes"])
    # Only rows still good link counties, and the first of a code (as the duplicate check keeps it).
    ok = ~rej.mask
    links = ctx.extra.setdefault("county_codes", {})
    for c, cc in zip(f["code"][ok], codes[ok], strict=True):
        if cc and c not in links:
            links[c] = [x for x in cc.split(";") if x]


def _after_legal_entity(cur, ctx) -> None:
    """Counties named in the file now belong to their legal entity (one stored under that code)."""
    for code, counties in ctx.extra.get("county_codes", {}).items():
        cur.execute(
            "UPDATE county SET legal_entity_id = le.id FROM legal_entity le"
            " WHERE le.code = %s AND county.adcode = ANY(%s)",
            (code, counties),
        )


LEGAL_ENTITIES = Kind(
    name="legal-entities", table=tables.legal_entity, key=("code",),
    fields={"code": "text", "name": "text", "county_codes": "list"},
    required=("code", "name"), check=_check_legal_entity, after=_after_legal_entity,
)

OUTLETS = Kind(
    name="outlets", table=tables.outlet, key=("code",),
    fields={"code": "text", "name": "text", "legal_entity": "legal_entity", "county_code": "code6",
            "village_code": "code12", "kind": "text", "lon": "lon", "lat": "lat"},
    required=("code", "name", "lon", "lat"), point="required", check=_county_from_village,
)

SERVICE_POINTS = Kind(
    name="service-points", table=tables.service_point, key=("code",),
    fields={"code": "text", "name": "text", "legal_entity": "legal_entity", "outlet_code": "text",
            "county_code": "code6", "village_code": "code12", "lon": "lon", "lat": "lat"},
    required=("code", "name", "lon", "lat"), point="required", check=_check_service_point,
)
