"""``gridmkt map ...`` end to end on the square test county in a throwaway PostGIS."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from api.cli import _register, cli
from tests.maps.conftest import MOVED, R1_CELLS, R3_CELLS
from tests.maps.samples import CDN_MARKERS


def _run(args, db_url, home):
    _register()
    env = {"GRIDMKT_DATABASE_URL": db_url, "GRIDMKT_HOME": str(home),
           "GRIDMKT_TAG_CELL_URL": "https://tags.bank.test/c?ids={customer_ids}"}
    res = CliRunner().invoke(cli, [*args, "--json"], env=env)
    return res.exit_code, json.loads(res.output.strip().splitlines()[-1])


def _page(path) -> str:
    html = path.read_text(encoding="utf-8")
    assert not [m for m in CDN_MARKERS if m in html]
    assert not re.findall(r'<(?:script|link)[^>]+(?:src|href)="', html)
    return html


def test_dashboard_export(map_grid, db_url, tmp_path):
    out = tmp_path / "dash.html"
    code, res = _run(["map", "dashboard", "--grid", str(map_grid), "-o", str(out)], db_url, tmp_path)
    assert code == 0, res
    assert res["file"] == str(out) and res["bytes"] == out.stat().st_size
    html = _page(out)
    assert all(f"村{n}" in html for n in range(1, 17))
    assert '"ids":["C0010","C0011","C0012"]' in html
    assert "https://tags.bank.test/c?ids={customer_ids}" in html
    # 48 customers, all placed: 入格率 100%; three RMs own cells.
    assert "100.0%" in html and "R1 张三" in html and "西支行" in html
    assert '"s":' in html and "gap score" in html


def test_dashboard_of_one_outlet_and_by_measure(map_grid, db_url, tmp_path):
    out = tmp_path / "o2.html"
    code, res = _run(["map", "dashboard", "--grid", str(map_grid), "--outlet", "O2", "--measure", "customers",
                      "-o", str(out)], db_url, tmp_path)
    assert code == 0, res
    html = _page(out)
    ids = set(re.findall(r'"id":"(640121100\d{3})"', html))
    assert ids == set(R3_CELLS)
    assert "客户数 customers" in html


def test_rm_export_only_own_customers_masked_with_leads(map_grid, db_url, tmp_path):
    out = tmp_path / "r1.html"
    code, res = _run(["map", "rm", "--rm", "R1", "--grid", str(map_grid), "-o", str(out)], db_url, tmp_path)
    assert code == 0, res
    html = _page(out)
    assert set(re.findall(r'"id":"(640121100\d{3})"', html)) == set(R1_CELLS)
    rows = re.findall(r'\["?[\d.]+"?,[\d.]+,"(C\d{4})","([^"]*)",(\d+)\]', html)
    assert len(rows) == 24  # 8 villages × 3 customers
    assert ("C0010", "张*", "2") in rows and ("C0011", "欧***", "0") in rows
    assert "张三" not in html.replace("R1 张三", "") and "欧阳娜娜" not in html
    code, res = _run(["map", "rm", "--rm", "R9", "--grid", str(map_grid), "-o", str(out)], db_url, tmp_path)
    assert code == 2 and "owns no cells" in res["error"]


def test_preview_by_grid_and_by_import_run(preview_run, db_url, tmp_path):
    grid_id, run_id = preview_run
    out = tmp_path / "p.html"
    code, res = _run(["map", "preview", "--grid", str(grid_id), "-o", str(out)], db_url, tmp_path)
    assert code == 0, res
    html = _page(out)
    assert "未定位村 unplaced villages (1)" in html and "村18" in html
    code, res = _run(["map", "preview", "--import-run", str(run_id), "-o", str(out)], db_url, tmp_path)
    assert code == 0, res
    html = _page(out)
    assert "村表.csv" in html and "拒绝行 rejected rows" in html
    assert re.search(r"合并 merged \(shared point\)<\\/th><td>2<", html)
    code, res = _run(["map", "preview", "-o", str(out)], db_url, tmp_path)
    assert code == 2 and "--grid" in res["error"]


def test_compare_export(map_grid, db_url, tmp_path):
    out = tmp_path / "cmp.html"
    code, res = _run(["map", "compare", "--grid", str(map_grid), "plan-b", "-o", str(out)], db_url, tmp_path)
    assert code == 0, res
    html = _page(out)
    moved = re.findall(r'"id":"(640121100\d{3})"[^}]*"a":"(R\d)","b":"(R\d)","moved":true', html)
    assert set(moved) == {(MOVED, "R2", "R1")}
    assert "current → plan-b" in html and "工作量 workload" in html


def test_grid_exports_create_the_folder(map_grid, db_url, tmp_path):
    """Like stored kinds, grid layers and the workbook create a missing output folder (they failed with
    'sqlite3_open(...) failed' / 'No such file or directory')."""
    for kind, name in (("cells", "a/cells.gpkg"), ("gaps", "b/gaps.csv"), ("workbook", "c/rms.xlsx")):
        code, res = _run(["export", kind, "--grid", str(map_grid), "-o", str(tmp_path / name)], db_url, tmp_path)
        assert code == 0, res
        assert (tmp_path / name).stat().st_size > 0
