"""What every import shares: the import_run record, the rejects CSV, the kind description, the summary."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table, text
from sqlalchemy.engine import Engine

from geodata import liveness
from geodata.csvsafe import safe_text
from geodata.readers import LINE

ProgressFn = Callable[[float, str], None]
MAX_LISTED_WARNINGS = 1000


@dataclass
class Kind:
    """One import kind: its table, natural key and the type of each canonical field.

    ``fields`` maps canonical field → type: ``text``, ``code6``/``code9``/``code12``,
    ``int``, ``num`` (non-negative amounts), ``float``, ``date``, ``datetime``,
    ``flag``, ``legal_entity`` (a code resolved to the id), ``lon``/``lat``,
    ``enum:a|b|c``, or ``list`` (read by ``check`` only, not a column). ``check`` adds kind-specific rejects (foreign references)
    and defaults for one chunk; it gets the transaction's connection.
    """

    name: str
    table: Table
    key: tuple[str, ...]
    fields: dict[str, str]
    required: tuple[str, ...]
    point: str = "none"  # 'none', 'optional', 'required' (lon/lat) or 'geometry' (polygons)
    check: Callable | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    fill: dict[str, Any] = field(default_factory=dict)  # value for an empty cell of a NOT NULL column
    after: Callable | None = None  # (cursor, ctx) once the rows are in, same transaction
    streaming: bool = False

    @property
    def columns(self) -> list[str]:
        """Database columns written from the file (lon/lat become ``geom``)."""
        out = []
        for f, typ in self.fields.items():
            if typ in ("lon", "lat") or f not in self.table.c and typ != "legal_entity":
                continue
            out.append("legal_entity_id" if typ == "legal_entity" else f)
        return out + [c for c in self.defaults if c not in out]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 4 MB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            h.update(block)
    return h.hexdigest()


def start_run(engine: Engine, *, kind: str, path: Path, sha: str, user: str, crs: str,
              dry_run: bool, synthetic: bool, options: dict) -> int:
    """Write the import_run row (committed at once, so it survives a failed load).

    This process holds the run's advisory lock from before the row exists until :func:`finish_run`
    (``geodata.liveness``): a run whose process died is marked failed on the next start-up.
    """
    with engine.begin() as conn:
        run_id = conn.execute(text("SELECT nextval(pg_get_serial_sequence('import_run', 'id'))")).scalar_one()
        liveness.hold_run(engine, run_id)
        try:
            conn.execute(
                text(
                    "INSERT INTO import_run (id, kind, file_name, sha256, user_name, source_crs, dry_run, synthetic,"
                    " options) VALUES (:i, :k, :f, :s, :u, :c, :d, :y, CAST(:o AS jsonb))"
                ),
                dict(i=run_id, k=kind, f=path.name, s=sha, u=user, c=crs, d=dry_run, y=synthetic,
                     o=json.dumps(options, ensure_ascii=False, sort_keys=True)),
            )
        except BaseException:
            liveness.release_run(engine, run_id)
            raise
    return run_id


def finish_run(engine: Engine, run_id: int, *, status: str, counts: dict | None = None,
               warnings: list | None = None, rejects_path: str | None = None,
               encoding: str | None = None, message: str | None = None) -> None:
    """Close the import_run row with its outcome (its own transaction) and give up its advisory lock."""
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE import_run SET status = :st, finished_at = now(), counts = CAST(:c AS jsonb),"
                    " warnings = CAST(:w AS jsonb), rejects_path = :r, encoding = :e, message = :m"
                    " WHERE id = :id"
                ),
                dict(st=status, c=json.dumps(counts or {}), w=json.dumps(warnings or [], ensure_ascii=False),
                     r=rejects_path, e=encoding, m=message, id=run_id),
            )
    finally:
        liveness.release_run(engine, run_id)


def previous_ok_run(engine: Engine, *, kind: str, sha: str, options: dict) -> int | None:
    """Id of the latest finished, non-dry run of this kind if it loaded exactly this file, read the same way."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT id, sha256, options FROM import_run WHERE kind = :k AND NOT dry_run"
                " AND status IN ('ok', 'unchanged') ORDER BY id DESC LIMIT 1"
            ),
            dict(k=kind),
        ).first()
    same = row is not None and row.sha256 == sha and row.options == json.loads(json.dumps(options))
    return row.id if same else None


class RejectsFile:
    """The rejects CSV (UTF-8 with BOM for Excel): line, field, value, reason, then the original row.

    Every text cell a spreadsheet would run as a formula starts with ``'`` (``geodata.csvsafe``).
    """

    def __init__(self, path: Path, columns: list[str]):
        self.path = path
        self.columns = columns
        self.count = 0
        self.reasons: Counter[str] = Counter()  # rows per reason (line numbers left out)
        self._f = None
        self._w = None

    def _open(self) -> None:
        # Rejected rows are personal data as the file had it (unmasked): private to the service's user.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file of that name may have had wider rights
        self._f = open(fd, "w", encoding="utf-8-sig", newline="")
        self._w = csv.writer(self._f)
        self._w.writerow(["line", "field", "value", "reason", *map(safe_text, self.columns)])

    def write(self, frame: pd.DataFrame, fields: np.ndarray, values: np.ndarray, reasons: np.ndarray) -> None:
        """Append rejected rows (``frame`` holds them under the original column names)."""
        if not len(frame):
            return
        if self._w is None:
            self._open()
        orig = frame.reindex(columns=self.columns).fillna("").astype(str).to_numpy().tolist()
        lines = frame[LINE].tolist()
        for line, fld, val, why, row in zip(lines, fields, values, reasons, orig, strict=True):
            self._w.writerow([line, *map(safe_text, [fld or "", "" if val is None else val, why, *row])])
        self.count += len(frame)
        self.reasons.update(map(_reason_kind, reasons))

    def write_raw(self, line: int | None, value: str, reason: str, *, field: str = "") -> None:
        """A row that could not even be split into columns (or, ``field`` named, whose geometry is no point)."""
        if self._w is None:
            self._open()
        self._w.writerow([line if line is not None else "", safe_text(field), safe_text(value), safe_text(reason)])
        self.count += 1
        self.reasons[_reason_kind(reason)] += 1

    def write_rows(self, rows: list[tuple[int, str, str, str]]) -> None:
        """Rows rejected by the database checks (line, field, value, reason); their cells are not at hand."""
        if rows and self._w is None:
            self._open()
        for line, fld, val, why in sorted(rows):
            self._w.writerow([line, *map(safe_text, [fld, val, why])])
            self.reasons[why] += 1
        self.count += len(rows)

    def close(self) -> str | None:
        """Close; returns the path if anything was written."""
        if self._f is not None:
            self._f.close()
            return str(self.path)
        return None

    def discard(self) -> None:
        """Close and delete what was written (an import that failed: its rejects would be partial)."""
        if self._f is not None:
            self._f.close()
            self._f = None
            self.path.unlink(missing_ok=True)


def _reason_kind(reason: str) -> str:
    """A reason without the numbers that make each row's different (for counting rows per reason)."""
    reason = str(reason)
    if reason.startswith("duplicate of line"):
        return "duplicate of an earlier line"
    return re.sub(r"^\d+ cells where the header has \d+$", "wrong number of cells", reason)


# What to do when every row of a file was rejected for one reason (the reason's start → advice).
_ADVICE = {
    "unknown legal entity code": "import the legal entity first (gridmkt import legal-entities FILE, "
                                 "as a system-wide administrator), then this file again",
    "no such outlet": "import the outlets first (gridmkt import outlets FILE), then this file again",
    "no such RM": "import the RMs first (gridmkt import rms FILE), then this file again",
    "no customer with this id": "import the customers first (gridmkt import customers FILE), then this file again",
    "required field is empty": "fill in the required column, or map the right column to the field (列名=field)",
}


def rejected_message(counts: dict, reasons: Counter, rejects_path: str | None, *, dry_run: bool) -> str:
    """The loud message of a run whose every row was rejected: how many, why, and what to do."""
    top = reasons.most_common(3)
    why = "; ".join(f"{n:,} × {r}" for r, n in top) + ("; ..." if len(reasons) > 3 else "")
    msg = (f"nothing was imported{' (dry run)' if dry_run else ''}: all {counts['rejected']:,} rows were"
           f" rejected ({why}).")
    if len(reasons) == 1:
        advice = next((a for start, a in _ADVICE.items() if top[0][0].startswith(start)), None)
        if advice:
            msg += f" To fix: {advice}."
    if rejects_path:
        msg += f" Each row and its reason: {rejects_path}"
    return msg


class Warnings:
    """Warnings for the summary: every kind counted, the first ones listed with their line."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.items: list[dict] = []

    def add(self, code: str, lines, message: str) -> None:
        lines = list(lines)
        if not lines:
            return
        self.counts[code] = self.counts.get(code, 0) + len(lines)
        room = MAX_LISTED_WARNINGS - len(self.items)
        for line in lines[: max(room, 0)]:
            self.items.append({"line": int(line), "warning": code, "message": message})
