"""Open the database a process should use: the configured server or the embedded cluster."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from api.settings import DatabaseSettings
from geodata import cluster, liveness, migrate


def database_url(db: DatabaseSettings) -> str:
    """The URL to use, starting the embedded cluster under ``db.home`` if no URL is set."""
    if db.url:
        return db.url
    return cluster.ensure(db.home).url()


def _follow_cluster_record(engine: Engine, home) -> None:
    """New connections of ``engine`` go where ``cluster.json`` says now.

    The embedded cluster keeps its port across ``db down`` / ``db up``, but takes another one when
    that port is taken meanwhile; pre-ping drops the dead pooled connections and this sends the new
    ones to the new port, so a running server recovers without a restart.
    """

    @event.listens_for(engine, "do_connect")
    def _current(dialect, conn_rec, cargs, cparams) -> None:
        info = cluster.load_info(home)
        if info is not None:
            cparams.update(host="127.0.0.1", port=info.port, user=info.user, password=info.password)


def open_engine(db: DatabaseSettings, *, upgrade: bool = True) -> Engine:
    """Engine on the right database, schema migrated to head and interrupted work marked failed
    (``geodata.liveness.recover_interrupted``) unless ``upgrade`` is False."""
    eng = create_engine(database_url(db), pool_pre_ping=True, pool_size=10, max_overflow=10)
    if not db.url:
        _follow_cluster_record(eng, db.home)
    if upgrade:
        if migrate.current(eng) != migrate.head():
            migrate.upgrade(eng)
        # Jobs and import runs left queued/running by a process that died (kill -9, power cut) are
        # marked failed; those of another live process (an API worker, a CLI import) are not.
        with eng.begin() as conn:
            liveness.recover_interrupted(conn)
    return eng
