"""Data rows streamed into an xlsx whose frame xlsxwriter wrote: shared strings, column styles, few references.

xlsxwriter writes the frame of a workbook: the package, styles, sheet views with frozen panes, column
widths and number formats, autofilters, header rows and small rows such as totals. A big table's data rows
are then spliced into its sheet (after its header rows) by :func:`splice_rows`, for three reasons measured
with ``bench/bench_workbook.py``:

- xlsxwriter's ``constant_memory`` mode writes every string inline, so each repeated RM code, cell id and
  village name is spelled out again, and openpyxl builds a rich-text object for every inline string (a third
  of its load time); without that mode xlsxwriter keeps every cell in memory (gigabytes at a million rows).
  Here each distinct string goes once into the shared-string table.
- xlsxwriter writes ``r="K12345"`` on every cell; the ever-changing row number defeats compression (half of
  the zipped size of a customers sheet). ``r`` is optional (ECMA-376 §18.3.1.4): readers count columns, so it
  is written only on a cell after a missing one.
- Every cell carries its column's style (``s``), which is the column's number format set by xlsxwriter
  (``set_column``): no per-cell formats, and Excel still shows amounts, counts and dates formatted.

Values come converted (:func:`geodata.workbook._column_values`: None where missing, ints, floats, naive
datetimes in China time, bools, strings).
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from xlsxwriter.utility import xl_col_to_name

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "rel": "http://schemas.openxmlformats.org/package/2006/relationships"}
_RID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_SST = "xl/sharedStrings.xml"
_EPOCH = dt.datetime(1899, 12, 30)  # Excel's 1900 date system (serial 61 is 1900-03-01 onwards)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_MAX_CHARS = 32767
CHUNK = 20_000  # rows converted and written at a time


@dataclass
class Table:
    """Data rows for one sheet: ``column(key, start, stop)`` gives a column's values for rows start..stop."""

    sheet: str
    kinds: Sequence[str]
    rows: int
    column: Callable[[int, int, int], list]


def _escape(s: str) -> str:
    s = s[:_MAX_CHARS].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _CONTROL.sub(lambda m: f"_x{ord(m.group()):04X}_", s)


class _Strings:
    """The shared-string table: the frame's strings first, each new one appended once."""

    def __init__(self, existing: Iterable[str], count: int):
        self.index: dict[str, int] = {}
        for s in existing:
            self.index.setdefault(s, len(self.index))
        self.count = count

    def xml(self) -> Iterable[bytes]:
        yield (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{_NS["m"]}"'
               f' count="{self.count}" uniqueCount="{len(self.index)}">').encode()
        batch = []
        for s in self.index:
            space = ' xml:space="preserve"' if s[:1].isspace() or s[-1:].isspace() else ""
            batch.append(f"<si><t{space}>{_escape(s)}</t></si>")
            if len(batch) >= 10_000:
                yield "".join(batch).encode()
                batch = []
        yield ("".join(batch) + "</sst>").encode()


def _cells(values: list, kind: str, style: int | None, strings: _Strings) -> list[str | None]:
    """One column's values as ``<c>`` elements (None where missing), carrying the column's style."""
    s = f' s="{style}"' if style else ""
    if kind == "text":
        index, out = strings.index, []
        for v in values:
            if v is None:
                out.append(None)
                continue
            i = index.get(v)
            if i is None:
                i = index[v] = len(index)
            out.append(f'<c{s} t="s"><v>{i}</v></c>')
        strings.count += sum(1 for v in values if v is not None)
        return out
    if kind == "bool":
        return [None if v is None else f'<c{s} t="b"><v>{int(v)}</v></c>' for v in values]
    if kind in ("date", "datetime"):
        return [None if v is None else f"<c{s}><v>{_serial(v)!r}</v></c>" for v in values]
    return [None if v is None else f"<c{s}><v>{v!r}</v></c>" for v in values]


def _serial(v: dt.datetime) -> float | int:
    days = (v - _EPOCH) / dt.timedelta(days=1)
    return int(days) if days == int(days) else days


def _row_xml(r: int, cells: tuple) -> str:
    if None not in cells:
        return f'<row r="{r}">{"".join(cells)}</row>'
    parts, gap = [], False
    for c, x in enumerate(cells):
        if x is None:
            gap = True
        elif gap:  # the cell after a missing one says where it is
            parts.append(f'<c r="{xl_col_to_name(c)}{r}"{x[2:]}')
            gap = False
        else:
            parts.append(x)
    return f'<row r="{r}">{"".join(parts)}</row>' if parts else ""


def _sheet_parts(src: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name → its part in the package (from workbook.xml and its relationships)."""
    rels = ElementTree.fromstring(src.read("xl/_rels/workbook.xml.rels"))
    target = {r.get("Id"): r.get("Target") for r in rels.findall("rel:Relationship", _NS)}
    book = ElementTree.fromstring(src.read("xl/workbook.xml"))
    return {s.get("name"): "xl/" + target[s.get(_RID)].removeprefix("/xl/")
            for s in book.findall("m:sheets/m:sheet", _NS)}


def _column_styles(head: str) -> dict[int, int]:
    """Column (0-based) → style index, from the sheet's ``<cols>`` (what ``set_column`` gave it)."""
    styles = {}
    for m in re.finditer(r"<col ([^>]*)/>", head):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if "style" in attrs:
            for c in range(int(attrs["min"]) - 1, int(attrs["max"])):
                styles[c] = int(attrs["style"])
    return styles


def splice_rows(frame: zipfile.ZipFile, path: Path, tables: Sequence[Table], *, header_rows: int = 2,
                compresslevel: int = 6) -> Path:
    """Copy the package ``frame`` to ``path``, each table's rows placed after its sheet's header rows."""
    parts = _sheet_parts(frame)
    by_part = {parts[t.sheet]: t for t in tables}
    sst = ElementTree.fromstring(frame.read(_SST))
    strings = _Strings(("".join(si.itertext()) for si in sst.findall("m:si", _NS)), int(sst.get("count", 0)))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as out:
        for info in frame.infolist():
            if info.filename == _SST:
                continue
            table = by_part.get(info.filename)
            if table is None:
                out.writestr(info, frame.read(info))
                continue
            xml = frame.read(info).decode("utf-8")
            cut = _after_nth(xml, "</row>", header_rows)
            head, tail = xml[:cut], xml[cut:]
            last = xl_col_to_name(len(table.kinds) - 1) + str(header_rows + max(table.rows, 0))
            head = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}"/>', head, count=1)
            styles = _column_styles(head)
            part = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            part.compress_type = zipfile.ZIP_DEFLATED
            with out.open(part, "w") as fh:
                fh.write(head.encode("utf-8"))
                for start in range(0, table.rows, CHUNK):
                    stop = min(start + CHUNK, table.rows)
                    columns = [_cells(table.column(c, start, stop), kind, styles.get(c), strings)
                               for c, kind in enumerate(table.kinds)]
                    first = header_rows + start + 1
                    fh.write("".join(_row_xml(first + i, cells)
                                     for i, cells in enumerate(zip(*columns, strict=True))).encode("utf-8"))
                fh.write(tail.encode("utf-8"))
        part = zipfile.ZipInfo(_SST, date_time=frame.getinfo(_SST).date_time)
        part.compress_type = zipfile.ZIP_DEFLATED
        with out.open(part, "w") as fh:
            for chunk in strings.xml():
                fh.write(chunk)
    return path


def _after_nth(xml: str, tag: str, n: int) -> int:
    """The position just after the ``n``-th ``tag`` (after ``<sheetData>`` when ``n`` is 0)."""
    pos = xml.index("<sheetData>") + len("<sheetData>")
    for _ in range(n):
        pos = xml.index(tag, pos) + len(tag)
    return pos
