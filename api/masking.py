"""Masking of personal data by role: names 张*, phones 138****1234, ID numbers 110101********1234.

Who sees what unmasked is decided by ``geodata.scope.sees_pii``: admins, and
the RMs and branch managers whose scope already limits them to their own
customers. Planners and analysts always get masked values. Exports and map
pages must call :func:`mask_record` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from geodata.scope import Scope, sees_pii

PII_FIELDS = {"name": "name", "phone": "phone", "id_number": "id_number"}


def _missing(value: object) -> bool:
    """No value to mask: None, NaN (a pandas frame's empty cell), pandas' NA/NaT, or empty text."""
    if isinstance(value, str):
        return not value
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array is a value, not a missing one
        return False


def _text(value: object) -> str | None:
    """The value as stripped text, or None when it is missing (so a missing value stays missing)."""
    if _missing(value):
        return None
    return str(value).strip()


def mask_name(name: str | None) -> str | None:
    """Keep the first character, one ``*`` per other character: 张三 → 张*, 欧阳娜娜 → 欧***."""
    if isinstance(name, str) and not name:
        return name
    s = _text(name)
    return None if s is None else s[:1] + "*" * (len(s) - 1)


def mask_phone(phone: str | None) -> str | None:
    """Keep the first 3 and last 4 digits of a mobile number: 13812341234 → 138****1234."""
    if isinstance(phone, str) and not phone:
        return phone
    s = _text(phone)
    return None if s is None else _keep_ends(s, 3, 4, 11)


def mask_id_number(id_number: str | None) -> str | None:
    """Keep the first 6 (region) and last 4 characters: 110101199001011234 → 110101********1234."""
    if isinstance(id_number, str) and not id_number:
        return id_number
    s = _text(id_number)
    return None if s is None else _keep_ends(s, 6, 4, 15)


def _keep_ends(s: str, head: int, tail: int, full: int) -> str:
    """Mask all but ``head``/``tail`` characters; shorter values than ``full`` keep less."""
    n = len(s)
    if n < full:
        # A short value keeping the usual ends would reveal most of itself.
        head, tail = (2, 2) if n >= 7 else (1, 0)
    return s[:head] + "*" * (n - head - tail) + s[n - tail:] if tail else s[:head] + "*" * (n - head)


_MASKERS = {"name": mask_name, "phone": mask_phone, "id_number": mask_id_number}


def mask_record(record: Mapping[str, Any], scope: Scope,
                fields: Mapping[str, str] = PII_FIELDS) -> dict[str, Any]:
    """A copy of ``record`` with its personal fields masked unless ``scope`` may see them.

    ``fields`` maps a key of the record to the kind of value it holds
    (``name``, ``phone`` or ``id_number``), e.g. ``{"rm_name": "name"}``.
    """
    out = dict(record)
    if sees_pii(scope):
        return out
    for key, kind in fields.items():
        if key in out:
            out[key] = _MASKERS[kind](out[key])
    return out
