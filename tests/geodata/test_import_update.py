"""Re-importing a changed customers file: only new and changed rows are written, each column's change counts."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text

from geodata.importers import run_import


def _rows(engine) -> dict[str, tuple]:
    with engine.connect() as c:
        return {r[0]: tuple(r[1:]) for r in c.execute(text(
            "SELECT customer_id, name, deposit_balance::text, segment, ST_AsText(geom), source_crs, import_run_id"
            " FROM customer WHERE customer_id LIKE 'U%'"))}


def test_changed_file_updates_exactly_the_changed_rows(engine, counties, tmp_path):
    with engine.begin() as c:
        c.execute(text("DELETE FROM customer"))
    first = pd.DataFrame({
        "customer_id": [f"U{k}" for k in range(8)],
        "name": ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛"],
        "village_code": "640121100001",
        "lon": ["106.21", "106.22", "106.23", "", "106.25", "106.26", "106.27", "106.28"],
        "lat": ["38.31", "38.32", "38.33", "", "38.35", "38.36", "38.37", "38.38"],
        "deposit_balance": ["10.00", "20.00", "30.00", "40.00", "50.00", "60.00", "70.00", "80.00"],
        "segment": ["农户", "农户", "", "农户", "农户", "农户", "农户", "农户"],
    })
    path = tmp_path / "u.csv"
    first.to_csv(path, index=False)
    s1 = run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path)
    assert s1["counts"]["inserted"] == 8
    before = _rows(engine)

    second = first.copy()
    second.loc[0, "lon"] = "106.215"                    # point moved
    second.loc[1, ["lon", "lat"]] = ""                  # point removed (value -> NULL)
    second.loc[3, ["lon", "lat"]] = ["106.24", "38.34"]  # point added (NULL -> value)
    second.loc[4, "deposit_balance"] = "50.01"          # balance changed by a cent
    second.loc[2, "segment"] = "贵宾"                    # NULL -> text
    second.loc[5, "name"] = "己二"                       # text changed
    second = pd.concat([second, pd.DataFrame({"customer_id": ["U8"], "name": ["壬"],
                                              "village_code": ["640121100001"], "lon": ["106.29"],
                                              "lat": ["38.39"], "deposit_balance": ["1.00"],
                                              "segment": ["农户"]})], ignore_index=True)
    second.to_csv(path, index=False)
    s2 = run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path)
    assert s2["counts"] == {"rows": 9, "inserted": 1, "updated": 6, "unchanged": 2, "rejected": 0}
    after = _rows(engine)
    run2 = s2["run_id"]
    assert after["U0"][3] == "POINT(106.215 38.31)" and after["U0"][5] == run2
    assert after["U1"][3] is None and after["U1"][4] is None and after["U1"][5] == run2
    assert after["U3"][3] == "POINT(106.24 38.34)" and after["U3"][4] == "wgs84"
    assert after["U4"][1] == "50.01" and after["U2"][2] == "贵宾" and after["U5"][0] == "己二"
    assert after["U8"] == ("壬", "1.00", "农户", "POINT(106.29 38.39)", "wgs84", run2)
    # Unchanged rows are not rewritten: they keep the run that wrote them.
    assert after["U6"] == before["U6"] and after["U7"] == before["U7"]
    assert before["U6"][5] == s1["run_id"]

    # The same content again (another file: a new column order) changes nothing.
    second[list(reversed(second.columns))].to_csv(path, index=False)
    s3 = run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path)
    assert s3["counts"] == {"rows": 9, "inserted": 0, "updated": 0, "unchanged": 9, "rejected": 0}
    assert _rows(engine) == after
