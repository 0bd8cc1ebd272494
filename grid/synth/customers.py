"""Synthetic customers clustered around real settlements, generated in bounded chunks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import shapely

from grid.errors import InvalidInput
from grid.synth.common import (
    AS_OF,
    as_rng,
    company_names,
    county_codes,
    day_of,
    frame,
    id_numbers,
    jitter_km,
    padded,
    person_names,
    phones,
    str_series,
    truthy,
)

SEGMENTS = np.array(["个人", "个体工商户", "小微企业", "农户"])
# Segment mix (same order as SEGMENTS) for rural villages and for urban communities.
_MIX_RURAL = np.array([0.35, 0.15, 0.05, 0.45])
_MIX_URBAN = np.array([0.70, 0.18, 0.07, 0.05])
# Per segment: deposit median (CNY) and log-sigma; loan probability, median and log-sigma.
_DEPOSIT = np.array([[8_000, 1.5], [30_000, 1.5], [150_000, 1.6], [5_000, 1.4]])
_LOAN = np.array(
    [[0.08, 80_000, 1.0], [0.25, 150_000, 0.9], [0.40, 800_000, 1.0], [0.15, 50_000, 0.8]]
)

NO_POINT_SHARE = 0.07  # customers with a village code but no coordinates
NO_PLACE_SHARE = 0.01  # customers with neither
# Median distance (km) of customers from the village point: own point vs a township/county seat.
OWN_SPREAD_KM = (0.5, 2.0)
SEAT_SPREAD_KM = (3.0, 5.0)
# A 2-D gaussian's median radius is sigma * sqrt(2 ln 2).
_MEDIAN_PER_SIGMA = float(np.sqrt(2.0 * np.log(2.0)))


_SEGMENT_POOL = str_series(SEGMENTS)


def _take(pool: pd.Series, idx: np.ndarray) -> pd.Series:
    """Rows ``idx`` of a string pool, with a fresh 0..n-1 index."""
    return pool.take(idx).reset_index(drop=True)


def customers(
    villages: pd.DataFrame,
    n: int,
    rng,
    chunk_size: int = 1_000_000,
    *,
    entity_of: Mapping[str, str] | None = None,
    id_offset: int = 0,
    within: Mapping[str, object] | None = None,
    as_of=AS_OF,
) -> Iterator[pd.DataFrame]:
    """Yield ``n`` synthetic customers in DataFrames of at most ``chunk_size`` rows.

    Customers are drawn per village in proportion to its households and
    scattered around its point: a village's own point with a median distance of
    0.5–2 km, a township or county seat (the true place is unknown) 3–5 km.
    About 7 % have a village code but no coordinates, about 1 % neither (they
    keep their county).  Deposits are lognormal by segment (heavy tail), about
    15 % hold a loan; ID numbers carry the county as region prefix and a valid
    ISO 7064 check character.

    Parameters
    ----------
    villages : DataFrame
        code, county_code, lon, lat, coord_level, households, is_community (as from
        :func:`grid.synth.network.village_households`).
    n : int
        Number of customers.
    rng : numpy Generator or seed
        Consumed once, at call time, so the chunks do not depend on later use of ``rng``.
    chunk_size : int
        Rows per yielded frame; memory stays bounded by it.
    entity_of : mapping adcode -> legal entity code, optional
        Defaults to ``'LE' + adcode``; pass :func:`grid.synth.network.entity_by_county`
        of the demo's entities to match its outlets.
    id_offset : int
        Customer numbers start after it, so that a second call (other counties)
        can keep its ids apart from the first's.
    within : mapping adcode -> polygon, optional
        County boundaries in the villages' coordinate system. People of a
        village live in its county: a point scattered across the boundary is
        drawn again (up to 8 times), then put on the village point. Without
        it, customers near a boundary scatter across it (about 12 % of the
        province's, since most villages only have a seat point).
    as_of : date-like, optional
        The reference day: birth and account-opening dates are seeded offsets
        before it (accounts opened up to that day, since a date 25.5 years
        earlier: 2000-01-01 for the default 2025-06-30). The demo gives the day
        it runs, so that its customers' dates stay as recent as its visits.

    Yields
    ------
    DataFrame
        The ``customers`` import columns; ``customer_id`` is ``'C'`` + 10 digits,
        sequential from ``id_offset + 1``.

    Examples
    --------
    >>> v = pd.DataFrame({"code": ["640121100001"], "lon": [106.25], "lat": [38.28],
    ...                   "coord_level": ["village"], "households": [300], "is_community": ["N"]})
    >>> chunks = list(customers(v, 5, np.random.default_rng(0), chunk_size=2))
    >>> [len(c) for c in chunks], chunks[0]["customer_id"].tolist()
    ([2, 2, 1], ['C0000000001', 'C0000000002'])
    """
    if chunk_size < 1:
        raise InvalidInput("chunk_size must be positive")
    if id_offset < 0 or id_offset + n >= 10**10:
        raise InvalidInput("customer numbers must fit in 10 digits")
    seed = as_rng(rng).integers(0, 2**63)
    prep = _prepare(villages, entity_of)
    prep["within"] = _prepared_polygons(within)
    prep["as_of"] = day_of(as_of)
    return _chunks(prep, int(n), int(chunk_size), np.random.default_rng(seed), int(id_offset))


def _prepare(villages: pd.DataFrame, entity_of: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """Per-village arrays used by every chunk."""
    nv = len(villages)
    if nv == 0:
        raise InvalidInput("no villages to place customers in")
    county = county_codes(villages).to_numpy()
    hh = pd.to_numeric(villages.get("households", pd.Series(np.nan, index=villages.index)))
    hh = hh.to_numpy(dtype=float, na_value=np.nan)
    fill = np.nanmedian(hh) if np.isfinite(hh).any() else 1.0
    w = np.where(np.isfinite(hh) & (hh > 0), hh, fill)
    level = (
        villages["coord_level"].astype(str).to_numpy()
        if "coord_level" in villages
        else np.full(nv, "village")
    )
    community = (
        truthy(villages["is_community"]) if "is_community" in villages else np.zeros(nv, bool)
    )
    entity = np.array([(entity_of or {}).get(c, "LE" + c) for c in county], dtype=object)
    # Per-village string pools (the last village_code entry is the missing one) so that
    # each chunk only takes from them instead of building millions of strings.
    return {
        "p": w / w.sum(),
        "code": str_series(np.append(villages["code"].astype(str).to_numpy(), None)),
        "county": str_series(county),
        "county_int": county.astype(np.int64),
        "entity": str_series(entity),
        "lon": pd.to_numeric(villages["lon"]).to_numpy(dtype=float),
        "lat": pd.to_numeric(villages["lat"]).to_numpy(dtype=float),
        "own": level == "village",
        "community": community,
    }


def _prepared_polygons(within: Mapping[str, object] | None) -> dict[int, object]:
    """County code (as int) -> prepared polygon, for the containment tests of every chunk."""
    out = {}
    for code, geom in (within or {}).items():
        shapely.prepare(geom)
        out[int(code)] = geom
    return out


def _scatter(prep, sigma, vi: np.ndarray, rng, rounds: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Points around the villages ``vi``; with county polygons, inside the village's county."""
    x0, y0 = prep["lon"][vi], prep["lat"][vi]
    # Rounded as written to the file (1e-6 degrees), so the containment test is of the final point.
    lon, lat = (np.round(a, 6) for a in jitter_km(rng, x0, y0, sigma[vi]))
    # Redraws come from their own stream: with or without boundaries, everything else is the same.
    rng = np.random.default_rng(rng.integers(0, 2**63))
    if not prep["within"]:
        return lon, lat
    county = prep["county_int"][vi]
    todo = np.arange(vi.size)
    for k in range(rounds + 1):
        outside = np.zeros(todo.size, dtype=bool)
        for code in np.unique(county[todo]):
            geom = prep["within"].get(int(code))
            if geom is None:
                continue
            sel = county[todo] == code
            outside[sel] = ~shapely.contains_xy(geom, lon[todo[sel]], lat[todo[sel]])
        todo = todo[outside]
        if not todo.size:
            break
        if k == rounds:  # still across the boundary: the village's own (or seat) point
            lon[todo], lat[todo] = x0[todo], y0[todo]
            break
        lon[todo], lat[todo] = (np.round(a, 6) for a in jitter_km(rng, x0[todo], y0[todo], sigma[vi[todo]]))
    return lon, lat


def _chunks(prep: dict[str, np.ndarray], n: int, chunk_size: int, rng, id_offset: int = 0) -> Iterator[pd.DataFrame]:
    """Draw the per-village spread once, then generate chunk after chunk."""
    nv = prep["p"].size
    lo, hi = np.where(prep["own"][:, None], OWN_SPREAD_KM, SEAT_SPREAD_KM).T
    sigma = rng.uniform(lo, hi) / _MEDIAN_PER_SIGMA
    for start in range(0, n, chunk_size):
        m = min(chunk_size, n - start)
        vi = rng.choice(nv, m, p=prep["p"])
        yield _one_chunk(prep, sigma, vi, id_offset + start, rng)


def _one_chunk(prep, sigma, vi: np.ndarray, start: int, rng) -> pd.DataFrame:
    """One frame of customers living in villages ``vi``."""
    m = vi.size
    # Segment by inverse CDF over the village's mix.
    mix = np.where(prep["community"][vi, None], _MIX_URBAN, _MIX_RURAL)
    seg = (rng.random(m)[:, None] > np.cumsum(mix, axis=1)).sum(axis=1)
    seg = np.minimum(seg, SEGMENTS.size - 1)

    lon, lat = _scatter(prep, sigma, vi, rng)
    u = rng.random(m)
    no_place = u < NO_PLACE_SHARE
    no_point = u < NO_PLACE_SHARE + NO_POINT_SHARE
    lon = np.where(no_point, np.nan, np.round(lon, 6))
    lat = np.where(no_point, np.nan, np.round(lat, 6))
    village = _take(prep["code"], np.where(no_place, prep["p"].size, vi))

    dep = rng.lognormal(np.log(_DEPOSIT[seg, 0]), _DEPOSIT[seg, 1])
    has_loan = rng.random(m) < _LOAN[seg, 0]
    loan = np.where(
        has_loan, np.round(rng.lognormal(np.log(_LOAN[seg, 1]), _LOAN[seg, 2]), -2), 0.0
    )

    # Adults aged 18-85, most between 30 and 60.
    age_days = ((18 + 67 * rng.beta(2.0, 3.0, m)) * 365.25).astype(np.int64)
    as_of = prep["as_of"]
    birth = as_of - age_days.astype("timedelta64[D]")
    # Accounts opened in the 25.5 years before as_of (since 2000 for the default day), more of them
    # recently, never before the 18th birthday.
    span = int((AS_OF - np.datetime64("2000-01-01", "D")).astype(int))
    ago = np.minimum(rng.exponential(span / 3.0, m), span).astype(np.int64)
    opened = np.maximum(as_of - ago.astype("timedelta64[D]"), birth + np.timedelta64(6575, "D"))
    opened = np.minimum(opened, as_of)

    names = person_names(rng, m)
    firms = seg == 2
    names[firms] = company_names(rng, int(firms.sum())) if firms.any() else names[firms]
    phone = str_series(phones(rng, m))
    phone = phone.mask(rng.random(m) < 0.02)  # some records lack a phone

    return frame(
        "customers",
        {
            "customer_id": str_series(padded("C", np.arange(start + 1, start + m + 1), 10)),
            "name": str_series(names),
            # For 小微企业 this is the legal representative's ID, as rural banks record it.
            "id_number": str_series(id_numbers(rng, prep["county_int"][vi], birth)),
            "phone": phone,
            "legal_entity": _take(prep["entity"], vi),
            "county_code": _take(prep["county"], vi),
            "village_code": village,
            "lon": lon,
            "lat": lat,
            "deposit_balance": np.round(dep, 2),
            "loan_balance": loan,
            "segment": _take(_SEGMENT_POOL, seg),
            "opened_on": opened,
        },
    )
