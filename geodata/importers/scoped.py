"""Imports on behalf of one legal entity (法人机构): checked in SQL, in the load transaction, on the stored rows.

A user bound to a legal entity may insert or update only that entity's rows,
and a row may name (reference) only that entity's customers, RMs, outlets and
counties. The file's own columns are checked while reading (``rows``), which
gives each rejected row its cells in the rejects file; what is stored is
checked here, against the rows as they are when the import writes:

- :func:`reject_staged` deletes from the staging table every row whose key
  is stored for another legal entity (or none), reason ``id not available``,
  and every row naming a customer, RM, outlet or county that is not the
  importer's, with the same reason whether the name is unknown or another
  entity's. The importer thus learns that a key is taken, which inserting it
  would tell anyway, and nothing else: not whose, not what it holds.
- :func:`owned` guards the upsert's ``ON CONFLICT DO UPDATE``: a row of
  another entity stored after the check (a concurrent import) is left alone.
- :func:`verify` proves, before commit, that every row this import wrote is
  the importer's; otherwise the import fails and nothing is stored. It also
  covers the first big load, which COPYs into an empty table without staging:
  a scoped import of a kind with references never takes that path.
"""

from __future__ import annotations

from dataclasses import dataclass

from geodata.errors import Forbidden
from geodata.importers.base import Kind
from geodata.importers.load import STAGING
from geodata.readers import LINE

NOT_AVAILABLE = "id not available"
NO_CUSTOMER = "no customer with this id in the importing user's legal entity (法人机构)"
NO_RM = "no such RM (import rms first)"
NO_OUTLET = "no such outlet (import outlets first)"
NOT_OWN_COUNTY = "county not in the importing user's legal entity (法人机构)"
NOT_OWN_ENTITY = "not the importing user's legal entity (法人机构)"


@dataclass(frozen=True)
class Ref:
    """A column naming a row of ``table`` (by ``key``), which must be of the importer's legal entity."""

    column: str
    table: str
    key: str
    reason: str


_CUSTOMER = Ref("customer_id", "customer", "customer_id", NO_CUSTOMER)
_COUNTY = Ref("county_code", "county", "adcode", NOT_OWN_COUNTY)
_OUTLET = Ref("outlet_code", "outlet", "code", NO_OUTLET)
REFERENCES: dict[str, tuple[Ref, ...]] = {
    "outlets": (_COUNTY,),
    "service-points": (_OUTLET, _COUNTY),
    "rms": (_OUTLET,),
    "customers": (_COUNTY,),
    # A visit's, lead's or tag's key holds its customer (visits: and RM), or its customer is its owner.
    "visits": (_CUSTOMER, Ref("rm_code", "rm", "code", NO_RM)),
    "leads": (_CUSTOMER,),
    "tags": (_CUSTOMER,),
}
# The legal entity of a stored row of the kind's table ``{t}``, for kinds keyed by an id of their own.
OWNER: dict[str, str] = {
    "outlets": "{t}.legal_entity_id",
    "service-points": "{t}.legal_entity_id",
    "rms": "{t}.legal_entity_id",
    "customers": "{t}.legal_entity_id",
    "leads": "(SELECT c_.legal_entity_id FROM customer c_ WHERE c_.customer_id = {t}.customer_id)",
}


def check_kind(kind: Kind) -> None:
    """Refuse a kind this module has no rule for (a new kind must say how it is scoped)."""
    if kind.name not in REFERENCES:
        raise Forbidden(f"{kind.name} cannot be imported on behalf of a legal entity")


def direct_allowed(kind: Kind) -> bool:
    """Whether a scoped import of ``kind`` may take the first-load path (COPY into the empty table).

    An empty table holds no key of another entity; but a row naming another
    entity's customer or RM needs the staging table's join to be rejected.
    """
    return all(ref.table == "county" for ref in REFERENCES.get(kind.name, ()))


def reject_staged(cur, kind: Kind, own: int) -> list[tuple[int, str, str, str]]:
    """Delete the staged rows the importer may not write; returns them as (line, field, value, reason).

    References first: a row naming someone else's customer gets the same
    answer whether or not its key is taken.
    """
    cur.execute(f"ANALYZE {STAGING}")
    out: list[tuple[int, str, str, str]] = []
    for ref in REFERENCES[kind.name]:
        cur.execute(
            f"DELETE FROM {STAGING} s WHERE s.{ref.column} IS NOT NULL AND NOT EXISTS"
            f" (SELECT 1 FROM {ref.table} r WHERE r.{ref.key} = s.{ref.column} AND r.legal_entity_id = %(own)s)"
            f" RETURNING s.{LINE}, s.{ref.column}",
            {"own": own},
        )
        out += [(int(line), ref.column, value, ref.reason) for line, value in cur.fetchall()]
    owner = OWNER.get(kind.name)
    if owner is not None:
        on = " AND ".join(f"t.{k} = s.{k}" for k in kind.key)
        cur.execute(
            f"DELETE FROM {STAGING} s USING {kind.table.name} t WHERE {on}"
            f" AND {owner.format(t='t')} IS DISTINCT FROM %(own)s RETURNING s.{LINE}, s.{kind.key[0]}",
            {"own": own},
        )
        out += [(int(line), kind.key[0], value, NOT_AVAILABLE) for line, value in cur.fetchall()]
    return out


def owned(kind: Kind, table: str) -> str | None:
    """SQL (parameter ``%(own)s``) true when the stored row of ``table`` in an upsert is the importer's."""
    owner = OWNER.get(kind.name)
    return None if owner is None else f"{owner.format(t=table)} = %(own)s"


def verify(cur, kind: Kind, table: str, run_id: int, own: int) -> None:
    """Raise Forbidden if any row this import wrote into ``table`` is not of legal entity ``own``."""
    checks = []
    if "legal_entity_id" in kind.table.c:
        checks.append("x.legal_entity_id IS DISTINCT FROM %(own)s")
    for ref in REFERENCES[kind.name]:
        checks.append(f"x.{ref.column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {ref.table} r"
                      f" WHERE r.{ref.key} = x.{ref.column} AND r.legal_entity_id = %(own)s)")
    cur.execute(
        f"SELECT count(*) FROM {table} x WHERE x.import_run_id = %(run)s AND (({') OR ('.join(checks)}))",
        {"own": own, "run": run_id},
    )
    n = cur.fetchone()[0]
    if n:
        raise Forbidden(f"{n} rows of this {kind.name} import are not of the importing user's legal entity"
                        " (法人机构); nothing was stored")
