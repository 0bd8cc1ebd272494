"""Review of the ``gridmkt`` promises: with --json exactly one JSON object on stdout, also on failure; no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from api.cli import _register, cli


def _run(args, home, db_url=None):
    _register()
    env = {"GRIDMKT_HOME": str(home), "GRIDMKT_DATABASE_URL": db_url or "postgresql://nobody@127.0.0.1:1/none"}
    res = CliRunner().invoke(cli, args, env=env)
    return res.exit_code, res.stdout, res.stderr


def _one_object(stdout: str) -> dict:
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


@pytest.mark.parametrize("args", [
    ["export", "nope", "-o", "x.csv"],  # unknown kind
    ["export", "villages"],  # -o missing
    ["import", "villages", "v.csv", "--crs", "utm"],  # bad choice
    ["grid", "build", "--county", "640121", "--res", "99"],  # out of range
])
def test_usage_errors_are_one_json_object(tmp_path, args):
    code, out, err = _run([*args, "--json"], tmp_path)
    obj = _one_object(out)
    assert code == 2 and obj["ok"] is False and obj["error"]
    assert "Traceback" not in out + err


def test_bad_parameter_raised_by_a_command_is_json(tmp_path):
    (tmp_path / "cand.csv").write_text("x,y\n106.1,38.1\n", encoding="utf-8")
    code, out, _ = _run(["sites", "suggest", "--grid", "1", "--count", "1", "--radius-km", "1",
                         "--candidates", str(tmp_path / "cand.csv"), "--json"], tmp_path)
    obj = _one_object(out)
    assert code == 2 and obj["ok"] is False and "lat, lon" in obj["error"]


def test_unwritable_output_is_a_clear_error(db_url, tmp_path):
    (tmp_path / "afile").write_text("", encoding="utf-8")
    target = tmp_path / "afile" / "v.csv"  # a file stands where the folder should be
    code, out, err = _run(["export", "villages", "-o", str(target), "--json"], tmp_path, db_url)
    obj = _one_object(out)
    assert code != 0 and obj["ok"] is False and "afile" in obj["error"]
    assert "Traceback" not in out + err
    code, out, err = _run(["export", "villages", "-o", str(target)], tmp_path, db_url)
    assert code != 0 and "Traceback" not in out + err and "afile" in err


def test_unreachable_database_is_a_clear_error(tmp_path):
    code, out, err = _run(["grid", "list", "--json"], tmp_path)
    obj = _one_object(out)
    assert code != 0 and obj["ok"] is False and "Traceback" not in out + err


def test_console_script_usage_error_with_json(tmp_path):
    """The installed entry point (``main``) keeps the promise too."""
    env = {**os.environ, "GRIDMKT_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "from api.cli import main; main()", "export", "nope", "-o", "x.csv",
                           "--json"], capture_output=True, text=True, env=env, timeout=60)
    obj = _one_object(proc.stdout)
    assert proc.returncode == 2 and obj["ok"] is False and "nope" in obj["error"]


def test_readable_error_keeps_bracketed_text(db_url, tmp_path):
    """Messages are printed as text, not rich markup: '[bad]' used to vanish from the error."""
    (tmp_path / "v.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    code, out, err = _run(["import", "villages", str(tmp_path / "v.csv"), "--map", "[bad]"], tmp_path, db_url)
    assert code == 2 and "--map '[bad]'" in err and "源列=field" in err


def test_demo_serving_with_json_prints_one_object(tmp_path, monkeypatch):
    """``gridmkt demo --json`` (serving) printed the results, then ``{"ok": true}`` when the server stopped."""
    import uvicorn

    import api.app
    import api.cli.demo
    import api.demo

    results = {"grids": {"h3": {"grid_id": 1}, "village": {"grid_id": 2}}, "users": {"password": "pw"},
               "maps": {"rm_code": "R1", "urls": {}}}
    monkeypatch.setattr(api.cli.demo, "open_engine", lambda db: type("E", (), {"dispose": lambda self: None})())
    monkeypatch.setattr(api.demo, "run_demo", lambda dctx, on_step=None: dict(results))
    monkeypatch.setattr(api.app, "create_app", lambda s: None)
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(k))
    code, out, _ = _run(["demo", "--json"], tmp_path)
    obj = _one_object(out)
    assert code == 0 and served and obj["urls"]["dashboard"].endswith("grid_id=1")


def test_readable_output_shows_bracketed_values():
    """Values are text, not rich markup: a column named '[备注]' or a name '[x]' used to vanish from the table."""
    import io

    from rich.console import Console

    from api.cli.output import render

    buf = io.StringIO()
    render({"name": "[x]", "ignored_columns": ["[备注]"], "counts": {"[k]": 1}, "rows": [{"a": "[y]"}]},
           Console(file=buf, width=200))
    text = buf.getvalue()
    assert "[x]" in text and "[备注]" in text and "[k]=1" in text and "[y]" in text


@pytest.mark.parametrize("args, names", [
    (["gaps", "score", "--grid", "1", "--as-of", "notadate"], ["--as-of", "notadate"]),
    (["territories", "plan", "--grid", "1", "--scenario", "s", "--weights", "customers=0.4,households"],
     ["weights", "households"]),
    (["sites", "suggest", "--grid", "1", "--count", "1", "--radius-km", "1", "--candidates", "{empty}"],
     ["--candidates", "empty.csv"]),
])
def test_bad_option_values_name_the_option(db_url, tmp_path, args, names):
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    args = [a.replace("{empty}", str(tmp_path / "empty.csv")) for a in args]
    code, out, _ = _run([*args, "--json"], tmp_path, db_url)
    obj = _one_object(out)
    assert code == 2 and obj["ok"] is False
    assert all(n in obj["error"] for n in names), obj["error"]


def test_serve_takes_json(tmp_path, monkeypatch):
    """``gridmkt serve --json`` was 'No such option'; it prints where it serves, and keeps access logs off stdout."""
    import uvicorn

    import api.app

    monkeypatch.setattr(api.app, "create_app", lambda s=None: None)
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: served.append(k))
    code, out, _ = _run(["serve", "--port", "8123", "--json"], tmp_path)
    obj = _one_object(out)
    assert code == 0 and obj["url"] == "http://127.0.0.1:8123" and served
    assert served[0]["log_config"]["handlers"]["access"]["stream"] == "ext://sys.stderr"
