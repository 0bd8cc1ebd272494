"""Who may see which rows: the one scoping mechanism every query and route uses.

A :class:`Scope` is built from the signed-in user. :func:`where` returns a SQL
condition (with bound parameters only) that restricts one object type, under a
table alias chosen by the caller::

    cond = where(scope, "customer", "c")
    rows = conn.execute(text(f"SELECT ... FROM customer c WHERE {cond.sql}"), cond.params)

The rules
---------
- ``admin`` with no legal entity sees everything (system-wide view). An admin
  bound to a legal entity is scoped like a planner.
- Nobody else ever sees a row of another legal entity (法人机构). Rows hang off
  a legal entity directly (``legal_entity_id``) or through their county.
- Geography and network (legal entity, counties, townships, villages, outlets,
  service points, grids): the whole legal entity, for every role; these hold no
  personal data and every map needs them.
- RMs: ``planner``/``analyst`` see all RMs of the legal entity; a
  ``branch_manager`` the RMs of their outlets; an ``rm`` only themselves.
- Customers: ``planner``/``analyst`` see all customers of the legal entity.
  An ``rm`` sees the customers whose cell, in any grid, they currently own
  (``territory`` row with ``valid_to IS NULL AND role = 'owner'``, customer
  placed by ``customer_cell``). A ``branch_manager`` sees the customers whose
  cell is currently owned by an RM of one of their outlets. Customers not yet
  placed in an owned cell are therefore visible to planners and analysts only.
- Cells: like customers (an ``rm`` sees the cells they own or co-own).
- Scenarios (draft territory plans naming every RM of a grid): the legal
  entity of their grid's county, for ``admin``, ``planner`` and ``analyst``
  only; a ``branch_manager`` or ``rm`` sees none.
- Import runs: runs started by users of the same legal entity.
- Importing: a user of one legal entity inserts and updates only that entity's
  rows (``geodata.importers.scoped`` checks it in SQL in the load transaction);
  the kinds shared by every legal entity (:data:`SHARED_IMPORT_KINDS`) only a
  system-wide admin imports (:func:`check_import_allowed`).
- Jobs: one's own jobs (admins: all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from geodata.errors import Forbidden

ROLES = ("admin", "planner", "branch_manager", "rm", "analyst")
_ALIAS = re.compile(r"^[a-z_][a-z0-9_]{0,30}$")


class Clause(NamedTuple):
    """A SQL condition and the bound parameters it needs."""

    sql: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Scope:
    """What a user may see: role, legal entity (None = system-wide admin), own RM code, outlets."""

    role: str
    legal_entity_id: int | None
    rm_code: str | None = None
    outlet_codes: tuple[str, ...] = field(default_factory=tuple)
    username: str = ""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")
        if self.legal_entity_id is None and self.role != "admin":
            raise ValueError(f"a {self.role} must belong to a legal entity")

    @property
    def system_wide(self) -> bool:
        """True for an admin not bound to a legal entity."""
        return self.role == "admin" and self.legal_entity_id is None

    @classmethod
    def from_user(cls, user: dict[str, Any]) -> Scope:
        """Scope of an ``app_user`` row (as returned by ``geodata.users.get_user``)."""
        return cls(
            role=user["role"],
            legal_entity_id=user["legal_entity_id"],
            rm_code=user.get("rm_code"),
            outlet_codes=tuple(user.get("outlet_codes") or ()),
            username=user["username"],
        )

    def params(self) -> dict[str, Any]:
        """Bound parameters every clause may use (names start with ``scope_``)."""
        return {
            "scope_le": self.legal_entity_id,
            "scope_rm": self.rm_code,
            "scope_outlets": list(self.outlet_codes),
            "scope_user": self.username,
        }


TRUE = "TRUE"
FALSE = "FALSE"

# Customer visibility through current cell ownership (see the module docstring).
_OWNED_BY_ME = """EXISTS (
    SELECT 1 FROM customer_cell cc_ JOIN territory t_
      ON t_.grid_id = cc_.grid_id AND t_.cell_id = cc_.cell_id
     WHERE cc_.customer_id = {a}.customer_id AND t_.valid_to IS NULL
       AND t_.role = 'owner' AND t_.rm_code = :scope_rm)"""
_OWNED_BY_MY_OUTLETS = """EXISTS (
    SELECT 1 FROM customer_cell cc_ JOIN territory t_
      ON t_.grid_id = cc_.grid_id AND t_.cell_id = cc_.cell_id
      JOIN rm r_ ON r_.code = t_.rm_code
     WHERE cc_.customer_id = {a}.customer_id AND t_.valid_to IS NULL
       AND t_.role = 'owner' AND r_.outlet_code = ANY(:scope_outlets))"""
_CELL_MINE = """EXISTS (
    SELECT 1 FROM territory t_ WHERE t_.grid_id = {a}.grid_id AND t_.cell_id = {a}.cell_id
       AND t_.valid_to IS NULL AND t_.rm_code = :scope_rm)"""
_CELL_MY_OUTLETS = """EXISTS (
    SELECT 1 FROM territory t_ JOIN rm r_ ON r_.code = t_.rm_code
     WHERE t_.grid_id = {a}.grid_id AND t_.cell_id = {a}.cell_id
       AND t_.valid_to IS NULL AND r_.outlet_code = ANY(:scope_outlets))"""
_COUNTY_IN_LE = (
    "EXISTS (SELECT 1 FROM county k_ WHERE k_.adcode = {a}.{col} AND k_.legal_entity_id = :scope_le)"
)


def _legal_entity(kind: str) -> str:
    """The condition tying a row of ``kind`` to the scope's legal entity."""
    if kind == "legal_entity":
        return "{a}.id = :scope_le"
    if kind in ("county", "outlet", "service_point", "rm", "customer"):
        return "{a}.legal_entity_id = :scope_le"
    if kind in ("township", "village", "grid"):
        return _COUNTY_IN_LE.replace("{col}", "county_code")
    if kind == "cell":
        return (
            "EXISTS (SELECT 1 FROM grid g_ JOIN county k_ ON k_.adcode = g_.county_code"
            " WHERE g_.id = {a}.grid_id AND k_.legal_entity_id = :scope_le)"
        )
    if kind == "territory":
        return (
            "EXISTS (SELECT 1 FROM grid g_ JOIN county k_ ON k_.adcode = g_.county_code"
            " WHERE g_.id = {a}.grid_id AND k_.legal_entity_id = :scope_le)"
        )
    if kind == "scenario":
        return (
            "EXISTS (SELECT 1 FROM grid g_ JOIN county k_ ON k_.adcode = g_.county_code"
            " WHERE g_.id = {a}.grid_id AND k_.legal_entity_id = :scope_le)"
        )
    if kind == "import_run":
        return (
            "EXISTS (SELECT 1 FROM app_user u_ WHERE u_.username = {a}.user_name"
            " AND u_.legal_entity_id = :scope_le)"
        )
    if kind == "job":
        return "{a}.legal_entity_id = :scope_le"
    raise ValueError(f"no scoping rule for object type {kind!r}")


KINDS = (
    "legal_entity", "county", "township", "village", "outlet", "service_point", "rm", "customer",
    "grid", "cell", "territory", "scenario", "import_run", "job",
)


def where(scope: Scope, kind: str, alias: str) -> Clause:
    """SQL condition restricting rows of ``kind`` (aliased ``alias``) to what ``scope`` may see.

    ``kind`` is one of :data:`KINDS`; ``alias`` must be a plain SQL identifier
    (it is written into the SQL, so it never comes from a request).
    """
    if not _ALIAS.match(alias):
        raise ValueError(f"bad table alias {alias!r}")
    le = _legal_entity(kind)
    if kind == "job":
        # Jobs are private to whoever started them; an admin sees its legal entity's (a system-wide one, all).
        if scope.role == "admin":
            parts = [] if scope.system_wide else [le]
        else:
            parts = ["{a}.username = :scope_user"]
    else:
        parts = [] if scope.system_wide else [le]
    if kind == "rm":
        if scope.role == "branch_manager":
            parts.append("{a}.outlet_code = ANY(:scope_outlets)")
        elif scope.role == "rm":
            parts.append("{a}.code = :scope_rm")
    elif kind == "customer":
        if scope.role == "branch_manager":
            parts.append(_OWNED_BY_MY_OUTLETS)
        elif scope.role == "rm":
            parts.append(_OWNED_BY_ME)
    elif kind == "scenario":
        if scope.role in ("branch_manager", "rm"):
            parts.append(FALSE)
    elif kind == "cell":
        if scope.role == "branch_manager":
            parts.append(_CELL_MY_OUTLETS)
        elif scope.role == "rm":
            parts.append(_CELL_MINE)
    elif kind == "territory":
        # A territory row (grid_id, rm_code, outlet_code): an RM's own, a branch manager's outlets' RMs'.
        if scope.role == "branch_manager":
            parts.append("{a}.outlet_code = ANY(:scope_outlets)")
        elif scope.role == "rm":
            parts.append("{a}.rm_code = :scope_rm")
    sql = " AND ".join(f"({p})" for p in parts) if parts else TRUE
    return Clause(sql.replace("{a}", alias), scope.params())


def narrowed(scope: Scope, kind: str) -> bool:
    """Whether the condition of ``kind`` for ``scope`` keeps a small part of the rows through a join
    (an RM's or a branch manager's customers and cells, found through current territory).

    Such a condition costs about as much as reading what it keeps, so a page and the number matched
    are best computed by one statement (``geodata.reads.rows.select_rows``) than by two.
    """
    return kind in ("customer", "cell") and scope.role in ("rm", "branch_manager")


def sees_pii(scope: Scope) -> bool:
    """Whether personal data (names, phones, ID numbers) may be shown unmasked.

    Only admins, RMs and branch managers: the customer scope already limits
    those two to the customers of their own (outlets') territories. Planners
    and analysts always get masked values.
    """
    return scope.role in ("admin", "rm", "branch_manager")


# Import kinds whose rows every legal entity shares (the map of the country and the entities themselves).
SHARED_IMPORT_KINDS = ("legal-entities", "counties", "townships", "villages")


def check_import_allowed(kind: str, legal_entity_id: int | None) -> None:
    """Raise Forbidden when a user of one legal entity (``legal_entity_id``) would import a shared kind.

    Only a system-wide admin (no legal entity) changes what every legal entity
    sees; planners always belong to one, so none of them may.
    """
    if legal_entity_id is not None and kind in SHARED_IMPORT_KINDS:
        raise Forbidden(f"{kind} are shared by every legal entity (法人机构): only a system-wide administrator"
                        f" imports them (gridmkt import {kind} FILE, or an admin account without a legal entity)")
