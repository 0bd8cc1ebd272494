"""Chunks validated in a thread ahead of the load: every kind of trouble over several chunks, errors reach the caller."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from geodata.importers import pipeline, run_import


def _q(engine, sql, **kw):
    with engine.connect() as c:
        return c.execute(text(sql), kw).all()


def _messy_file(path: Path, n: int = 400) -> Path:
    """Customers with every kind of trouble spread over several chunks."""
    lines = ["客户号,村代码,经度,纬度,存款余额,开户日期"]
    for k in range(n):
        lon, lat = f"{106.2 + (k % 60) * 0.002:.6f}", f"{38.3 + (k % 30) * 0.002:.6f}"
        row = [f"P{k:06d}", "640121100001", lon, lat, f"{k * 3}.25", "2020-01-02"]
        if k % 97 == 5:
            row[2], row[3] = lat, lon  # swapped: fixed with a warning
        if k % 89 == 7:
            row[4] = "abc"  # not a number
        if k % 83 == 9:
            row[0] = f"P{k - 1:06d}"  # duplicate of the line before
        if k % 79 == 11:
            row[2], row[3] = "107.60", "35.40"  # far outside 永宁县: flagged
        lines.append(",".join(row))
        if k == 250:
            lines.append("P999999,640121100001,106.2")  # too few cells
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_trouble_spread_over_chunks_is_reported_row_by_row(engine, counties, tmp_path):
    with engine.begin() as c:
        c.execute(text("TRUNCATE customer"))
    s = run_import(engine, kind="customers", path=_messy_file(tmp_path / "messy.csv"), user="u",
                   rejects_dir=tmp_path, chunk_size=64)
    rejects = pd.read_csv(s["rejects_path"], dtype=str, encoding="utf-8-sig").fillna("").values.tolist()
    reasons = pd.Series([r[3] for r in rejects]).str.replace(r"line \d+", "line N", regex=True).value_counts()
    assert reasons.to_dict() == {"not a number": 5, "duplicate of line N": 5, "3 cells where the header has 6": 1}
    # 401 rows: the 400 and the one with too few cells.
    assert s["counts"] == {"rows": 401, "inserted": 390, "updated": 0, "unchanged": 0, "rejected": 11}
    assert s["warnings"] == {"swapped_lon_lat": 5, "outside_county": 5}
    assert s["outside_county"] == 5
    assert _q(engine, "SELECT count(*) FROM customer")[0][0] == 390


def test_an_error_while_validating_reaches_the_caller_and_stores_nothing(engine, counties, tmp_path, monkeypatch):
    with engine.begin() as c:
        c.execute(text("TRUNCATE customer"))
    real = pipeline.process_chunk
    calls = []

    def fail_on_the_third(raw, mapping, ctx):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("disk went away on chunk 3")
        return real(raw, mapping, ctx)

    monkeypatch.setattr(pipeline, "process_chunk", fail_on_the_third)
    with pytest.raises(ValueError, match="disk went away on chunk 3"):
        run_import(engine, kind="customers", path=_messy_file(tmp_path / "m2.csv", n=300), user="u",
                   rejects_dir=tmp_path, chunk_size=64)
    assert len(calls) == 3  # the first two chunks were loaded, and then rolled back
    assert _q(engine, "SELECT count(*) FROM customer")[0][0] == 0
