"""Read-replica settings and the read-your-writes cookie, without a database (docs/replicas.md)."""

from __future__ import annotations

import pytest

from api.replicas import fresh_cookie, wrote_recently
from api.settings import ReplicaSettings, Settings


def test_read_urls_come_comma_separated_and_default_to_none():
    env = {"GRIDMKT_READ_DATABASE_URLS": " postgresql://r1/db , postgresql://r2/db,", "GRIDMKT_REPLICA_MAX_LAG_S": "2",
           "GRIDMKT_READ_YOUR_WRITES_S": "3", "GRIDMKT_SECRET_KEY": "k"}
    s = Settings.from_env(env).replicas
    assert s.urls == ("postgresql://r1/db", "postgresql://r2/db") and s.max_lag_s == 2 and s.read_your_writes_s == 3
    assert Settings.from_env({"GRIDMKT_SECRET_KEY": "k"}).replicas.urls == ()


def test_the_window_must_cover_the_lag_bound():
    with pytest.raises(ValueError, match="READ_YOUR_WRITES_S"):
        ReplicaSettings(urls=("postgresql://r/db",), max_lag_s=10, read_your_writes_s=5)
    with pytest.raises(ValueError, match="CHECK_S"):
        ReplicaSettings(max_lag_s=1, check_s=2, read_your_writes_s=5)


def test_the_cookie_holds_for_its_window_only_and_cannot_be_forged():
    value = fresh_cookie("key", 6, now=1000.0)
    assert wrote_recently("key", value, 6, now=1000.0)
    assert wrote_recently("key", value, 6, now=1006.5)
    assert not wrote_recently("key", value, 6, now=1008.0)  # window over
    assert not wrote_recently("other key", value, 6, now=1000.0)  # signed with another key
    until, sig = value.split(".")
    assert not wrote_recently("key", f"{int(until) + 100}.{sig}", 6, now=1000.0)  # extended by hand
    far = fresh_cookie("key", 3600, now=1000.0)
    assert not wrote_recently("key", far, 6, now=1000.0)  # longer than this server's window
    assert not wrote_recently("key", None, 6) and not wrote_recently("key", "junk", 6)


def test_get_routes_write_audit_rows_on_the_write_connection():
    """A GET may read from a replica: the audit row it writes goes on ``WriteConnDep`` (the primary), never
    on the request's ``conn`` (a standby refuses writes)."""
    import ast
    from pathlib import Path

    routes = Path(__file__).resolve().parents[2] / "api" / "routes"
    bad = []
    for path in sorted(routes.glob("*.py")):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef) or not any(
                    isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "get" for d in fn.decorator_list):
                continue
            for call in ast.walk(fn):
                if (isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "record" and call.args
                        and isinstance(call.args[0], ast.Name) and call.args[0].id == "conn"):
                    bad.append(f"{path.name}:{fn.name}")
    assert bad == [], ("these GET routes write their audit row on `conn`, which may be a read-only replica:"
                       " add `audit_conn: WriteConnDep` (api/deps.py) and record on it (docs/replicas.md)")
