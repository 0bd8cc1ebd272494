"""``gridmkt users add | list | disable | enable``."""

from __future__ import annotations

import sys

import click

from api.cli import actor, cli, settings, user_option
from api.cli.output import command
from api.db import open_engine
from api.operations import users as ops
from geodata import users
from geodata.errors import BadInput
from geodata.scope import ROLES

_SHOWN = ("username", "role", "legal_entity_code", "rm_code", "outlet_codes", "disabled", "created_at")


def _public(row: dict) -> dict:
    return {k: row.get(k) for k in _SHOWN}


@cli.group("users")
def users_group() -> None:
    """Manage the users who may sign in to the API and map pages."""


@command(users_group, "add")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may do and see.")
@click.option("--legal-entity", "legal_entity", help="Code of the user's legal entity (omit only for a system-wide admin).")
@click.option("--rm", "rm_code", help="Employee code of the RM this user is (role rm).")
@click.option("--outlet", "outlets", multiple=True, help="Outlet code a branch manager manages (repeatable).")
@click.option("--password", help="The password (visible in shell history; prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@user_option
def users_add(ctx, username, role, legal_entity, rm_code, outlets, password, password_stdin, user):
    """Add a user; the password is stored as an argon2 hash."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise BadInput("give a password with --password-stdin or --password")
    eng = open_engine(settings().db)
    try:
        with eng.begin() as conn:
            row = ops.create(conn, actor=actor(user), username=username, password=password, role=role,
                             legal_entity_code=legal_entity, rm_code=rm_code, outlet_codes=list(outlets))
    finally:
        eng.dispose()
    return {"ok": True, **_public(row)}


@command(users_group, "list")
def users_list(ctx):
    """List users with their role, legal entity, RM code, outlets and whether they are disabled."""
    eng = open_engine(settings().db)
    try:
        with eng.connect() as conn:
            rows = users.list_users(conn)
    finally:
        eng.dispose()
    return {"users": [_public(r) for r in rows]}


@command(users_group, "disable")
@click.argument("username")
@user_option
def users_disable(ctx, username, user):
    """Disable a user: sign-in is refused and existing tokens stop working (refused for the last
    active system-wide admin)."""
    eng = open_engine(settings().db)
    try:
        with eng.begin() as conn:
            row = ops.disable(conn, actor=actor(user), username=username)
    finally:
        eng.dispose()
    return {"ok": True, **_public(row)}


@command(users_group, "enable")
@click.argument("username")
@user_option
def users_enable(ctx, username, user):
    """Enable a disabled user again: they may sign in."""
    eng = open_engine(settings().db)
    try:
        with eng.begin() as conn:
            row = ops.enable(conn, actor=actor(user), username=username)
    finally:
        eng.dispose()
    return {"ok": True, **_public(row)}
