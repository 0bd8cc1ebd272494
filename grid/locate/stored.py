"""Point lookups stored with a grid version: bytes tied to the very cells they were built on.

Shared by :class:`grid.locate.H3Locator` and :class:`grid.locate.village_locator.VillageLocator`
(``to_bytes`` / ``from_bytes``): numpy arrays in an ``.npz`` archive plus a JSON
header holding the format number, a fingerprint of the cells and scalars.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import shapely

from grid.errors import InvalidInput


def cells_fingerprint(geoms, *arrays: np.ndarray) -> str:
    """SHA-256 of the cells' WKB in row order (and of any extra per-cell arrays, e.g. H3 indexes)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    for wkb in shapely.to_wkb(np.asarray(geoms, dtype=object), hex=False):
        h.update(len(wkb).to_bytes(8, "little") if wkb is not None else b"\xff" * 8)
        h.update(wkb or b"")
    return h.hexdigest()


def pack(meta: dict, arrays: dict[str, np.ndarray], *, format: int, fingerprint: str) -> bytes:
    """``meta`` (JSON-able) and ``arrays`` as one compressed blob, stamped with format and fingerprint."""
    head = json.dumps({**meta, "format": format, "fingerprint": fingerprint}).encode()
    buf = io.BytesIO()
    np.savez_compressed(buf, meta=np.frombuffer(head, dtype=np.uint8), **arrays)
    return buf.getvalue()


def unpack(data: bytes, *, what: str, format: int, fingerprint: str):
    """(meta, arrays) of :func:`pack` output; InvalidInput unless it is of ``format`` and ``fingerprint``."""
    try:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        meta = json.loads(bytes(arrays["meta"]).decode())
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInput(f"not a stored {what} lookup: {exc}") from None
    if meta.get("format") != format:
        raise InvalidInput(f"stored {what} lookup has format {meta.get('format')}, expected {format}")
    if meta.get("fingerprint") != fingerprint:
        raise InvalidInput(f"stored {what} lookup was built on other cells")
    return meta, arrays
