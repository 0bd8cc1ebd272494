"""A file that is GBK in one part and UTF-8 in another: the lines in the other encoding are rejected and
named, never stored as mojibake (赵六 as 璧靛叚), and the rest is read with its own line numbers."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import text

from geodata.importers import run_import
from geodata.readers import detect_encoding, mixed_encoding_lines, open_table

FIELDS = ("customer_id", "name", "village_code")
GBK_ROWS = 60_000  # about 1.8 MB: past the first megabyte that the encoding is detected from


def _write(path: Path, first: str, later: str, *, n_first: int = GBK_ROWS) -> list[int]:
    """Header and ``n_first`` rows in ``first``, then 赵六 and 钱七 in ``later``, then a row in ``first``."""
    lines = ["客户号,姓名,村代码".encode(first)]
    lines += [f"G{i:07d},张三,640121100001".encode(first) for i in range(n_first)]
    mixed = []
    for cid, name in (("M1", "赵六"), ("M2", "钱七")):
        lines.append(f"{cid},{name},640121100001".encode(later))
        mixed.append(len(lines))
    lines.append("G9999999,王五,640121100001".encode(first))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return mixed


@pytest.mark.parametrize("first, later, other", [("gbk", "utf-8", "UTF-8"), ("utf-8", "gbk", "GBK/GB18030")])
def test_lines_in_the_other_encoding_are_named_not_garbled(tmp_path, first, later, other):
    path = tmp_path / "mixed.csv"
    mixed = _write(path, first, later)
    t = open_table(path, kind="customers", fields=FIELDS)
    assert t.encoding == ("gb18030" if first == "gbk" else "utf-8")
    names, lines = [], []
    for chunk in t.chunks(chunk_size=20_000):
        names += chunk["姓名"].tolist()
        lines += chunk["_line"].tolist()
    assert "璧靛叚" not in names and "赵六" not in names  # neither garbled nor guessed
    assert len(names) == GBK_ROWS + 1 and names[-1] == "王五" and lines[-1] == mixed[-1] + 1
    assert [(line, text_.split(",")[1]) for line, text_, _ in t.invalid_rows] == [(mixed[0], "赵六"), (mixed[1], "钱七")]
    assert all(f"this line is {other}" in reason for _, _, reason in t.invalid_rows)


def test_scan_finds_utf8_lines_among_gbk(tmp_path):
    path = tmp_path / "m.csv"
    mixed = _write(path, "gbk", "utf-8", n_first=10)
    assert [(line, other) for line, _, other in mixed_encoding_lines(path, "gb18030")] == [(m, "UTF-8") for m in mixed]
    # GBK that happens to be valid UTF-8 (录 is C2 BC, UTF-8 for ¼) holds no ideograph that way: not flagged.
    path.write_bytes("客户号,姓名\nG1,录\n".encode("gbk"))
    assert mixed_encoding_lines(path, "gb18030") == []


def test_a_mostly_utf8_head_is_utf8(tmp_path):
    """The first megabyte with both: the encoding of most lines wins, the others are rejected."""
    path = tmp_path / "m.csv"
    lines = ["客户号,姓名,村代码".encode()] + [f"G{i},张三,640121100001".encode() for i in range(20)]
    lines.append("G99,赵六,640121100001".encode("gbk"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert detect_encoding(path) == "utf-8"
    path.write_bytes(b"\n".join(ln.decode("utf-8", errors="replace").encode("gbk", errors="replace")
                                if i < 20 else ln.decode("gbk", errors="replace").encode("utf-8")
                                for i, ln in enumerate(lines)) + b"\n")
    assert detect_encoding(path) == "gb18030"


def test_import_rejects_the_other_encodings_rows_and_names_them(engine, tmp_path):
    path = tmp_path / "customers.csv"
    mixed = _write(path, "gbk", "utf-8", n_first=20_000)
    s = run_import(engine, kind="customers", path=path, user="u", rejects_dir=tmp_path)
    assert s["counts"]["inserted"] == 20_001 and s["counts"]["rejected"] == 2, s
    assert s["warnings"]["mixed_encoding"] == 2
    with engine.connect() as c:
        stored = dict(c.execute(text("SELECT customer_id, name FROM customer"
                                     " WHERE customer_id IN ('M1', 'M2', 'G9999999')")).all())
    assert stored == {"G9999999": "王五"}  # 赵六 is not stored as 璧靛叚
    rows = list(csv.DictReader(open(s["rejects_path"], encoding="utf-8-sig", newline="")))
    assert [(int(r["line"]), r["value"].split(",")[1]) for r in rows] == [(mixed[0], "赵六"), (mixed[1], "钱七")]
    assert all("mixed encodings" in r["reason"] for r in rows)
