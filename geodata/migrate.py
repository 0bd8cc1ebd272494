"""Schema migrations (Alembic), driven from code so no alembic.ini is needed."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the schema to ``revision``; returns the revision now current."""
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)
    return current(engine)


def downgrade(engine: Engine, revision: str = "base") -> str | None:
    """Downgrade the schema to ``revision`` ('base' empties it)."""
    with engine.begin() as conn:
        command.downgrade(_config(conn), revision)
    return current(engine)


def current(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def answers(engine: Engine) -> bool:
    """Whether the database answers a trivial query (False for any failure to connect or query)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def postgis_version(conn: Connection) -> str:
    """The PostGIS library version of the server (fails when PostGIS is not installed)."""
    return conn.execute(text("SELECT postgis_lib_version()")).scalar()


def head() -> str:
    """The newest revision shipped with this code."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new revision against ``engine`` (developers only)."""
    with engine.begin() as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
