"""``gridmkt db url`` prints a libpq URL (psql, QGIS) and the SQLAlchemy form separately."""

from __future__ import annotations

import json

import psycopg2
from click.testing import CliRunner

from api.cli import _register, cli
from api.cli.db import libpq_url


def test_libpq_url_drops_the_driver_and_keeps_everything_else():
    assert libpq_url("postgresql+psycopg2://u:p%40ss@127.0.0.1:5433/db?sslmode=disable") == (
        "postgresql://u:p%40ss@127.0.0.1:5433/db?sslmode=disable")
    assert libpq_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_db_url_is_one_psql_and_qgis_accept(db_url, monkeypatch):
    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    _register()
    r = CliRunner().invoke(cli, ["db", "url", "--show-password", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["url"].startswith("postgresql://") and out["sqlalchemy_url"] == db_url
    with psycopg2.connect(out["url"]) as conn, conn.cursor() as cur:  # libpq itself parses it
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    masked = json.loads(CliRunner().invoke(cli, ["db", "url", "--json"]).output)
    assert masked["url"].startswith("postgresql://") and ":***@" in masked["url"]
    assert ":***@" in masked["sqlalchemy_url"]
    plain = CliRunner().invoke(cli, ["db", "url"]).output
    assert "postgresql://" in plain and "sqlalchemy_url" in plain
