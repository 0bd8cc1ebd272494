"""Titles of cells by place: a village or township name first, then a short id (not a raw H3 index twice)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_H3 = re.compile(r"^8[0-9a-f]{14}$")


def short_id(cell_id: str) -> str:
    """A cell id short enough to read out: an H3 index without its constant head and 'f' padding.

    >>> short_id("88319a2c8bfffff"), short_id("640121100001")
    ('#a2c8b', '640121100001')
    """
    s = str(cell_id)
    if _H3.match(s):
        return "#" + s.rstrip("f")[-5:]
    return s


def _text(v) -> str | None:
    return None if v is None or v != v or str(v).strip() == "" else str(v)


def cell_title(row: Mapping) -> tuple[str, str]:
    """(title, subtitle) of a cell from ``cell_id``, ``label``, ``place``, ``place_inside``, ``township``.

    A village grid's label already names its villages; an H3 cell takes the
    village whose own point lies in it (or 附近 "near" the nearest one), else its
    township; the subtitle gives the township and the short id.

    >>> cell_title({"cell_id": "88319a2c8bfffff", "label": "88319a2c8bfffff", "place": "红星村",
    ...             "place_inside": False, "township": "望洪镇"})
    ('红星村附近', '望洪镇 · #a2c8b')
    """
    cid = str(row["cell_id"])
    label, place, town = _text(row.get("label")), _text(row.get("place")), _text(row.get("township"))
    if label and label != cid:
        title = label
    elif place:
        title = place if row.get("place_inside") else f"{place}附近"
    elif town:
        title = f"{town}境内"
    else:
        title = short_id(cid)
    sub = " · ".join(x for x in (town if town and town not in title else None, short_id(cid)) if x)
    return title, sub
