"""Synthetic household and population figures for the real village list."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from grid.synth.common import as_rng, county_codes, frame, truthy

PERSONS_PER_HOUSEHOLD = 2.65  # Ningxia, 2020 census


def village_households(
    villages: pd.DataFrame, county_population: Mapping[str, float], rng
) -> pd.DataFrame:
    """Fill households and population of villages that have none from county census totals.

    Each county's population is split over its villages with lognormal shares
    (communities about 2.5x larger), integer-exact (largest remainder), and
    households follow at 2.65 persons each.  Villages of a county missing from
    ``county_population`` get households from a lognormal around 300.

    Parameters
    ----------
    villages : DataFrame
        code, name, township_code, county_code, lon, lat, coord_level,
        is_community; optional households, population, township_name.
    county_population : mapping of adcode -> persons (2020 census).
    rng : numpy Generator or seed.

    Returns
    -------
    DataFrame
        The ``villages`` import columns of docs/fields.md.

    Examples
    --------
    >>> v = pd.DataFrame({"code": ["640121100001", "640121100002"], "name": ["甲村", "乙社区"],
    ...                   "lon": [106.2, 106.3], "lat": [38.2, 38.3], "coord_level": "village",
    ...                   "is_community": ["N", "Y"]})
    >>> out = village_households(v, {"640121": 1000}, np.random.default_rng(0))
    >>> int(out["population"].sum())
    1000
    """
    rng = as_rng(rng)
    n = len(villages)
    county = county_codes(villages).to_numpy()
    community = (
        truthy(villages["is_community"]) if "is_community" in villages else np.zeros(n, bool)
    )
    pop_in = pd.to_numeric(villages.get("population", pd.Series(np.nan, index=villages.index)))
    hh_in = pd.to_numeric(villages.get("households", pd.Series(np.nan, index=villages.index)))
    pop = pop_in.to_numpy(dtype=float, na_value=np.nan)
    hh = hh_in.to_numpy(dtype=float, na_value=np.nan)
    # Fill population from households (and back) where only one is known.
    pop = np.where(np.isnan(pop) & ~np.isnan(hh), np.round(hh * PERSONS_PER_HOUSEHOLD), pop)
    hh = np.where(np.isnan(hh) & ~np.isnan(pop), np.round(pop / PERSONS_PER_HOUSEHOLD), hh)
    share = rng.lognormal(0.0, 0.6, n) * np.where(community, 2.5, 1.0)
    todo = np.isnan(pop)
    for cc in np.unique(county[todo]):
        rows = np.flatnonzero(todo & (county == cc))
        total = county_population.get(cc)
        if total is None:
            hh[rows] = np.maximum(20, np.round(rng.lognormal(np.log(300), 0.5, rows.size)))
            pop[rows] = np.round(hh[rows] * PERSONS_PER_HOUSEHOLD)
            continue
        known = np.nansum(pop[(county == cc) & ~todo])
        remaining = max(float(total) - known, 0.0)
        exact = remaining * share[rows] / share[rows].sum()
        alloc = np.floor(exact)
        short = int(round(remaining - alloc.sum()))
        alloc[np.argsort(alloc - exact)[:short]] += 1  # largest remainders first
        pop[rows] = alloc
        hh[rows] = np.maximum(1, np.round(alloc / PERSONS_PER_HOUSEHOLD))
    code = villages["code"].astype(str)
    tcode = villages["township_code"] if "township_code" in villages else code.str[:9]
    return frame(
        "villages",
        {
            "code": code.to_numpy(),
            "name": villages["name"].to_numpy(),
            "township_code": pd.Series(tcode).astype(str).to_numpy(),
            "township_name": villages.get(
                "township_name", pd.Series(None, index=villages.index)
            ).to_numpy(),
            "county_code": county,
            "households": pd.array(hh, dtype="Int64"),
            "population": pd.array(pop, dtype="Int64"),
            "lon": pd.to_numeric(villages["lon"]).to_numpy(dtype=float),
            "lat": pd.to_numeric(villages["lat"]).to_numpy(dtype=float),
            "coord_level": villages["coord_level"].to_numpy()
            if "coord_level" in villages
            else np.where(np.isfinite(villages["lon"]), "village", "none"),
            "is_community": np.where(community, "Y", "N"),
        },
    )
