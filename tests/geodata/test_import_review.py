"""Review of the threaded import: the outside-county count, errors quoting a NUL, the grouped county check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

import geodata.importers as imp
from geodata.errors import BadInput
from geodata.importers import run_import
from geodata.importers.customers import CUSTOMERS
from geodata.importers.rows import Context, outside_county


def _q(engine, sql, **kw):
    with engine.connect() as c:
        return c.execute(text(sql), kw).all()


def _import_points(engine, tmp_path, name: str, rows: str) -> dict:
    """Import customer rows (客户号,村代码,经度,纬度 lines) written to ``name`` in tmp_path; the run's summary."""
    path = tmp_path / name
    path.write_text("客户号,村代码,经度,纬度\n" + rows, encoding="utf-8")
    return run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path)


def test_a_duplicate_outside_its_county_is_rejected_not_counted_as_outside(engine, counties, tmp_path):
    # Line 3 repeats D1 with a point far outside 永宁县: a rejected row, so no 'outside county' warning for it.
    s = _import_points(engine, tmp_path, "dup-outside.csv",
                       "D1,640121100001,106.25,38.35\nD1,640121100001,107.60,35.40\nD2,640121100001,106.25,38.35\n")
    assert s["counts"]["inserted"] == 2 and s["counts"]["rejected"] == 1
    assert s["outside_county"] == 0
    assert s["warnings"] == {} and s["warning_rows"] == []


def test_a_duplicate_with_swapped_coordinates_gets_no_swap_warning(engine, counties, tmp_path):
    # Line 3 repeats S1 with latitude and longitude swapped: it is rejected, so it is not also "fixed".
    s = _import_points(engine, tmp_path, "dup-swapped.csv",
                       "S1,640121100001,106.25,38.35\nS1,640121100001,38.35,106.25\nS2,640121100001,38.36,106.26\n")
    assert s["counts"]["inserted"] == 2 and s["counts"]["rejected"] == 1
    assert s["warnings"] == {"swapped_lon_lat": 1} and [w["line"] for w in s["warning_rows"]] == [4]


def test_a_failed_import_leaves_no_partial_rejects_file(engine, counties, tmp_path, monkeypatch):
    # Rejects found before the failure would describe an import that stored nothing.
    path = tmp_path / "fails-late.csv"
    path.write_text("客户号,村代码,存款余额\n" + "".join(f"F{i:04d},640121100001,{'x' if i == 3 else '1'}\n"
                                                   for i in range(400)), encoding="utf-8")
    calls = []

    def fail_third(cur, table, enc):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("connection lost while loading chunk 3")

    monkeypatch.setattr(imp, "DIRECT_LOAD_MIN_ROWS", 10)
    monkeypatch.setattr(imp.load, "send_direct", fail_third)
    with engine.begin() as c:
        c.execute(text("TRUNCATE customer"))
    rejects = tmp_path / "fails-late-rejects.csv"
    with pytest.raises(RuntimeError, match="chunk 3"):
        run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path, rejects_path=rejects,
                   chunk_size=64)
    assert len(calls) == 3 and not rejects.exists()
    assert _q(engine, "SELECT count(*) FROM customer")[0][0] == 0


def test_an_error_quoting_a_nul_is_recorded_and_raised_as_itself(engine, tmp_path):
    # A UTF-16 export without BOM reads as UTF-8 text full of NULs: the 'no column' error names its
    # columns, and PostgreSQL cannot store that message; the run stayed 'running' and a ValueError replaced it.
    path = tmp_path / "utf16.csv"
    path.write_bytes("customer_id,name\nA1,x\n".encode("utf-16-le"))
    with pytest.raises(BadInput, match="no column for required field"):
        run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path)
    status, message = _q(engine, "SELECT status, message FROM import_run ORDER BY id DESC LIMIT 1")[0]
    assert status == "failed" and "no column for required field" in message


_POLYS = {"A": shapely.box(0, 0, 1, 1), "B": shapely.box(0.5, 0.5, 2, 2), "C": shapely.Point(0, 0).buffer(1.5)}
for _g in _POLYS.values():
    shapely.prepare(_g)
_row = st.tuples(st.sampled_from([None, "A", "B", "C", "D", ""]),
                 st.one_of(st.just(np.nan), st.sampled_from([0.0, 0.5, 1.0, 2.5]), st.floats(-3, 3)),
                 st.floats(-3, 3))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(_row, max_size=30), shift=st.integers(0, 5), dtype=st.sampled_from(["str", object]))
def test_outside_county_is_the_per_row_check(rows, shift, dtype):
    county = pd.Series([r[0] for r in rows], dtype=dtype, index=np.arange(len(rows)) + shift)
    lon = np.array([r[1] for r in rows], dtype=float)
    lat = np.where(np.isnan(lon), np.nan, np.array([r[2] for r in rows], dtype=float))
    want = [not np.isnan(x) and c in _POLYS and not _POLYS[c].contains(shapely.Point(x, y))
            for c, x, y in zip(county, lon, lat, strict=True)]
    got = outside_county(county, lon, lat, Context(kind=CUSTOMERS, crs="wgs84", counties=_POLYS))
    assert got.tolist() == want


def test_a_point_without_county_or_village_code_takes_the_county_it_lies_in(engine, counties, tmp_path):
    # A file with points but no codes: without this, no grid ever placed (or listed) these customers.
    with engine.begin() as c:  # the county's legal entity then follows the county found
        c.execute(text("UPDATE county SET legal_entity_id = (SELECT id FROM legal_entity WHERE code = 'NX01')"
                       " WHERE adcode = '640121'"))
    s = _import_points(engine, tmp_path, "no-codes.csv",
                       "P1,,106.25,38.35\n"            # inside 永宁县 (640121, legal entity NX01)
                       "P2,,116.40,39.90\n"            # Beijing: in no stored county
                       "P3,640121100001,,\n"           # a village code, no point: county from the code
                       "P4,,106.25,38.35\nP4,,106.25,38.35\n")  # a duplicate gets no warning
    assert s["counts"]["inserted"] == 4 and s["counts"]["rejected"] == 1
    assert s["warnings"] == {"county_from_point": 2}
    assert [w["line"] for w in s["warning_rows"]] == [2, 5]
    rows = dict((r[0], (r[1], r[2])) for r in _q(
        engine, "SELECT c.customer_id, c.county_code, l.code FROM customer c"
                " LEFT JOIN legal_entity l ON l.id = c.legal_entity_id WHERE c.customer_id LIKE 'P_'"))
    assert rows == {"P1": ("640121", "NX01"), "P2": (None, None), "P3": ("640121", "NX01"),
                    "P4": ("640121", "NX01")}
    assert s["outside_county"] == 0


def test_times_with_their_own_offset_are_moved_to_china_time():
    # An export's "+00" (or an ISO "Z") was dropped and the time read as China time: 8 hours off.
    from geodata.importers.validate import datetimes

    s = pd.Series(["2025-01-02 00:26:55+00", "2025-01-02T00:26:55Z", "2025-01-01T20:00:00-05:30",
                   "2025-01-02 00:26:55+08:00", "2025-01-02 08:26:55", "2025-01-02 08:26:55.5", "2025/1/2"],
                  dtype="str")
    out, bad = datetimes(s)
    assert list(out) == ["2025-01-02 08:26:55+08", "2025-01-02 08:26:55+08", "2025-01-02 09:30:00+08",
                         "2025-01-02 00:26:55+08", "2025-01-02 08:26:55+08", "2025-01-02 08:26:55+08",
                         "2025-01-02 00:00:00+08"]
    assert not bad.any()


def test_a_counties_file_without_geometry_is_a_clear_error(tmp_path):
    from geodata.importers import KINDS
    from geodata.importers.spatial import open_layer

    path = tmp_path / "counties.csv"
    path.write_text("adcode,name\n640121,永宁县\n", encoding="utf-8")
    with pytest.raises(BadInput, match="counties.csv: has no geometry; counties need boundary polygons"):
        open_layer(path, kind=KINDS["counties"], crs="wgs84")
