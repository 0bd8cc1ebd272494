"""One chunk of raw rows → database-ready rows plus rejects and warnings, column-wise."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from sqlalchemy import String

from geodata.importers import validate as v
from geodata.importers.base import Kind, Warnings
from geodata.importers.scoped import NOT_OWN_COUNTY, NOT_OWN_ENTITY
from geodata.readers import LINE
from grid.chinacrs import coordinate_problems, to_wgs84

CHINA_BBOX = (73.5, 18.0, 135.1, 53.6)
_COORD_REASONS = {
    "non_numeric": "coordinate is not a number",
    "zero": "(0,0) is not a location",
    "out_of_range": "coordinate out of range (lon -180..180, lat -90..90)",
    "outside_bbox": "point outside China",
}


@dataclass
class Context:
    """Lookups one import needs, read once inside its transaction."""

    kind: Kind
    crs: str
    synthetic: bool = False
    legal_entities: dict[str, int] = field(default_factory=dict)  # code -> id
    county_legal_entity: dict[str, int] = field(default_factory=dict)  # adcode -> id
    counties: dict[str, object] = field(default_factory=dict)  # adcode -> prepared geometry
    known: dict[str, set] = field(default_factory=dict)  # e.g. 'outlet' -> codes in db
    warnings: Warnings = field(default_factory=Warnings)
    # Keys seen in earlier chunks, as sorted 64-bit hashes with their first line.
    seen_hash: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    # 32-bit lines: 2 billion is beyond any file, and 10 million keys then take 120 MB, not 160.
    seen_line: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    outside_county: int = 0
    extra: dict = field(default_factory=dict)
    # Set when a user of one legal entity imports: rows of others are rejected.
    only_legal_entity: int | None = None


def canonical(raw: pd.DataFrame, mapping: dict[str, str], kind: Kind) -> pd.DataFrame:
    """Cleaned text of every field of ``kind`` ('' where the file has no such column)."""
    n = len(raw)
    cols = {}
    for f in kind.fields:
        col = mapping.get(f)
        fold = kind.fields[f] != "text"
        cols[f] = v.clean(raw[col], fold) if col is not None else v.blank(n, raw.index)
    return pd.DataFrame(cols, index=raw.index)


def _maxlen(kind: Kind, column: str) -> int | None:
    col = kind.table.c.get(column)
    return getattr(col.type, "length", None) if col is not None and isinstance(col.type, String) else None


def check_fields(f: pd.DataFrame, kind: Kind, ctx: Context, rej: v.Rejects) -> dict[str, object]:
    """Type checks of every field; returns the typed output columns (db column → values)."""
    out: dict[str, object] = {}
    for name in kind.required:
        rej.add(v.empty(f[name]), name, "required field is empty")
    for name, typ in kind.fields.items():
        s = f[name]
        if typ in ("lon", "lat"):
            continue
        if typ.startswith("code"):
            n = int(typ[4:])
            rej.add(~v.empty(s) & ~v.digits(s, n), name, f"must be {n} digits", s)
            out[name] = s.where(~pd.Series(v.empty(s), index=s.index), None)
        elif typ == "text":
            rej.add(v.has_nul(s), name, "contains a NUL character (0x00), which cannot be stored", s)
            limit = _maxlen(kind, name)
            if limit:
                rej.add(v.longer_than(s, limit), name, f"longer than {limit} characters", s)
            out[name] = s.where(~pd.Series(v.empty(s), index=s.index), None)
        elif typ in ("int", "num", "float"):
            vals, bad = v.numbers(s)
            rej.add(bad, name, "not a number", s)
            if typ in ("int", "num"):
                rej.add(vals < 0, name, "must not be negative", s)
            if typ == "int":
                rej.add(~np.isnan(vals) & (vals != np.round(vals)), name, "not a whole number", s)
                out[name] = pd.array(np.where(np.isnan(vals), 0, vals).astype("int64"), dtype="Int64")
                out[name][np.isnan(vals)] = pd.NA
            else:
                out[name] = vals
        elif typ in ("date", "datetime"):
            vals, bad = (v.dates if typ == "date" else v.datetimes)(s)
            rej.add(bad, name, "not a date (2023-05-01, 2023/5/1, 20230501)", s)
            out[name] = vals
        elif typ == "flag":
            vals, bad = v.flags(s)
            rej.add(bad, name, "not a yes/no value (是/否, Y/N, 1/0)", s)
            out[name] = vals
        elif typ.startswith("enum:"):
            allowed = typ[5:].split("|")
            low = s.str.lower()
            rej.add((~low.isin(allowed) & ~v.empty(s)).to_numpy(), name, f"must be one of {', '.join(allowed)}", s)
            out[name] = low.where(low.isin(allowed), None)
        elif typ == "legal_entity":
            # On behalf of one legal entity only its own code is known: another's reads as an unknown one.
            ids = lookup(s, ctx.legal_entities)
            why = "unknown legal entity code" if ctx.only_legal_entity is None else NOT_OWN_ENTITY
            rej.add((ids.isna() & ~v.empty(s)).to_numpy(), name, why, s)
            out["legal_entity_id"] = ids
    return out


def lookup(s: pd.Series, table: dict) -> pd.Series:
    """``s.map(table)`` (NaN where absent) with one dictionary lookup per distinct value, not per row."""
    codes, uniques = pd.factorize(s)
    found = np.array([table.get(u, np.nan) for u in uniques] + [np.nan], dtype=float)
    return pd.Series(found[codes], index=s.index)


def fill_legal_entity(out: dict, ctx: Context) -> None:
    """A missing legal entity is the county's (when the county and its entity are known)."""
    if "legal_entity_id" not in out or "county_code" not in out:
        return
    ids = pd.Series(out["legal_entity_id"], dtype="Float64")
    if ctx.county_legal_entity and ids.isna().any():
        by_county = lookup(pd.Series(out["county_code"], index=ids.index), ctx.county_legal_entity)
        ids = ids.fillna(by_county.astype("Float64"))
    out["legal_entity_id"] = ids.astype("Int64")


def restrict_legal_entity(f: pd.DataFrame, out: dict, ctx: Context, rej: v.Rejects) -> None:
    """On behalf of ``ctx.only_legal_entity``: reject rows in a county or of a legal entity not its own
    (unknown, unassigned or another's alike); rows naming no legal entity take it.

    The reasons never say whether a county or code is another entity's. What is
    stored is checked again in SQL (``scoped``).
    """
    own = ctx.only_legal_entity
    if own is None:
        return
    if "county_code" in out:
        codes = pd.Series(out["county_code"], index=f.index, dtype=object)
        given = (codes.notna() & (codes != "")).to_numpy(dtype=bool)
        county_le = lookup(codes.fillna(""), ctx.county_legal_entity)
        rej.add(given & (county_le != own).to_numpy(dtype=bool), "county_code", NOT_OWN_COUNTY, codes)
    if "legal_entity_id" in out:
        ids = pd.Series(out["legal_entity_id"], dtype="Int64")
        rej.add((ids.notna() & (ids != own)).fillna(False).to_numpy(dtype=bool), "legal_entity", NOT_OWN_ENTITY,
                f["legal_entity"])
        out["legal_entity_id"] = ids.fillna(own)


def coordinates(raw_lon: pd.Series, raw_lat: pd.Series, kind: Kind, ctx: Context,
                rej: v.Rejects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 lon/lat (NaN where absent) and where the pair was swapped (fixed); bad pairs rejected."""
    # Fast path: plain numbers inside China need no classification; the rest goes to chinacrs.
    x, bad_x = v.numbers(raw_lon)
    y, bad_y = v.numbers(raw_lat)
    lo, la, hi, ha = CHINA_BBOX
    fine = (x >= lo) & (x <= hi) & (y >= la) & (y <= ha)
    rest = np.flatnonzero(~fine)
    c = np.empty(0, dtype=object)
    if len(rest):
        c, rx, ry = coordinate_problems(raw_lon.iloc[rest].to_numpy(), raw_lat.iloc[rest].to_numpy(),
                                        bbox=CHINA_BBOX)
        x[rest], y[rest] = rx, ry

    def code_is(code: str) -> np.ndarray:
        # Only the rows outside the fast path have a code; comparing those alone is cheap.
        m = np.zeros(len(x), dtype=bool)
        m[rest] = c == code
        return m

    if kind.point == "required":
        rej.add(code_is("missing"), "lon", "coordinates required", raw_lon)
    pair = None
    # Only one of the two given is a typo, not "no point".
    half = v.empty(raw_lon) != v.empty(raw_lat)
    problems = [(half, "only one of lon/lat given")] if kind.point != "required" else []
    problems += [(code_is(code), reason) for code, reason in _COORD_REASONS.items()]
    for mask, reason in problems:
        if mask.any():
            pair = raw_lon + "," + raw_lat if pair is None else pair
            rej.add(mask, "lon", reason, pair)
    swapped = code_is("swapped")
    x = np.where(rej.mask, np.nan, x)
    y = np.where(rej.mask, np.nan, y)
    lon, lat = to_wgs84(x, y, ctx.crs)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), swapped


def county_from_point(out: dict, lon: np.ndarray, lat: np.ndarray, ctx: Context) -> np.ndarray | None:
    """Fill an empty ``county_code`` (no county or village code given) with the stored county the point
    lies in; returns where that was done (None when the kind has no county code or no county is stored)."""
    if "county_code" not in out or not ctx.counties:
        return None
    codes = pd.Series(out["county_code"])
    todo = np.flatnonzero((codes.isna() | (codes == "")).to_numpy(dtype=bool) & ~np.isnan(lon))
    found = np.full(len(lon), None, dtype=object)
    for adcode, geom in ctx.counties.items():
        if not len(todo):
            break
        inside = shapely.contains_xy(geom, lon[todo], lat[todo])
        found[todo[inside]] = adcode
        todo = todo[~inside]
    located = found != None  # noqa: E711 (elementwise)
    if located.any():
        values = np.array(codes.to_numpy(dtype=object, na_value=None), dtype=object)
        values[located] = found[located]
        out["county_code"] = pd.Series(values, index=codes.index, dtype="str")
    return located


def outside_county(county: pd.Series, lon: np.ndarray, lat: np.ndarray, ctx: Context) -> np.ndarray:
    """True where a point lies outside the stated county's polygon (only when that polygon is stored)."""
    out = np.zeros(len(lon), dtype=bool)
    if not ctx.counties:
        return out
    has = np.flatnonzero(~np.isnan(lon))
    # Rows grouped by county once (integer codes), not one text comparison of the column per county.
    codes, names = pd.factorize(county.iloc[has])
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    for k, adcode in enumerate(names):
        geom = ctx.counties.get(adcode)
        if geom is None:
            continue
        sel = has[order[bounds[k]:bounds[k + 1]]]
        out[sel] = ~shapely.contains_xy(geom, lon[sel], lat[sel])
    return out


_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)
_MAX_FAST = 64  # bytes: longer values are hashed by pandas


def text_hash(s: pd.Series) -> np.ndarray:
    """64-bit hashes of one text column, read straight from its Arrow buffers (no Python objects).

    Each value's bytes are zero-padded to whole 8-byte words and folded with a
    multiply-xorshift mix; the length goes in first so 'a' and 'a\\0' differ.
    Values longer than 64 bytes are hashed by pandas instead. A value's hash never
    depends on the other values of the column: the duplicate check compares hashes
    across chunks, and one long value in a chunk must not change how the others hash.
    """
    a = pa.array(s, type=pa.large_string(), from_pandas=True)
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    n = len(a)
    _, offsets_buf, data_buf = a.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1, offset=a.offset * 8)
    lens = np.diff(offsets)
    long = lens > _MAX_FAST
    if long.any():
        h = np.empty(n, dtype=np.uint64)
        h[~long] = text_hash(pd.Series(a.filter(pa.array(~long)), dtype=pd.ArrowDtype(pa.large_string())))
        h[long] = pd.util.hash_pandas_object(pd.Series(a.filter(pa.array(long)).to_pylist(), dtype=object),
                                             index=False).to_numpy(dtype=np.uint64)
        return h
    width = int(lens.max(initial=0) + 7) // 8 * 8
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    mat = np.zeros((n, width), dtype=np.uint8)
    if n and lens.min() == lens.max():
        # Keys of one length (the usual ID format) are a plain reshape of the buffer.
        size = int(lens[0])
        mat[:, :size] = data[offsets[0]:offsets[0] + n * size].reshape(n, size)
    else:
        padded = np.zeros(len(data) + width, dtype=np.uint8)
        padded[:len(data)] = data
        mat[:] = padded[offsets[:-1, None] + np.arange(width)]
        mat *= np.arange(width) < lens[:, None]
    words = mat.view("<u8")
    with np.errstate(over="ignore"):
        h = lens.astype(np.uint64) * _MIX
        for k in range(words.shape[1]):
            h = (h ^ words[:, k]) * _MIX2
            h ^= h >> np.uint64(31)
    h[~pc.is_valid(a).to_numpy(zero_copy_only=False)] = 0
    return h


def duplicates(f: pd.DataFrame, key: tuple[str, ...], lines: np.ndarray, ctx: Context,
               rej: v.Rejects) -> None:
    """Reject second occurrences of a key within the file: 'duplicate of line N'."""
    good = ~rej.mask
    if len(key) == 1:
        h = text_hash(f[key[0]])
    else:
        h = pd.util.hash_pandas_object(f[list(key)], index=False).to_numpy(dtype=np.uint64)
    lines = np.asarray(lines, dtype=np.int64)
    dup_line = np.zeros(len(f), dtype=np.int64)
    # Good rows in key order (first line first among equal keys): sorted
    # lookups into the history are cache friendly, and runs give the repeats.
    idx = np.flatnonzero(good)
    if len(idx) > 1 and (np.diff(lines[idx]) > 0).all():
        idx = idx[np.argsort(h[idx], kind="stable")]  # rows in line order already: a stable sort suffices
    else:
        idx = idx[np.lexsort((lines[idx], h[idx]))]
    hs = h[idx]
    if len(ctx.seen_hash) and len(idx):
        pos = np.minimum(np.searchsorted(ctx.seen_hash, hs), len(ctx.seen_hash) - 1)
        hit = ctx.seen_hash[pos] == hs
        dup_line[idx[hit]] = ctx.seen_line[pos[hit]]
        idx, hs = idx[~hit], hs[~hit]
    # Within this chunk: the first good occurrence wins.
    starts = np.ones(len(hs), dtype=bool)
    starts[1:] = hs[1:] != hs[:-1]
    run = np.cumsum(starts) - 1
    first_line = lines[idx[starts]]
    dup_line[idx[~starts]] = first_line[run[~starts]]
    is_dup = dup_line > 0
    if is_dup.any():
        reason = np.full(len(f), None, dtype=object)
        reason[is_dup] = [f"duplicate of line {n}" for n in dup_line[is_dup]]
        rej.add(is_dup, key[0], reason, f[key[0]])
    new_h, new_line = hs[starts], first_line
    # Insert into the sorted history in O(n) instead of re-sorting it every chunk.
    pos = np.searchsorted(ctx.seen_hash, new_h)
    ctx.seen_hash = np.insert(ctx.seen_hash, pos, new_h)
    ctx.seen_line = np.insert(ctx.seen_line, pos, new_line.astype(np.int32))


def process_chunk(raw: pd.DataFrame, mapping: dict[str, str], ctx: Context
                  ) -> tuple[pd.DataFrame, pd.DataFrame, v.Rejects]:
    """Validate one chunk: (good rows as db columns plus lon/lat, rejected raw rows, their reasons)."""
    kind = ctx.kind
    f = canonical(raw, mapping, kind)
    lines = raw[LINE].to_numpy()
    rej = v.Rejects(len(f))
    out = check_fields(f, kind, ctx, rej)
    if kind.check is not None:
        ctx.extra["raw"] = raw
        kind.check(f, out, ctx, rej)
    located = swapped = None
    if kind.point in ("optional", "required"):
        lon, lat, swapped = coordinates(f["lon"], f["lat"], kind, ctx, rej)
        # Before the legal entity is filled in: that follows the county.
        located = county_from_point(out, lon, lat, ctx)
    fill_legal_entity(out, ctx)
    restrict_legal_entity(f, out, ctx, rej)
    frame = pd.DataFrame(out, index=f.index)
    outside = None
    for col, value in kind.fill.items():
        frame[col] = frame[col].fillna(value) if col in frame else value
    if kind.point in ("optional", "required"):
        frame["lon"], frame["lat"] = lon, lat
        crs = pc.if_else(pa.array(np.isnan(lon)), pa.scalar(None, pa.large_string()), ctx.crs)
        frame["source_crs"] = pd.Series(crs, index=frame.index, dtype="str")
        if "county_code" in frame:
            outside = outside_county(frame["county_code"], lon, lat, ctx) & ~rej.mask
            if "outside_county" in kind.table.c:
                frame["outside_county"] = outside
        if "coord_level" in kind.table.c:
            # A row without a point says so; a point of unstated level is the village's own.
            level = frame["coord_level"] if "coord_level" in frame else pd.Series(None, index=frame.index)
            level = level.where(level != "none", None).fillna("village")
            frame["coord_level"] = np.where(np.isnan(lon), "none", level)
    if kind.point == "geometry":
        frame["source_crs"] = ctx.crs
    duplicates(f, kind.key, lines, ctx, rej)
    if swapped is not None:
        swapped = swapped & ~rej.mask  # once duplicates are known: rejected rows get no warning
        if swapped.any():
            ctx.warnings.add("swapped_lon_lat", lines[swapped], "longitude and latitude were swapped; fixed")
    if located is not None:
        located = located & ~rej.mask
        if located.any():
            ctx.warnings.add("county_from_point", lines[located],
                             "no county or village code: the county is the one the point lies in")
    if outside is not None:
        # Counted once duplicates are known: a rejected row is not a point outside its county.
        outside = outside & ~rej.mask
        ctx.outside_county += int(outside.sum())
        if outside.any():
            ctx.warnings.add("outside_county", lines[outside], "point lies outside its stated county")
    for col, value in kind.defaults.items():
        frame[col] = value
    if "synthetic" in kind.table.c:
        frame["synthetic"] = ctx.synthetic
    frame[LINE] = lines  # for rejects found later, in SQL (scoped imports)
    bad = rej.mask
    return frame[~bad].reset_index(drop=True), raw[bad], rej
