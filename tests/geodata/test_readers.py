"""Reading planners' tables: encodings, header under title rows, aliases, XLSX cells, value parsing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata.errors import BadInput
from geodata.importers import validate as v
from geodata.readers import detect_encoding, match_field, normalise_header, open_table

VILLAGE_FIELDS = ("code", "name", "township_code", "township_name", "county_code", "households",
                  "population", "lon", "lat", "coord_level", "is_community")
TEXT = "永宁县行政村名录（2023年）\n制表单位：永宁县民政局,,,\n村（社区）名称,统计用区划代码,户 数,经度（GCJ02）\n望远村,640121100001,1200,106.3\n"


@pytest.mark.parametrize("encoding,expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"), ("gb18030", "gb18030"),
])
def test_encodings_and_header_under_two_title_rows(tmp_path, encoding, expected):
    path = tmp_path / "v.csv"
    path.write_bytes(TEXT.encode(encoding))
    assert detect_encoding(path) == expected
    t = open_table(path, kind="villages", fields=VILLAGE_FIELDS)
    assert t.header_line == 3
    assert t.mapping == {"name": "村（社区）名称", "code": "统计用区划代码", "households": "户 数",
                         "lon": "经度（GCJ02）"}
    chunk = next(t.chunks())
    assert chunk.to_dict("records") == [{"村（社区）名称": "望远村", "统计用区划代码": "640121100001",
                                         "户 数": "1200", "经度（GCJ02）": "106.3", "_line": 4}]


@pytest.mark.parametrize("encoding, broken", [("gbk", b"\x81\x20"), ("utf-8", b"\xe5\x20")])
def test_undecodable_bytes_deep_in_a_file_name_their_line(tmp_path, encoding, broken):
    # Past the part read to detect the encoding: the reader meets them while streaming.
    lines = ["客户号,姓名,村代码".encode(encoding)]
    lines += [f"G{i:07d},张三,640121100001".encode(encoding) for i in range(60_000)]
    lines[50_000] = lines[50_000].replace("张三".encode(encoding), broken)
    path = tmp_path / f"bad-{encoding}.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    t = open_table(path, kind="customers", fields=("customer_id", "name", "village_code"))
    with pytest.raises(BadInput, match=f"bad-{encoding}.csv, line 50001: bytes {broken.hex(' ')} are not valid"):
        for _ in t.chunks(chunk_size=10_000):
            pass


def test_a_row_longer_than_the_readers_limit_is_named_with_its_line(tmp_path):
    """A row past the block Arrow reads at a time (here 1 MiB) is a BadInput naming the line and both sizes,
    not Arrow's 'straddling object straddles two block boundaries'."""
    path = tmp_path / "long.csv"
    path.write_text("客户号,姓名,村代码\nG1,张三,640121100001\nG2," + "张" * 1_000_000 + ",640121100001\n"
                    "G3,李四,640121100001\n", encoding="utf-8")
    t = open_table(path, kind="customers", fields=("customer_id", "name", "village_code"))
    with pytest.raises(BadInput, match=r"long.csv, line 3: a row of 3,000,016 bytes, longer than the reader's "
                                       r"limit of 1,048,576 bytes per row"):
        for _ in t.chunks(chunk_size=1_000):
            pass


def test_a_file_that_is_one_huge_line_names_the_problem(tmp_path):
    """A single-line file (here 300 kB, as the 200 MB one of the report) failed with Python csv's bare 'Error'
    (field larger than field limit) while looking for the header."""
    path = tmp_path / "one.csv"
    path.write_text("客户号," + "x" * 300_000, encoding="utf-8")
    with pytest.raises(BadInput, match=r"one.csv, line 1: a field longer than 131,072 characters where the "
                                       r"header should be"):
        open_table(path, kind="customers", fields=("customer_id", "name", "village_code"))


def test_a_long_field_after_the_header_does_not_stop_the_header_scan(tmp_path):
    """A 200 kB cell in the first rows is past Python csv's limit but well within Arrow's: it is read."""
    path = tmp_path / "wide.csv"
    path.write_text("客户号,姓名,村代码\nG1," + "x" * 200_000 + ",640121100001\n", encoding="utf-8")
    t = open_table(path, kind="customers", fields=("customer_id", "name", "village_code"))
    (chunk,) = list(t.chunks())
    assert len(chunk["姓名"].iloc[0]) == 200_000 and chunk["_line"].tolist() == [2]


def test_progress_follows_the_rows_handed_out(tmp_path):
    # pyarrow reads megabyte blocks ahead; the fraction must not jump to the end with the first of them.
    path = tmp_path / "many.csv"
    path.write_text("客户号,姓名,村代码\n" + "".join(f"G{i:07d},张三,640121100001\n" for i in range(50_000)),
                    encoding="utf-8")
    t = open_table(path, kind="customers", fields=("customer_id", "name", "village_code"))
    got, rows = [], 0
    for chunk in t.chunks(chunk_size=5_000):
        rows += len(chunk)
        got.append((t.fraction_read(), rows / 50_000))
    assert len(got) == 10 and got[-1][0] == 1.0
    assert all(abs(f - share) < 0.03 for f, share in got), got


def test_normalise_and_match():
    assert normalise_header(" 村（社区）名称 ") == "村(社区)名称"
    assert normalise_header("ＬＯＮ") == "lon"
    aliases = {"存款余额": "deposit_balance"}
    assert match_field("存款余额（元）", aliases) == "deposit_balance"
    assert match_field("贷款余额", aliases) is None


def test_ragged_and_blank_rows_keep_line_numbers(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("code,name\n640121100001,甲\n\n640121100002\n640121100003,丙\n,\n640121100004,丁\n",
                    encoding="utf-8")
    t = open_table(path, kind="villages", fields=VILLAGE_FIELDS)
    chunk = pd.concat(list(t.chunks(chunk_size=2)))
    assert chunk["_line"].tolist() == [2, 5, 7]
    assert [r[0] for r in t.invalid_rows] == [4]


def test_xlsx_cells_become_text(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["客户清单"])
    ws.append(["客户号", "开户日期", "存款余额", "村代码"])
    ws.append(["C1", dt.datetime(2023, 5, 1), 1234.5, 640121100001])
    ws.append(["C2", 45047, 10.0, None])
    path = tmp_path / "c.xlsx"
    wb.save(path)
    fields = ("customer_id", "opened_on", "deposit_balance", "village_code")
    t = open_table(path, kind="customers", fields=fields)
    rows = next(t.chunks()).drop(columns="_line").values.tolist()
    assert rows == [["C1", "2023-05-01", "1234.5", "640121100001"], ["C2", "45047", "10", ""]]
    assert v.dates(pd.Series(["2023-05-01", "45047"], dtype="str"))[0].tolist() == ["2023-05-01"] * 2
    with pytest.raises(BadInput, match="no sheet 'x'"):
        open_table(path, kind="customers", fields=fields, sheet="x")


def test_value_parsers():
    s = pd.Series(["2023-05-01", "2023/5/1", "20230501", "2023年5月1日", "2023-02-30", "", "昨天"], dtype="str")
    vals, bad = v.dates(s)
    assert vals.tolist()[:4] == ["2023-05-01"] * 4 and bad.tolist() == [False] * 4 + [True, False, True]
    nums, bad = v.numbers(pd.Series(["1,234.50", "¥7", " 3 ", "", "abc", "1e400"], dtype="str"))
    assert nums[:3].tolist() == [1234.5, 7.0, 3.0] and bad.tolist() == [False] * 4 + [True, True]
    flags, bad = v.flags(pd.Series(["是", "N", "1", "", "maybe"], dtype="str"))
    assert flags.tolist() == ["true", "false", "true", None, None] and bad.tolist()[-1]
    assert v.clean(pd.Series(["６４０１２１ ", "ａ"], dtype="str")).tolist() == ["640121", "a"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e12, allow_nan=False), min_size=1, max_size=30))
def test_numbers_read_back_what_python_writes(xs):
    vals, bad = v.numbers(pd.Series([repr(x) for x in xs], dtype="str"))
    assert not bad.any() and np.array_equal(vals, np.array(xs))


@settings(max_examples=60, deadline=None)
@given(st.dates(min_value=dt.date(1901, 1, 1), max_value=dt.date(2060, 12, 31)))
def test_every_date_spelling_reads_the_same_day(d):
    s = pd.Series([d.isoformat(), f"{d.year}/{d.month}/{d.day}", d.strftime("%Y%m%d"),
                   str((d - dt.date(1899, 12, 30)).days)], dtype="str")
    vals, bad = v.dates(s)
    assert not bad.any() and set(vals) == {d.isoformat()}
