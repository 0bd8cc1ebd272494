"""Spreadsheet formula neutralising for every CSV the service writes (OWASP's CSV injection rule).

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be run as a
formula by Excel or LibreOffice (``=HYPERLINK(...)``, ``@SUM(...)``, ``+cmd|' /C calc'!A0``), so it
is written with a single quote in front: ``'=HYPERLINK(...)``. Two things are left as they are:

- numeric columns (balances, counts, coordinates): a negative balance stays the number ``-12.5``;
- text that is a plain decimal number (``-5``, ``+8613812341234``, ``1e3``): a spreadsheet reads it
  as that number and runs nothing, and a quote would only spoil it for re-import.

The same rule is written once in Python (:func:`safe_text`, :func:`safe_frame`) and once in SQL
(:func:`sql_safe_text`) for the ``COPY ... TO STDOUT`` exports.
"""

from __future__ import annotations

import re

import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
# The same two tests as PostgreSQL regular expressions (constant SQL, no user input).
_SQL_TRIGGER = r"^[-=+@\t\r]"
_SQL_NUMBER = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def safe_text(value: object) -> object:
    """``value`` with a ``'`` in front when it is text a spreadsheet would run as a formula; else unchanged.

    >>> safe_text("=HYPERLINK(\\"http://x\\")"), safe_text("-5"), safe_text("张三"), safe_text(-5)
    ('\\'=HYPERLINK("http://x")', '-5', '张三', -5)
    """
    if isinstance(value, str) and value.startswith(TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text (object/string) columns are neutralised; numeric, bool and time columns untouched."""
    out = df.copy()
    for c in out.columns:
        dtype = out[c].dtype
        if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
            out[c] = out[c].map(safe_text, na_action="ignore")
    return out


def sql_safe_text(expr: str, alias: str) -> str:
    """SQL selecting the text ``expr`` neutralised as :func:`safe_text` does, as ``alias``.

    ``expr`` and ``alias`` come from the schema (column names), never from users.
    """
    return (f"CASE WHEN {expr} ~ '{_SQL_TRIGGER}' AND {expr} !~ '{_SQL_NUMBER}'"
            f" THEN '''' || {expr} ELSE {expr} END AS {alias}")
