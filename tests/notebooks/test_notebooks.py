"""Every notebook in notebooks/ runs clean against a freshly built demo database.

The module database is a copy of the demo the test run builds once (tests/conftest.py:
demo_template; small customer count), then each notebook is executed with nbclient in a python3
kernel of this interpreter, with ``GRIDMKT_DATABASE_URL`` pointing at the module
database. A notebook passes when no cell raised, it drew at least four figures
and its last cell printed a JSON summary with cells, blank areas and suggested
sites.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NEEDED_STEPS = ("reference", "synthetic", "grids", "territories", "gaps")
COUNTY = "640121"
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def db_url(demo_db_url):
    """This module's database holds the demo run once per test run (tests/conftest.py: demo_template)."""
    return demo_db_url


@pytest.fixture(scope="module")
def demo(demo_template):
    """The demo's results for the steps notebooks read (its database is this module's copy)."""
    assert demo_template["county"] == COUNTY and set(NEEDED_STEPS) <= set(demo_template["steps"])
    return copy.deepcopy(demo_template["results"])


def _kernel_env(db_url: str) -> dict[str, str]:
    env = dict(os.environ)
    # the kernel must be this interpreter (the venv), and see the project even if run from elsewhere
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["GRIDMKT_DATABASE_URL"] = db_url
    env["GRIDMKT_NOTEBOOK_COUNTY"] = COUNTY
    env["MPLBACKEND"] = "Agg"
    return env


def run_notebook(path: Path, db_url: str):
    """Execute a notebook in a fresh python3 kernel of this interpreter; returns the executed notebook."""
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3")
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    env = _kernel_env(db_url)
    # nbclient passes its own kwargs to start_kernel; the environment goes in through the manager
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        client.execute()
    return client.nb


def _outputs(nb, kind: str):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == kind]


def _last_json(nb) -> dict:
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = "".join(o.get("text", "") for o in code[-1].get("outputs", []) if o.get("output_type") == "stream")
    lines = [ln for ln in text.splitlines() if ln.strip().startswith("{")]
    assert lines, f"the last cell printed no JSON summary: {text!r}"
    return json.loads(lines[-1])


def test_there_is_a_notebook():
    assert any(p.name == "county_walkthrough.ipynb" for p in NOTEBOOKS)


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name}: strip outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_against_the_demo(path, demo, db_url, tmp_path):
    try:
        nb = run_notebook(path, db_url)
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name} failed in a cell:\n{e}")
    nbformat.write(nb, tmp_path / path.name)  # the executed copy, to look at after a failure
    assert not _outputs(nb, "error")
    images = [o for kind in ("display_data", "execute_result") for o in _outputs(nb, kind) if "image/png" in o["data"]]
    assert len(images) >= 4, f"{path.name} drew {len(images)} figures"
    summary = _last_json(nb)
    grids = demo["grids"]
    assert summary["county"] == COUNTY
    assert summary["cells"] == grids["h3"]["cells"] > 0
    assert summary["village_cells"] == grids["village"]["cells"] > 0
    assert summary["h3_grid"] == grids["h3"]["grid_id"] and summary["village_grid"] == grids["village"]["grid_id"]
    assert summary["merged_village_cells"] > 0  # most villages share their township seat's point
    assert summary["owned_cells"] == grids["h3"]["cells"] and summary["rms"] > 1
    assert summary["plan_contiguity"] == demo["territories"]["h3"]["plan"]["contiguity"]
    assert summary["classes"] == {k: v for k, v in demo["gaps"]["h3"]["classes"].items() if v}
    assert summary["blank_areas"] == demo["gaps"]["h3"]["classes"]["blank"] > 0
    assert 0 < summary["suggested_sites"] <= 5
    assert summary["suggested_sites"] == len(demo["gaps"]["sites"]["suggestions"])
    assert summary["households_covered_after"] >= summary["households_covered_before"]
    assert 0 < summary["rollup_cells"] < summary["cells"]
    assert summary["customers_placed"] + summary["customers_unplaced"] == 3000
