"""The ``gridmkt import`` / ``gridmkt export`` commands end to end (--json, --map, --dry-run)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from api.cli import _register, cli


def _run(args, db_url, home):
    _register()
    env = {"GRIDMKT_DATABASE_URL": db_url, "GRIDMKT_HOME": str(home)}
    res = CliRunner().invoke(cli, args, env=env)
    return res.exit_code, res.output


def test_import_map_dry_run_and_export(db_url, tmp_path):
    path = tmp_path / "村.csv"
    path.write_text("村子,编码,X,Y\n甲村,640121100001,106.2,38.3\n乙村,64012110000,106.2,38.3\n",
                    encoding="utf-8")
    args = ["import", "villages", str(path), "--map", "村子=name", "--map", "编码=code",
            "--map", "X=lon", "--map", "Y=lat", "--json"]
    code, out = _run(args + ["--dry-run"], db_url, tmp_path)
    s = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and s["dry_run"] and s["counts"]["inserted"] == 1 and s["counts"]["rejected"] == 1
    assert s["rejects_path"].startswith(str(tmp_path / "rejects"))
    code, out = _run(args, db_url, tmp_path)
    assert json.loads(out.strip().splitlines()[-1])["counts"]["inserted"] == 1
    code, out = _run(args, db_url, tmp_path)
    assert json.loads(out.strip().splitlines()[-1])["status"] == "unchanged"
    code, out = _run(["export", "villages", "-o", str(tmp_path / "v.geojson"), "--json"], db_url, tmp_path)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["rows"] == 1


def test_bad_map_is_a_clear_error(db_url, tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    code, out = _run(["import", "villages", str(path), "--map", "nope", "--json"], db_url, tmp_path)
    assert code == 2 and "源列=field" in json.loads(out.strip().splitlines()[-1])["error"]
    code, out = _run(["import", "villages", str(path), "--json"], db_url, tmp_path)
    err = json.loads(out.strip().splitlines()[-1])
    assert code == 2 and err["type"] == "BadInput" and "columns found: a, b" in err["error"]


def test_export_of_a_stored_kind_refuses_grid(db_url, tmp_path):
    """--grid only narrows grid layers; 'export customers --grid 1' silently wrote every customer."""
    out_file = tmp_path / "c.csv"
    code, out = _run(["export", "customers", "--grid", "1", "-o", str(out_file), "--json"], db_url, tmp_path)
    err = json.loads(out.strip().splitlines()[-1])
    assert code == 2 and err["ok"] is False and "--grid" in err["error"] and not out_file.exists()


def test_a_file_whose_every_row_is_rejected_says_so_and_fails(db_url, tmp_path):
    """Every row rejected for one reason (an unknown legal entity) used to be status 'ok', 0 inserted, exit 0;
    the same file again after importing the legal entity was then 'unchanged' and still imported nothing."""
    path = tmp_path / "c.csv"
    path.write_text("customer_id,legal_entity\nX1,NOPE\nX2,NOPE\n", encoding="utf-8")
    code, out = _run(["import", "customers", str(path), "--json"], db_url, tmp_path)
    s = json.loads(out.strip().splitlines()[-1])
    assert code == 3 and s["ok"] is False and s["status"] == "rejected"
    assert s["counts"]["inserted"] == 0 and s["counts"]["rejected"] == 2 == s["counts"]["rows"]
    assert "nothing was imported" in s["message"] and "gridmkt import legal-entities FILE" in s["message"]
    assert s["rejected_reasons"] == {"unknown legal entity code": 2}
    # Without --json the message is printed too, and the exit status is the same.
    code, out = _run(["import", "customers", str(path), "--dry-run"], db_url, tmp_path)
    assert code == 3 and "nothing was imported (dry run)" in out
    le = tmp_path / "le.csv"
    le.write_text("code,name\nNOPE,某农商行\n", encoding="utf-8")
    assert _run(["import", "legal-entities", str(le)], db_url, tmp_path)[0] == 0
    code, out = _run(["import", "customers", str(path), "--json"], db_url, tmp_path)
    s = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and s["status"] == "ok" and s["counts"]["inserted"] == 2


def test_import_on_behalf_of_a_legal_entity(db_url, tmp_path):
    """--legal-entity imports as that entity's planners do: shared kinds refused (exit 2), others' ids not available."""
    le = tmp_path / "le2.csv"
    le.write_text("code,name\nLE_A,甲\nLE_B,乙\n", encoding="utf-8")
    assert _run(["import", "legal-entities", str(le)], db_url, tmp_path)[0] == 0
    v = tmp_path / "v2.csv"
    v.write_text("code,name\n640121100077,甲村\n", encoding="utf-8")
    code, out = _run(["import", "villages", str(v), "--legal-entity", "LE_B", "--json"], db_url, tmp_path)
    err = json.loads(out.strip().splitlines()[-1])
    assert code == 2 and err["type"] == "Forbidden" and "system-wide administrator" in err["error"]
    c = tmp_path / "c2.csv"
    c.write_text("customer_id,legal_entity\nLA77,LE_A\n", encoding="utf-8")
    assert _run(["import", "customers", str(c)], db_url, tmp_path)[0] == 0
    c.write_text("customer_id\nLA77\n", encoding="utf-8")
    code, out = _run(["import", "customers", str(c), "--legal-entity", "LE_B", "--json"], db_url, tmp_path)
    s = json.loads(out.strip().splitlines()[-1])
    assert code == 3 and s["rejected_reasons"] == {"id not available": 1}
