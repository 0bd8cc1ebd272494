"""Tests for the seeded synthetic data generator (grid.synth) on the real Ningxia village list."""

from __future__ import annotations

import io
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geodata import DEMO_DATA
from grid.chinacrs import to_wgs84
from grid.projection import haversine_km
from grid.synth import (
    AS_OF,
    FIELDS,
    LEAD_TYPES,
    SEGMENTS,
    TAGS,
    customers,
    entity_by_county,
    id_check_char,
    leads,
    legal_entities,
    outlets,
    rms,
    service_points,
    tags,
    village_households,
    visits,
)
from grid.synth.common import id_numbers

DATA = DEMO_DATA
DOCS_FIELDS = Path(__file__).resolve().parents[3] / "docs" / "fields.md"
# Three counties of different kinds: urban district, rural county with a bank of its own, mountain county.
COUNTIES = ("640104", "640121", "640522")


@pytest.fixture(scope="module")
def villages_raw() -> pd.DataFrame:
    raw = pd.read_csv(DATA / "ningxia_villages.csv", dtype=str)
    return pd.DataFrame(
        {
            "code": raw["code"],
            "name": raw["name"],
            "township_code": raw["street_code"],
            "township_name": raw["street_name"],
            "county_code": raw["county_code"],
            "lon": raw["lon_wgs84"].astype(float),
            "lat": raw["lat_wgs84"].astype(float),
            "coord_level": raw["coord_level"],
            "is_community": raw["is_community"],
        }
    )


@pytest.fixture(scope="module")
def population() -> dict[str, float]:
    pop = pd.read_csv(DATA / "ningxia_county_population_2020.csv", dtype={"code": str})
    pop = pop[pop["level"] == "county"]
    return dict(zip(pop["code"], pop["pop_2020_census"].astype(float), strict=True))


@pytest.fixture(scope="module")
def counties() -> gpd.GeoDataFrame:
    # GCJ-02 in the file; the generator only uses geometry when a county has no seat point.
    return gpd.read_file(DATA / "ningxia_counties_gcj02.geojson")


@pytest.fixture(scope="module")
def world(villages_raw, population, counties):
    """A small seeded demo world over three counties."""
    return _build(villages_raw, population, counties, seed=7)


def _build(villages_raw, population, counties, seed, n_customers=30_000):
    rng = np.random.default_rng(seed)
    v = village_households(
        villages_raw[villages_raw["county_code"].isin(COUNTIES)], population, rng
    )
    c = counties[counties["adcode"].isin(COUNTIES)]
    ents = legal_entities(c)
    outs = outlets(v, c, 12, rng)
    points = service_points(v, outs, 0.8, rng)
    staff = rms(outs, rng=rng)
    cust = pd.concat(
        customers(v, n_customers, rng, chunk_size=8_000, entity_of=entity_by_county(ents)),
        ignore_index=True,
    )
    vis = visits(cust, staff, rng=rng, outlets=outs)
    return {
        "villages": v,
        "legal-entities": ents,
        "outlets": outs,
        "service-points": points,
        "rms": staff,
        "customers": cust,
        "visits": vis,
        "leads": leads(cust, rng),
        "tags": tags(cust, rng),
    }


def _doc_fields() -> dict[str, list[str]]:
    """Kind -> field names, parsed from the table in docs/fields.md."""
    out = {}
    for line in DOCS_FIELDS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("kind", "") or set(cells[0]) <= set("-"):
            continue
        names = []
        for part in cells[2].split(","):
            part = re.sub(r"\(.*?\)", "", part.replace("*", "")).strip()
            names.append(part.split()[0])
        out[cells[0]] = names
    return out


def _valid_id(number: str) -> bool:
    """Independent GB 11643 check: weights 2^(17-i) mod 11, check = (12 - S mod 11) mod 11."""
    s = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(number[:17]))
    check = (12 - s % 11) % 11
    return number[17] == ("X" if check == 10 else str(check))


def test_fields_follow_docs():
    docs = _doc_fields()
    for kind, cols in FIELDS.items():
        assert list(cols) == docs[kind], kind


def test_every_output_has_exactly_the_canonical_columns(world):
    for kind, df in world.items():
        assert list(df.columns) == list(FIELDS[kind]), kind
        assert len(df) > 0, kind


def test_csv_round_trip_keeps_the_header(world):
    buf = io.StringIO()
    world["customers"].head(50).to_csv(buf, index=False)
    buf.seek(0)
    back = pd.read_csv(buf, dtype=str)
    assert list(back.columns) == list(FIELDS["customers"])
    assert back["customer_id"].tolist() == world["customers"]["customer_id"].head(50).tolist()
    assert back["opened_on"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


def test_same_seed_same_frames_and_different_seed_differs(
    villages_raw, population, counties, world
):
    again = _build(villages_raw, population, counties, seed=7)
    other = _build(villages_raw, population, counties, seed=8)
    for kind in world:
        pd.testing.assert_frame_equal(world[kind], again[kind], obj=kind)
    for kind in ("outlets", "rms", "customers", "visits"):
        assert not world[kind].equals(other[kind]), kind


def test_village_households_hit_county_census_exactly(world, population):
    v = world["villages"]
    assert v["population"].notna().all() and v["households"].notna().all()
    got = v.groupby("county_code")["population"].sum()
    for cc in COUNTIES:
        assert int(got[cc]) == int(population[cc])
    ratio = v["population"].sum() / v["households"].sum()
    assert ratio == pytest.approx(2.65, rel=0.02)
    comm = v["is_community"] == "Y"
    assert v.loc[comm, "population"].median() > v.loc[~comm, "population"].median()
    # Skewed, not uniform.
    assert v["population"].std() > 0.3 * v["population"].mean()


def test_village_households_keeps_known_values_and_falls_back_without_census():
    v = pd.DataFrame(
        {
            "code": ["640121100001", "640121100002", "999999100001"],
            "name": ["甲村委会", "乙村委会", "丙村委会"],
            "lon": [106.2, 106.3, 100.0],
            "lat": [38.2, 38.3, 30.0],
            "households": [100, None, None],
            "is_community": ["N", "N", "N"],
        }
    )
    out = village_households(v, {"640121": 1000}, np.random.default_rng(0))
    assert out["households"].tolist()[0] == 100
    assert out["population"].tolist()[:2] == [265, 735]  # the rest of the census goes to the other
    assert out["households"].tolist()[2] >= 20  # no census: a plausible village size
    assert out["township_code"].tolist() == ["640121100", "640121100", "999999100"]


def test_legal_entities_share_for_urban_districts_only():
    c = pd.DataFrame(
        {
            "adcode": ["640106", "640104", "640121", "640181"],
            "name": ["金凤区", "兴庆区", "永宁县", "灵武市"],
        }
    )
    le = legal_entities(c)
    assert le["code"].tolist() == ["LE640100", "LE640121", "LE640181"]
    assert le["county_codes"].tolist() == ["640104;640106", "640121", "640181"]
    assert le["name"].str.endswith(("农村商业银行", "农村信用合作联社")).all()
    assert entity_by_county(le)["640106"] == "LE640100"


def test_outlets_per_county_at_real_seats(world):
    o, v = world["outlets"], world["villages"]
    assert o["code"].is_unique
    assert o["code"].str.fullmatch(r"O\d{9}").all()
    assert (o.groupby("county_code").size() == 12).all()
    assert (o[o["kind"] == "营业部"].groupby("county_code").size() == 1).all()
    assert set(o["kind"]) <= {"营业部", "支行", "分理处"}
    ents = entity_by_county(world["legal-entities"])
    assert (o["legal_entity"] == o["county_code"].map(ents)).all()
    # 支行 sit at a township seat: within ~0.5 km of their village's point (jitter ~100 m).
    branch = o[o["kind"] == "支行"].merge(
        v, left_on="village_code", right_on="code", suffixes=("", "_v")
    )
    d = haversine_km(branch["lon"], branch["lat"], branch["lon_v"], branch["lat_v"])
    assert len(branch) > 0 and np.median(d) < 0.3 and d.max() < 1.0


def test_service_points_link_to_nearest_outlet_of_their_county(world):
    sp, o, v = world["service-points"], world["outlets"], world["villages"]
    assert len(sp) == round(0.8 * len(v))
    assert sp["code"].is_unique and sp["village_code"].is_unique
    linked = sp.merge(o, left_on="outlet_code", right_on="code", suffixes=("", "_o"))
    assert (linked["county_code"] == linked["county_code_o"]).all()
    for row in sp.head(200).itertuples():
        cand = o[o["county_code"] == row.county_code]
        d = haversine_km(row.lon, row.lat, cand["lon"], cand["lat"])
        assert cand["code"].to_numpy()[np.argmin(d)] == row.outlet_code
    # Villages are preferred over urban communities.
    comm = sp["village_code"].map(v.set_index("code")["is_community"]) == "Y"
    assert comm.mean() < (v["is_community"] == "Y").mean()


def test_rms_roster(world):
    r, o = world["rms"], world["outlets"]
    per = r.groupby("outlet_code").size().reindex(o["code"], fill_value=0)
    assert per.between(2, 6).all()
    assert r["code"].is_unique
    assert r["phone"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert r["name"].str.fullmatch(r"[\u4e00-\u9fff]{2,4}").all()
    assert set(r["capacity"]) == {0.5, 1.0}
    assert 0.02 < (r["capacity"] == 0.5).mean() < 0.2
    assert r["hired_on"].max() < pd.Timestamp(AS_OF)
    assert r["active"].dtype == bool and r["active"].mean() > 0.85



def test_customer_and_rm_dates_are_offsets_before_the_given_day(world):
    """Issue 15: customers' opening (and birth) dates and RMs' hiring dates were fixed around 2025-06-30 while
    visits follow the day the demo runs. Now every date is a seeded offset before ``as_of``: one seed and one
    day give the same rows, another day the same rows with dates shifted by the difference."""
    v, o = world["villages"], world["outlets"]
    day, later = np.datetime64("2026-12-07", "D"), np.datetime64("2027-03-01", "D")
    a = next(customers(v, 2_000, np.random.default_rng(5), as_of=day))
    pd.testing.assert_frame_equal(a, next(customers(v, 2_000, np.random.default_rng(5), as_of=day)))
    b = next(customers(v, 2_000, np.random.default_rng(5), as_of=later))
    shift = pd.Timedelta(later - day)
    assert (pd.to_datetime(b["opened_on"]) - pd.to_datetime(a["opened_on"]) == shift).all()
    birth = {k: pd.to_datetime(x["id_number"].str[6:14], format="%Y%m%d") for k, x in (("a", a), ("b", b))}
    assert (birth["b"] - birth["a"] == shift).all()
    same = [c for c in a.columns if c not in ("opened_on", "id_number")]
    pd.testing.assert_frame_equal(a[same], b[same])
    opened = pd.to_datetime(a["opened_on"])
    assert opened.max() <= pd.Timestamp(day) and opened.max() >= pd.Timestamp(day) - pd.Timedelta(days=120)
    assert opened.min() >= pd.Timestamp(day) - pd.Timedelta(days=int((AS_OF - np.datetime64("2000-01-01")).astype(int)))
    r1 = rms(o, rng=np.random.default_rng(2), as_of=day)
    pd.testing.assert_frame_equal(r1, rms(o, rng=np.random.default_rng(2), as_of=day))
    r2 = rms(o, rng=np.random.default_rng(2), as_of=later)
    assert (pd.to_datetime(r2["hired_on"]) - pd.to_datetime(r1["hired_on"]) == shift).all()
    hired = pd.to_datetime(r1["hired_on"])
    assert hired.max() < pd.Timestamp(day) - pd.Timedelta(days=29) and hired.max() > pd.Timestamp(day) - pd.Timedelta(days=400)
    # The default day stays 2025-06-30 (doctests and other callers unchanged).
    assert pd.to_datetime(next(customers(v, 500, np.random.default_rng(5)))["opened_on"]).max() <= pd.Timestamp(AS_OF)


def test_customers_chunks_are_bounded_and_ids_sequential(world):
    v = world["villages"]
    chunks = list(customers(v, 25_001, np.random.default_rng(3), chunk_size=10_000))
    assert [len(c) for c in chunks] == [10_000, 10_000, 5_001]
    ids = pd.concat([c["customer_id"] for c in chunks], ignore_index=True)
    assert ids.iloc[0] == "C0000000001" and ids.iloc[-1] == "C0000025001" and ids.is_unique
    with pytest.raises(ValueError):
        customers(v, 10, 0, chunk_size=0)
    # A second batch (the demo's other counties) numbers on from an offset, chunks included.
    later = list(customers(v, 5, np.random.default_rng(3), chunk_size=2, id_offset=1_000_000_000))
    assert [x for c in later for x in c["customer_id"]] == [f"C100000000{k}" for k in range(1, 6)]
    with pytest.raises(ValueError):
        customers(v, 10, 0, id_offset=10**10 - 5)


def test_customers_rng_is_consumed_at_call_time(world):
    v = world["villages"]
    rng = np.random.default_rng(11)
    it = customers(v, 1_000, rng)
    rng.random(5)  # later use of the caller's generator must not change the customers
    first = next(it)
    expected = next(customers(v, 1_000, np.random.default_rng(11)))
    pd.testing.assert_frame_equal(first, expected)


def test_customer_id_numbers_are_valid(world):
    c = world["customers"]
    ids = c["id_number"]
    assert ids.str.fullmatch(r"\d{17}[\dX]").all()
    assert all(_valid_id(x) for x in ids.head(3000))
    assert (ids.str[:6] == c["county_code"]).all()
    birth = pd.to_datetime(ids.str[6:14], format="%Y%m%d", errors="coerce")
    assert birth.notna().all()
    age = (pd.Timestamp(AS_OF) - birth).dt.days / 365.25
    assert age.between(18, 86).all()
    assert (c["opened_on"] >= birth + pd.Timedelta(days=18 * 365)).all()


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=110000, max_value=659999),
    st.dates(
        min_value=pd.Timestamp("1920-01-01").date(), max_value=pd.Timestamp("2009-12-31").date()
    ),
    st.integers(min_value=0, max_value=2**32),
)
def test_id_numbers_property(region, birth, seed):
    out = id_numbers(
        np.random.default_rng(seed), [region], np.array([birth], dtype="datetime64[D]")
    )
    number = out[0].decode()
    assert _valid_id(number)
    assert number[:6] == str(region) and number[6:14] == birth.strftime("%Y%m%d")
    assert id_check_char(number[:17]) == number[17]


def test_id_check_char_known_example():
    assert id_check_char("11010519491231002") == "X"  # the GB 11643-1999 sample number


def test_customer_balances_and_segments(world):
    c = world["customers"]
    dep = c["deposit_balance"]
    assert (dep > 0).all()
    assert dep.mean() > 2 * dep.median()  # heavy right tail
    assert dep.quantile(0.99) > 20 * dep.median()
    assert 0.11 < (c["loan_balance"] > 0).mean() < 0.19
    assert set(c["segment"]) == set(SEGMENTS)
    assert c["phone"].dropna().str.fullmatch(r"1[3-9]\d{9}").all()
    assert c["phone"].isna().mean() < 0.05
    ents = entity_by_county(world["legal-entities"])
    assert (c["legal_entity"] == c["county_code"].map(ents)).all()


def test_customers_missing_places(world):
    c = world["customers"]
    no_point = c["lon"].isna() & c["village_code"].notna()
    neither = c["lon"].isna() & c["village_code"].isna()
    assert 0.06 < no_point.mean() < 0.08
    assert 0.005 < neither.mean() < 0.015
    assert c["lat"].isna().equals(c["lon"].isna())
    assert c["county_code"].notna().all()
    # county_code defaults to the village code's first 6 digits (docs/fields.md); keep them consistent.
    has_v = c["village_code"].notna()
    assert (c.loc[has_v, "village_code"].str[:6] == c.loc[has_v, "county_code"]).all()


def test_customers_cluster_around_their_villages(world):
    c, v = world["customers"], world["villages"].set_index("code")
    c = c[c["lon"].notna()]
    vv = v.loc[c["village_code"]]
    d = haversine_km(
        c["lon"].to_numpy(), c["lat"].to_numpy(), vv["lon"].to_numpy(), vv["lat"].to_numpy()
    )
    own = (vv["coord_level"] == "village").to_numpy()
    assert own.sum() > 100
    assert np.median(d[own]) < 3.0
    # Only a township/county seat is known: spread wider, but still local.
    assert 2.5 < np.median(d[~own]) < 6.0
    assert np.quantile(d, 0.99) < 20
    # More customers where more households.
    counts = c["village_code"].value_counts().reindex(v.index, fill_value=0)
    assert np.corrcoef(counts, v["households"].astype(float))[0, 1] > 0.8


def test_customers_stay_in_their_county_when_given_its_boundary(villages_raw, population, counties):
    # Most villages only have a township or county seat point, often near a boundary: without the
    # boundaries a good share of customers scatter into the next county (flagged on import).
    v = village_households(villages_raw[villages_raw["county_code"].isin(COUNTIES)], population,
                           np.random.default_rng(1))
    within = {
        r.adcode: shapely.transform(r.geometry, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], "gcj02")))
        for r in counties[counties["adcode"].isin(COUNTIES)].itertuples()
    }

    def outside(frame: pd.DataFrame) -> np.ndarray:
        has = frame["lon"].notna().to_numpy()
        out = np.zeros(len(frame), dtype=bool)
        for code, geom in within.items():
            m = has & (frame["county_code"] == code).to_numpy()
            out[m] = ~shapely.contains_xy(geom, frame["lon"].to_numpy()[m], frame["lat"].to_numpy()[m])
        return out

    free = pd.concat(customers(v, 20_000, np.random.default_rng(5)), ignore_index=True)
    kept = pd.concat(customers(v, 20_000, np.random.default_rng(5), within=within), ignore_index=True)
    assert outside(free).mean() > 0.03
    assert not outside(kept).any()
    # Still clustered around the villages as before, and the same customers otherwise.
    assert kept["customer_id"].equals(free["customer_id"]) and kept["village_code"].equals(free["village_code"])
    has = kept["lon"].notna() & kept["village_code"].notna()
    vv = v.set_index("code").loc[kept.loc[has, "village_code"]]
    d = haversine_km(kept.loc[has, "lon"].to_numpy(), kept.loc[has, "lat"].to_numpy(),
                     vv["lon"].to_numpy(), vv["lat"].to_numpy())
    assert 1.0 < np.median(d) < 6.0 and np.quantile(d, 0.99) < 20


def test_visits_come_from_county_rms_and_leave_gaps(world):
    vis, c, r, o = world["visits"], world["customers"], world["rms"], world["outlets"]
    rm_county = r.set_index("code")["outlet_code"].map(o.set_index("code")["county_code"])
    cust_county = c.set_index("customer_id")["county_code"]
    assert (vis["rm_code"].map(rm_county) == vis["customer_id"].map(cust_county)).all()
    assert r.set_index("code").loc[vis["rm_code"], "active"].all()
    start = pd.Timestamp(AS_OF) - pd.Timedelta(days=180)
    assert vis["visited_at"].between(start, pd.Timestamp(AS_OF) + pd.Timedelta(days=1)).all()
    assert vis["visited_at"].dt.hour.between(8, 17).all()
    assert not vis.duplicated(["customer_id", "rm_code", "visited_at"]).any()
    assert set(vis["channel"]) == {"上门", "电话", "网点"}
    assert vis.loc[vis["channel"] == "电话", "lon"].isna().all()
    assert vis.loc[vis["channel"] == "网点", "lon"].notna().all()
    # Coverage gaps: about a fifth of villages had no visit in the last 90 days.
    last = vis.merge(c[["customer_id", "village_code"]]).groupby("village_code")["visited_at"].max()
    last = last.reindex(c["village_code"].dropna().unique())
    stale = last.isna() | (last < pd.Timestamp(AS_OF) - pd.Timedelta(days=90))
    assert 0.1 < stale.mean() < 0.35


def test_visits_lie_before_as_of_and_clear_of_the_90_day_edge(world):
    """Issue 15: the demo dates activity up to the day it runs and scores as of then; a rescoring later
    that day (or the next) must count the same villages as visited. No visit on or after ``as_of``
    (it would be in the future when scored), and no village's last visit within two days of the
    90-day window's edge."""
    c, r, o = world["customers"], world["rms"], world["outlets"]
    day = np.datetime64("2026-12-07", "D")
    vis = visits(c, r, rng=np.random.default_rng(5), outlets=o, as_of=day)
    start = pd.Timestamp("2026-12-07")
    assert (vis["visited_at"] < start).all() and (vis["visited_at"] >= start - pd.Timedelta(days=180)).all()
    last = vis.merge(c[["customer_id", "village_code"]]).groupby("village_code")["visited_at"].max()
    age = (start - last).dt.total_seconds() / 86400
    assert not age.between(88, 92).any()
    assert 0.05 < (age > 92).mean() < 0.35  # neglected villages that were visited long ago


def test_leads_and_tags(world):
    ld, tg, c = world["leads"], world["tags"], world["customers"]
    assert ld["lead_id"].is_unique and ld["lead_id"].str.fullmatch(r"L\d{10}").all()
    assert set(ld["lead_type"]) == set(LEAD_TYPES)
    assert set(ld["status"]) == {"open", "closed"}
    assert (ld["due_on"] > ld["created_at"]).all()
    assert not ld.duplicated(["customer_id", "lead_type"]).any()
    loan = c.set_index("customer_id")["loan_balance"]
    assert (ld.loc[ld["lead_type"] == "逾期提醒", "customer_id"].map(loan) > 0).all()
    assert set(tg["tag"]) == set(TAGS)
    assert not tg.duplicated().any()
    borrowers = set(c.loc[c["loan_balance"] > 0, "customer_id"])
    assert set(tg.loc[tg["tag"] == "有贷户", "customer_id"]) == borrowers
    farmers = set(c.loc[c["segment"] == "农户", "customer_id"])
    assert set(tg.loc[tg["tag"] == "惠农卡", "customer_id"]) <= farmers


def test_short_visit_window_still_leaves_gaps(world):
    c, r, o = world["customers"], world["rms"], world["outlets"]
    vis = visits(c, r, 60, rng=np.random.default_rng(2), outlets=o)
    assert vis["visited_at"].min() >= pd.Timestamp(AS_OF) - pd.Timedelta(days=60)
    visited = set(vis.merge(c[["customer_id", "village_code"]])["village_code"].dropna())
    unvisited = 1 - len(visited) / c["village_code"].nunique()
    assert 0.1 < unvisited < 0.35
