"""What ``gridmkt`` prints when its output is not a terminal, and what ``./run gridmkt`` runs where."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from api.cli.demo import after_serving
from api.cli.output import console, render
from api.settings import DatabaseSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
URL = "http://127.0.0.1:8000/maps/rm?grid_id=12&rm_code=RM0001&" + "x" * 120


def test_piped_output_has_no_escape_codes_no_wrapping_and_whole_columns(capsys):
    # Written to a file or a pipe (pytest captures: not a terminal), rich used an 80-column console:
    # URLs wrapped and table columns were cut ('legal_en…').
    render({"rm map": URL, "rows": [{"legal_entity_code": "LE-NINGXIA-YONGNING-001", "customers": 12345,
                                     "note": "[备注] kept"}] * 3}, console())
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    assert URL in out.splitlines()[0]
    assert "LE-NINGXIA-YONGNING-001" in out and "…" not in out
    assert "[备注] kept" in out


def test_after_ctrl_c_the_demo_says_what_still_runs(tmp_path):
    # It printed ' stopped  True' and left the embedded database running without a word.
    embedded = after_serving(Settings(db=DatabaseSettings(home=tmp_path)))
    assert embedded["API server"] == "stopped"
    assert str(tmp_path.resolve()) in embedded["database"] and "gridmkt db down" in embedded["database"]
    external = after_serving(Settings(db=DatabaseSettings(url="postgresql://x@h/db", home=tmp_path)))
    assert "external" in external["database"]


def test_run_gridmkt_runs_in_the_callers_folder_with_the_projects_database(tmp_path):
    # `./run gridmkt export ... -o cells.gpkg` wrote into the project folder, not where it was called.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "gridmkt"):
        exe = venv / "bin" / name
        exe.write_text('#!/bin/sh\necho "cwd=$(pwd)"\necho "home=$GRIDMKT_HOME"\n')
        exe.chmod(0o755)
    # ./run installs nothing when its stamps match, as after a first ./run; this test must never install
    # (npm ci through a linked node_modules would empty it), so it runs only where ./run has set up.
    npm_stamp = ROOT / "maps/static/node_modules/.gridmkt-installed"
    lock = hashlib.sha256((ROOT / "maps/static/package-lock.json").read_bytes()).hexdigest()[:16]
    if not npm_stamp.exists() or npm_stamp.read_text().strip() != lock:
        pytest.skip("the front-end packages are not installed by ./run here (./run test does that first)")
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (venv / ".gridmkt-installed").write_text(stamp + "\n")
    caller = tmp_path / "where-i-am"
    caller.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "GRIDMKT_HOME"}
    env.update(GRIDMKT_VENV=str(venv), PYTHON="python3")
    out = subprocess.run([str(ROOT / "run"), "gridmkt", "export", "cells", "-o", "cells.gpkg"], cwd=caller,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"cwd={caller}" in out.stdout
    assert f"home={ROOT}/.gridmkt" in out.stdout
    assert "\x1b[" not in out.stderr
