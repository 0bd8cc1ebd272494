"""``gridmkt visits ...``: the same operations as the routes (plan, check-in replay, check-out, tasks, report)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from click.testing import CliRunner

from api.cli import _register, cli


def _run(*args):
    r = CliRunner().invoke(cli, ["visits", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_visits_commands(db_url, data, monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDMKT_DATABASE_URL", db_url)
    monkeypatch.setenv("GRIDMKT_SECRET_KEY", "test")
    monkeypatch.setenv("GRIDMKT_HOME", str(tmp_path))
    _register()
    plan = _run("plan", "--rm", "RA1", "--user", "cli")
    assert plan["rm_code"] == "RA1" and [s["customer_id"] for s in plan["stops"]] == ["CA1"]
    assert plan["stops"][0]["name"] == "张三"  # the command line has no role: whoever reaches the database
    key = str(uuid.uuid4())
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()
    first = _run("checkin", "--rm", "RA1", "--customer", "CA1", "--lon", "106.28", "--lat", "38.47",
                 "--accuracy", "10", "--at", at, "--key", key, "--plan", str(plan["plan_id"]))
    again = _run("checkin", "--rm", "RA1", "--customer", "CA1", "--lon", "106.28", "--lat", "38.47",
                 "--accuracy", "10", "--at", at, "--key", key)
    assert first.pop("created") is True and again.pop("created") is False and again == first
    shown = _run("plan", "--rm", "RA1", "--show")
    assert shown["plan_id"] == plan["plan_id"] and shown["stops"][0]["state"] == "checked_in"
    assert shown["stops"][0]["visit_id"] == first["visit_id"] and shown["remaining_route"] is None
    out = _run("checkout", "--visit", str(first["visit_id"]), "--note", "ok", "--outcome", "deal")
    assert out["flag_short"] is False and out["duration_min"] >= 10
    text_out = CliRunner().invoke(cli, ["visits", "plan", "--rm", "RA1", "--show"])
    assert text_out.exit_code == 0 and "done" in text_out.output and "deal" in text_out.output, text_out.output
    due = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    task = _run("tasks", "--add", "--rm", "RA1", "--customer", "CA1", "--due", due, "--window", "09:00-10:00")
    assert task["window_start"] == "09:00" and task["status"] == "open"
    assert [t["task_id"] for t in _run("tasks", "--rm", "RA1")["items"]] == [task["task_id"]]
    route = _run("route", "--plan", str(plan["plan_id"]), "--remove", "CA1")
    assert route["stops"] == []
    again = CliRunner().invoke(cli, ["visits", "route", "--plan", str(plan["plan_id"]), "--add", "CA1"])
    assert again.exit_code == 0 and "done" in again.output and "CA1" in again.output, again.output
    rep = _run("report")
    assert {"RA1", "RA2", "RB1"} <= {i["rm_code"] for i in rep["items"]}
    bad = CliRunner().invoke(cli, ["visits", "checkin", "--rm", "RA1", "--customer", "CA1", "--lon", "106.28",
                                   "--lat", "38.47", "--at", "2026-12-07T09:00:00", "--json"])
    assert bad.exit_code == 2 and "offset" in bad.output
