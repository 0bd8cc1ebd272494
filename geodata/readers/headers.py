"""Headers of planners' tables: normalising names, the alias table (``geodata/aliases.toml``), finding the
header row under titles, and deciding which column holds which canonical field."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from geodata.errors import BadInput

LINE = "_line"
HEADER_SCAN_ROWS = 10
_BRACKET_TAIL = re.compile(r"\([^()]*\)$")


def normalise_header(text: object) -> str:
    """Header as matched against aliases: NFKC (full-width → half-width), lower case, no whitespace."""
    s = unicodedata.normalize("NFKC", str(text if text is not None else ""))
    return re.sub(r"\s+", "", s).lower()


@lru_cache(maxsize=1)
def _alias_file() -> dict:
    return tomllib.loads(Path(__file__).parents[1].joinpath("aliases.toml").read_text("utf-8"))


@lru_cache(maxsize=32)
def aliases(kind: str, fields: tuple[str, ...]) -> dict[str, str]:
    """Normalised header → canonical field for ``kind``, restricted to ``fields``."""
    table = _alias_file()
    out: dict[str, str] = {}
    # Kind-specific aliases are entered first so they win over [common] ones.
    for section in (table.get("kinds", {}).get(kind, {}), table.get("common", {})):
        for fld, names in section.items():
            if fld not in fields:
                continue
            for name in [fld, *names]:
                out.setdefault(normalise_header(name), fld)
    return out


def match_field(header: str, alias_map: Mapping[str, str]) -> str | None:
    """The field a header names, trying once more without a trailing bracketed note."""
    h = normalise_header(header)
    if h in alias_map:
        return alias_map[h]
    stripped = _BRACKET_TAIL.sub("", h)
    return alias_map.get(stripped) if stripped and stripped != h else None



def _unique(names: list[str]) -> list[str]:
    """Column names made unique (blank ones named by position) so no cell is lost."""
    seen: dict[str, int] = {}
    out = []
    for i, n in enumerate(names):
        n = (n or "").strip() or f"column_{i + 1}"
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        else:
            seen[n] = 1
        out.append(n)
    return out


def find_header(rows: list[list[str]], alias_map: Mapping[str, str]) -> int:
    """Index of the row (among the first few) whose cells name the most known fields."""
    best, best_score = 0, 0
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        score = len({match_field(c, alias_map) for c in row if c} - {None})
        if score > best_score:
            best, best_score = i, score
    return best


def _map_columns(
    columns: list[str], alias_map: Mapping[str, str], fields: tuple[str, ...],
    explicit: Mapping[str, str], file_name: str,
) -> dict[str, str]:
    """column -> field; explicit entries first, then aliases, each field taken once."""
    out: dict[str, str] = {}
    by_norm = {normalise_header(c): c for c in columns}
    for src, fld in explicit.items():
        if fld not in fields:
            raise BadInput(f"mapping {src}={fld}: unknown field {fld!r}; fields: {', '.join(fields)}")
        col = src if src in columns else by_norm.get(normalise_header(src))
        if col is None:
            raise BadInput(f"mapping {src}={fld}: {file_name} has no column {src!r}; columns: {', '.join(columns)}")
        out[col] = fld
    taken = set(out.values())
    for c in columns:
        if c in out:
            continue
        fld = match_field(c, alias_map)
        if fld and fld not in taken:
            out[c] = fld
            taken.add(fld)
    return out
