"""``gridmkt db up | down | status | url | migrate``."""

from __future__ import annotations

import click
from sqlalchemy import create_engine, make_url

from api.cli import cli, settings
from api.cli.output import command
from api.db import database_url
from geodata import cluster, migrate


@cli.group()
def db() -> None:
    """Manage the database (embedded cluster unless GRIDMKT_DATABASE_URL is set)."""


def _masked(url: str) -> str:
    import re

    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url)


@command(db, "up")
def db_up(ctx):
    """Create/start the embedded cluster (or check the configured server) and migrate to head."""
    s = settings()
    url = database_url(s.db)
    eng = create_engine(url)
    rev = migrate.upgrade(eng)
    eng.dispose()
    info = None if s.db.url else cluster.load_info(s.db.home)
    return {
        "ok": True, "embedded": info is not None, "url": _masked(url), "revision": rev,
        "datadir": info.datadir if info else None, "port": info.port if info else None,
    }


@command(db, "down")
def db_down(ctx):
    """Stop the embedded cluster (no effect on a configured server)."""
    s = settings()
    if s.db.url:
        return {"ok": True, "stopped": False, "message": "GRIDMKT_DATABASE_URL is set; nothing to stop"}
    info = cluster.load_info(s.db.home)
    stopped = bool(info) and cluster.stop(info)
    return {"ok": True, "stopped": stopped}


@command(db, "status")
def db_status(ctx):
    """Say whether the database is reachable and at which schema revision."""
    s = settings()
    info = None if s.db.url else cluster.load_info(s.db.home)
    result = {"embedded": not s.db.url, "configured": bool(s.db.url or info)}
    if info:
        result.update(datadir=info.datadir, port=info.port, running=cluster.is_running(info))
    url = s.db.url or (info.url() if info else None)
    result["reachable"] = False
    if url and (s.db.url or result.get("running")):
        try:
            eng = create_engine(url)
            with eng.connect() as conn:
                result["postgis"] = migrate.postgis_version(conn)
            result["revision"] = migrate.current(eng)
            result["head"] = migrate.head()
            result["reachable"] = True
            eng.dispose()
        except Exception as exc:  # report, don't crash: this is a status command
            result["error"] = str(exc).splitlines()[0]
    return result


def libpq_url(url: str) -> str:
    """The ``postgresql://`` URL that psql, QGIS and libpq take, from a SQLAlchemy URL
    (``postgresql+psycopg2://`` names a Python driver, which they refuse)."""
    u = make_url(url)
    return u.set(drivername=u.drivername.split("+", 1)[0]).render_as_string(hide_password=False)


@command(db, "url")
@click.option("--show-password", is_flag=True, help="Print the password instead of ***.")
def db_url(ctx, show_password: bool):
    """Print the database URL (starting the embedded cluster if needed): ``url`` is the libpq form
    (postgresql://...) for psql and QGIS, ``sqlalchemy_url`` the form GRIDMKT_DATABASE_URL takes.

    \b
    psql "$(gridmkt db url --show-password --json | jq -r .url)"
    """
    url = database_url(settings().db)
    out = {"url": libpq_url(url), "sqlalchemy_url": url}
    return out if show_password else {k: _masked(v) for k, v in out.items()}


@command(db, "migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision ('base' empties the schema).")
def db_migrate(ctx, revision: str):
    """Upgrade (or downgrade) the schema with the Alembic migrations."""
    eng = create_engine(database_url(settings().db))
    before = migrate.current(eng)
    # '+N' goes up and '-N' down whatever the current revision; ids are zero-padded, so compare as text
    if revision == "base" or revision.startswith("-") or (
        before and revision != "head" and not revision.startswith("+") and revision < before
    ):
        after = migrate.downgrade(eng, revision)
    else:
        after = migrate.upgrade(eng, revision)
    eng.dispose()
    return {"ok": True, "from": before, "to": after}
