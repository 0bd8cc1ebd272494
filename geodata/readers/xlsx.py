"""XLSX workbooks: opening a sheet, cells as the text a CSV export would hold, frames without blank rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from geodata.errors import BadInput
from geodata.readers.headers import LINE


def _cell_text(v: object) -> str:
    """An XLSX cell as the text a CSV export would hold."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float):
        # Codes typed as numbers come back as 640104001002.0; planners mean the digits.
        return str(int(v)) if v.is_integer() and abs(v) < 1e17 else repr(v)
    return str(v).strip()



def _xlsx_frame(rows, lines, columns) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns, dtype="str")
    frame[LINE] = lines
    return _drop_blank(frame)


def _drop_blank(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with every cell empty are spacing, not data: dropped without a reject."""
    cols = [c for c in frame.columns if c != LINE]
    if not len(frame) or not cols:
        return frame
    blank = (frame[cols] == "").all(axis=1)
    return frame[~blank].reset_index(drop=True) if blank.any() else frame


def _open_sheet(path: Path, sheet: str | None):
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken or foreign file
        raise BadInput(f"{path.name}: cannot be read as an XLSX workbook ({exc})") from None
    if sheet is None:
        return wb, wb.worksheets[0]
    if sheet not in wb.sheetnames:
        names = ", ".join(wb.sheetnames)
        wb.close()
        raise BadInput(f"{path.name}: no sheet {sheet!r}; sheets: {names}")
    return wb, wb[sheet]


