"""Synthetic bank network: legal entities, outlets, service points, RMs.

No public list of a rural bank's outlets or staff exists, so the demo generates
them around the real Ningxia settlements.  Every function is seeded through the
``rng`` it is given and returns the canonical columns of docs/fields.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import geopandas as gpd
import numpy as np
import pandas as pd

from grid.projection import haversine_km
from grid.synth.common import (
    AS_OF,
    as_rng,
    county_codes,
    day_of,
    frame,
    jitter_km,
    padded,
    person_names,
    phones,
    str_series,
    truthy,
)


def _short_village(names: pd.Series) -> pd.Series:
    """Village name without its committee suffix: '张家村村民委员会' -> '张家村'."""
    return (
        names.astype(str)
        .str.replace(r"(村民委员会|村委会)$", "村", regex=True)
        .str.replace(r"(社区居民委员会|社区居委会)$", "社区", regex=True)
        .str.replace(r"(居民委员会|居委会)$", "", regex=True)
    )


def _entity_groups(counties: pd.DataFrame) -> dict[str, list[str]]:
    """Urban districts (区) of one city share a bank; every county (县/市) has its own."""
    groups: dict[str, list[str]] = {}
    for adcode, name in sorted(
        zip(counties["adcode"].astype(str), counties["name"].astype(str), strict=True)
    ):
        if name.endswith("区"):
            key = "LE" + adcode[:4] + "00"
        else:
            key = "LE" + adcode
        groups.setdefault(key, []).append(adcode)
    return groups


def legal_entities(counties: pd.DataFrame) -> pd.DataFrame:
    """Legal entities (法人机构): one per county, the urban districts of a city sharing one.

    Deterministic (no randomness): codes are ``'LE' + adcode`` for a county and
    ``'LE' + city code + '00'`` for districts that share; names end in
    农村商业银行, or 农村信用合作联社 for about a third of the counties.

    Examples
    --------
    >>> c = pd.DataFrame({"adcode": ["640104", "640105", "640121"], "name": ["兴庆区", "西夏区", "永宁县"]})
    >>> legal_entities(c)[["code", "name", "county_codes"]].values.tolist()
    [['LE640100', '兴庆区农村商业银行', '640104;640105'], ['LE640121', '永宁县农村商业银行', '640121']]
    """
    names = dict(zip(counties["adcode"].astype(str), counties["name"].astype(str), strict=True))
    codes, labels, members = [], [], []
    for code, adcodes in sorted(_entity_groups(counties).items()):
        first = names[adcodes[0]]
        lianshe = len(adcodes) == 1 and first.endswith("县") and int(adcodes[0]) % 3 == 0
        codes.append(code)
        labels.append(first + ("农村信用合作联社" if lianshe else "农村商业银行"))
        members.append(";".join(adcodes))
    return frame("legal-entities", {"code": codes, "name": labels, "county_codes": members})


def entity_by_county(entities: pd.DataFrame) -> dict[str, str]:
    """Map adcode -> legal entity code from a :func:`legal_entities` frame.

    Examples
    --------
    >>> entity_by_county(pd.DataFrame({"code": ["LE640100"], "county_codes": ["640104;640105"]}))
    {'640104': 'LE640100', '640105': 'LE640100'}
    """
    out = {}
    for code, members in zip(entities["code"], entities["county_codes"], strict=True):
        for adcode in str(members).split(";"):
            out[adcode] = code
    return out


def _seats(villages: pd.DataFrame, counties: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """County seats and township seats (with their households) from the village points."""
    v = villages.assign(
        _county=county_codes(villages), _hh=pd.to_numeric(villages.get("households", 1.0))
    )
    v["_hh"] = v["_hh"].fillna(1.0)
    v["_tname"] = v["township_name"] if "township_name" in v else _short_village(v["name"])
    has_pt = np.isfinite(pd.to_numeric(v["lon"])) & np.isfinite(pd.to_numeric(v["lat"]))
    level = (
        v["coord_level"].astype(str) if "coord_level" in v else pd.Series("village", index=v.index)
    )
    rows = []
    for _, c in counties.iterrows():
        adcode = str(c["adcode"])
        at_seat = v[(v["_county"] == adcode) & (level == "county") & has_pt]
        if len(at_seat):
            lon, lat = at_seat[["lon", "lat"]].astype(float).mode().iloc[0]
            vcode = at_seat["code"].iloc[0]
        else:
            pt = c.geometry.representative_point()
            lon, lat, vcode = pt.x, pt.y, None
        rows.append((adcode, str(c["name"]), lon, lat, vcode))
    seats = pd.DataFrame(rows, columns=["county_code", "county_name", "lon", "lat", "village_code"])
    sub = v[has_pt & (level != "county")].copy()
    sub["_rank"] = np.where(level[sub.index] == "township", 0, 1)
    sub = sub.sort_values(["township_code", "_rank", "_hh"], ascending=[True, True, False])
    towns = sub.groupby("township_code", sort=True).agg(
        county_code=("_county", "first"),
        name=("_tname", "first"),
        lon=("lon", "first"),
        lat=("lat", "first"),
        village_code=("code", "first"),
    )
    towns["households"] = v.groupby("township_code")["_hh"].sum().reindex(towns.index)
    return seats, towns.reset_index()


def outlets(villages: pd.DataFrame, counties: gpd.GeoDataFrame, n_per_county, rng) -> pd.DataFrame:
    """Outlets (网点): a 营业部 at each county seat, 支行 at township seats, extra 分理处 in town.

    Parameters
    ----------
    villages : DataFrame
        Village list in WGS84 (code, name, township_code, county_code, lon, lat,
        coord_level, households; optional township_name).
    counties : GeoDataFrame
        adcode, name, geometry in WGS84 (geometry only used when a county has no seat point).
    n_per_county : int or mapping adcode -> int
        Outlets per county (at least one).
    rng : numpy Generator or seed.

    Returns
    -------
    DataFrame
        The ``outlets`` import columns; codes ``'O' + adcode + 3 digits``.
        Seats get ~100 m jitter; 分理处 beyond the townships spread ~1.5 km over the county town.

    Examples
    --------
    >>> v = pd.DataFrame({"code": ["640121100001"], "name": ["甲村村委会"], "township_code": ["640121100"],
    ...                   "lon": [106.25], "lat": [38.28], "coord_level": ["township"], "households": [300]})
    >>> c = gpd.GeoDataFrame({"adcode": ["640121"], "name": ["永宁县"]},
    ...                      geometry=gpd.points_from_xy([106.2], [38.3]).buffer(0.2), crs=4326)
    >>> outlets(v, c, 3, np.random.default_rng(0))["kind"].tolist()
    ['营业部', '支行', '分理处']
    """
    rng = as_rng(rng)
    seats, towns = _seats(villages, counties)
    le = entity_by_county(legal_entities(counties))
    cols: dict[str, list] = {k: [] for k in ("code", "name", "county_code", "village_code", "kind")}
    lon, lat, sigma = [], [], []
    for seat in seats.itertuples(index=False):
        cc = seat.county_code
        n = n_per_county.get(cc, 0) if isinstance(n_per_county, Mapping) else int(n_per_county)
        if n <= 0:
            continue
        t = towns[towns["county_code"] == cc]
        k = min(n - 1, len(t))
        if k:
            w = t["households"].to_numpy(float) + 1.0
            pick = t.iloc[np.sort(rng.choice(len(t), k, replace=False, p=w / w.sum()))]
        else:
            pick = t.iloc[:0]
        kinds = ["营业部"] + ["支行"] * k + ["分理处"] * (n - 1 - k)
        names = [f"{seat.county_name}营业部"] + [f"{nm}支行" for nm in pick["name"]]
        names += [f"{seat.county_name}城区第{i + 1}分理处" for i in range(n - 1 - k)]
        cols["code"] += list(padded("O" + cc, np.arange(1, n + 1), 3))
        cols["name"] += names
        cols["county_code"] += [cc] * n
        cols["village_code"] += [
            seat.village_code,
            *pick["village_code"],
            *[seat.village_code] * (n - 1 - k),
        ]
        cols["kind"] += kinds
        lon += [seat.lon, *pick["lon"], *[seat.lon] * (n - 1 - k)]
        lat += [seat.lat, *pick["lat"], *[seat.lat] * (n - 1 - k)]
        sigma += [0.1] * (1 + k) + [1.5] * (n - 1 - k)
    x, y = jitter_km(rng, lon, lat, sigma)
    return frame(
        "outlets",
        {
            **{k: str_series(np.array(v, dtype=object)) for k, v in cols.items()},
            "legal_entity": str_series(
                np.array([le.get(c) for c in cols["county_code"]], dtype=object)
            ),
            "lon": np.round(x, 6),
            "lat": np.round(y, 6),
        },
    )


def service_points(
    villages: pd.DataFrame, outlets: pd.DataFrame, share: float, rng
) -> pd.DataFrame:
    """Service points (便民服务点) in about ``share`` of the villages, each tied to its nearest outlet.

    Rural villages are preferred over urban communities (4:1).  A village with
    its own point gets the service point within ~100 m of it; one that only
    carries its township or county seat gets it ~1.5 km away, as its true
    place is unknown.  The linked outlet is the nearest one of the same county
    (great-circle distance); villages of counties without outlets get none.

    Returns
    -------
    DataFrame
        The ``service-points`` import columns; codes ``'S' + adcode + 4 digits``.

    Examples
    --------
    >>> v = pd.DataFrame({"code": ["640121100001"], "name": ["光华门村委会"], "lon": [106.25], "lat": [38.28],
    ...                   "coord_level": ["village"], "is_community": ["N"]})
    >>> o = pd.DataFrame({"code": ["O640121001"], "legal_entity": ["LE640121"], "county_code": ["640121"],
    ...                   "lon": [106.2], "lat": [38.3]})
    >>> service_points(v, o, 1.0, np.random.default_rng(0))[["code", "name", "outlet_code"]].values.tolist()
    [['S6401210001', '光华门村便民服务点', 'O640121001']]
    """
    rng = as_rng(rng)
    county = county_codes(villages).to_numpy()
    vlon = pd.to_numeric(villages["lon"]).to_numpy(float)
    vlat = pd.to_numeric(villages["lat"]).to_numpy(float)
    ocounty = outlets["county_code"].astype(str).to_numpy()
    eligible = np.isfinite(vlon) & np.isfinite(vlat) & np.isin(county, ocounty)
    community = (
        truthy(villages["is_community"])
        if "is_community" in villages
        else np.zeros(len(county), bool)
    )
    idx = np.flatnonzero(eligible)
    k = int(round(share * idx.size))
    w = np.where(community[idx], 0.25, 1.0)
    chosen = np.sort(rng.choice(idx, k, replace=False, p=w / w.sum())) if k else idx[:0]
    level = villages["coord_level"].astype(str).to_numpy() if "coord_level" in villages else None
    own = np.ones(chosen.size, bool) if level is None else level[chosen] == "village"
    x, y = jitter_km(rng, vlon[chosen], vlat[chosen], np.where(own, 0.1, 1.5))
    olon = outlets["lon"].to_numpy(float)
    olat = outlets["lat"].to_numpy(float)
    link = np.empty(chosen.size, dtype=np.int64)
    for cc in np.unique(county[chosen]):
        rows = np.flatnonzero(county[chosen] == cc)
        cand = np.flatnonzero(ocounty == cc)
        d = haversine_km(x[rows, None], y[rows, None], olon[None, cand], olat[None, cand])
        link[rows] = cand[np.argmin(d, axis=1)]
    cc_sel = county[chosen]
    seq = np.zeros(chosen.size, dtype=np.int64)
    for cc in np.unique(cc_sel):
        m = cc_sel == cc
        seq[m] = np.arange(1, m.sum() + 1)
    codes = np.array(
        ["S" + c + str(s).zfill(4) for c, s in zip(cc_sel, seq, strict=True)], dtype=object
    )
    names = _short_village(villages["name"].iloc[chosen].reset_index(drop=True)) + "便民服务点"
    return frame(
        "service-points",
        {
            "code": str_series(codes),
            "name": names.astype("str"),
            "legal_entity": outlets["legal_entity"].astype(str).to_numpy()[link],
            "outlet_code": outlets["code"].astype(str).to_numpy()[link],
            "county_code": cc_sel,
            "village_code": villages["code"].astype(str).to_numpy()[chosen],
            "lon": np.round(x, 6),
            "lat": np.round(y, 6),
        },
    )


def rms(outlets: pd.DataFrame, per_outlet: tuple[int, int] = (2, 6), *, rng, as_of=AS_OF) -> pd.DataFrame:
    """Relationship-manager roster: ``per_outlet`` (inclusive range) RMs at each outlet.

    About 8 % are part-time (capacity 0.5), about 4 % inactive; hiring dates
    run from about 22.5 years to a month before ``as_of`` (by default 2003-01-01
    to a month before 2025-06-30; the same offsets before any other day).

    Returns
    -------
    DataFrame
        The ``rms`` import columns; codes (employee numbers) ``'R' + 6 digits``.

    Examples
    --------
    >>> o = pd.DataFrame({"code": ["O640121001"], "legal_entity": ["LE640121"]})
    >>> r = rms(o, (3, 3), rng=np.random.default_rng(0))
    >>> r["code"].tolist(), bool(r["phone"].str.fullmatch(r"1[3-9]\\d{9}").all())
    (['R000001', 'R000002', 'R000003'], True)
    """
    rng = as_rng(rng)
    lo, hi = per_outlet
    counts = rng.integers(lo, hi + 1, len(outlets))
    at = np.repeat(np.arange(len(outlets)), counts)
    n = at.size
    day = day_of(as_of)
    start = day - (AS_OF - np.datetime64("2003-01-01", "D"))
    span = int((AS_OF - np.timedelta64(30, "D") - np.datetime64("2003-01-01", "D")).astype(int))
    hired = start + rng.integers(0, span, n).astype("timedelta64[D]")
    return frame(
        "rms",
        {
            "code": str_series(padded("R", np.arange(1, n + 1), 6)),
            "name": str_series(person_names(rng, n)),
            "legal_entity": outlets["legal_entity"].astype(str).to_numpy()[at],
            "outlet_code": outlets["code"].astype(str).to_numpy()[at],
            "phone": str_series(phones(rng, n)),
            "capacity": np.where(rng.random(n) < 0.08, 0.5, 1.0),
            "hired_on": hired,
            "active": rng.random(n) >= 0.04,
        },
    )
