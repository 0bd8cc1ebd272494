"""Open the database a process should use: the configured server or the embedded cluster."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from api.settings import DatabaseSettings
from geodata import cluster, migrate


def database_url(db: DatabaseSettings) -> str:
    """The URL to use, starting the embedded cluster under ``db.home`` if no URL is set."""
    if db.url:
        return db.url
    return cluster.ensure(db.home).url()


def open_engine(db: DatabaseSettings, *, upgrade: bool = True) -> Engine:
    """Engine on the right database, schema migrated to head unless ``upgrade`` is False."""
    eng = create_engine(database_url(db), pool_pre_ping=True, pool_size=10, max_overflow=10)
    if upgrade and migrate.current(eng) != migrate.head():
        migrate.upgrade(eng)
    return eng
