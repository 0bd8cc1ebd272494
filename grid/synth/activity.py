"""Synthetic activity on customers: RM visits (with deliberate coverage gaps), leads and tags."""

from __future__ import annotations

import numpy as np
import pandas as pd

from grid.synth.common import AS_OF, as_rng, frame, jitter_km, padded, str_series

CHANNELS = np.array(["上门", "电话", "网点"])
_CHANNEL_P = np.array([0.55, 0.35, 0.10])
OUTCOMES = np.array(["有意向", "营销成功", "无意向", "客户不在", "日常维护"])
_OUTCOME_P = np.array([0.25, 0.15, 0.20, 0.10, 0.30])
NEGLECTED_SHARE = 0.2  # villages with no visit in the last 90 days
RECENT_DAYS = 90  # the window of "recent" visits (cell_stat.visits_90d)
LEAD_TYPES = ("客户关怀", "产品到期", "逾期提醒", "大额资金变动")
TAGS = ("代发工资", "高净值", "有贷户", "手机银行", "惠农卡")


def _rm_counties(rms: pd.DataFrame, outlets: pd.DataFrame | None) -> np.ndarray:
    """County of each RM's outlet: from ``outlets`` when given, else from ``'O' + adcode`` codes."""
    codes = rms["outlet_code"].astype(str)
    if outlets is not None:
        lookup = dict(
            zip(outlets["code"].astype(str), outlets["county_code"].astype(str), strict=True)
        )
        return codes.map(lookup).to_numpy(dtype=object)
    return codes.str[1:7].to_numpy(dtype=object)


def visits(
    customers_sample: pd.DataFrame,
    rms: pd.DataFrame,
    days: int = 180,
    *,
    rng,
    outlets: pd.DataFrame | None = None,
    as_of=AS_OF,
) -> pd.DataFrame:
    """RM visits to customers over the ``days`` before ``as_of`` (all before that day), with coverage gaps.

    Each village (customers without one: their county) is looked after by one
    active RM of its county's outlets, who makes about 80 % of its visits.
    About 20 % of villages are neglected: their visits, if any, are all older
    than 92 days; every other village gets at least one visit in the last 89
    days (clear of the 90-day window's edge, so that scoring on ``as_of`` or the
    day after sees the same gaps).  Richer customers are visited more often.  上门 visits carry a GPS
    point near the customer; 网点 visits the outlet's point (when ``outlets`` is
    given); 电话 none.  Customers in counties without active RMs get no visits.

    Returns
    -------
    DataFrame
        The ``visits`` import columns, sorted by ``visited_at``.

    Examples
    --------
    >>> c = pd.DataFrame({"customer_id": ["C0000000001"], "county_code": ["640121"],
    ...                   "village_code": ["640121100001"], "lon": [106.2], "lat": [38.3],
    ...                   "deposit_balance": [5e4], "loan_balance": [0.0]})
    >>> r = pd.DataFrame({"code": ["R000001"], "outlet_code": ["O640121001"], "active": [True]})
    >>> v = visits(c, r, rng=np.random.default_rng(1))
    >>> set(v["rm_code"]), bool((v["visited_at"] <= pd.Timestamp("2025-06-30")).all())
    ({'R000001'}, True)
    """
    rng = as_rng(rng)
    as_of = np.datetime64(as_of, "D")
    c = customers_sample.reset_index(drop=True)
    n = len(c)
    active = rms["active"].astype(bool).to_numpy() if "active" in rms else np.ones(len(rms), bool)
    rm_county = _rm_counties(rms, outlets)[active]
    rm_code = rms["code"].astype(str).to_numpy()[active]
    rm_outlet = rms["outlet_code"].astype(str).to_numpy()[active]
    county = c["county_code"].astype(str).to_numpy()
    area = c["village_code"].astype("string").fillna("county:" + c["county_code"].astype(str))
    area_id, areas = pd.factorize(area.to_numpy(dtype=object), sort=True)

    # One owner per area among its county's RMs; areas of counties without RMs drop out.
    order = np.argsort(rm_county.astype(str), kind="stable")
    sorted_c = rm_county.astype(str)[order]
    area_county = np.empty(len(areas), dtype=object)
    area_county[area_id] = county
    area_county = area_county.astype(str)
    lo = np.searchsorted(sorted_c, area_county, "left")
    hi = np.searchsorted(sorted_c, area_county, "right")
    has_rm = hi > lo
    owner = order[
        np.minimum(lo + (rng.random(len(areas)) * (hi - lo)).astype(np.int64), len(order) - 1)
    ]
    neglected = rng.random(len(areas)) < NEGLECTED_SHARE

    wealth = c["deposit_balance"].fillna(0).to_numpy(float) + c["loan_balance"].fillna(0).to_numpy(
        float
    )
    lam = np.clip(0.3 + 0.4 * np.log10(1.0 + wealth / 10_000.0), 0.2, 4.0)
    count = rng.poisson(lam)
    # Half of the neglected areas are not visited at all in the window (all of them
    # when the window is too short to hold a visit older than 92 days).
    silent = neglected & ((rng.random(len(areas)) < 0.5) | (days <= RECENT_DAYS + 2))
    count[silent[area_id]] = 0
    who = np.repeat(np.arange(n), count)
    recent = np.zeros(who.size, dtype=bool)
    # Guarantee one recent visit per looked-after area: its first customer.
    first = np.unique(area_id, return_index=True)[1]
    first = first[~neglected[area_id[first]]]
    who = np.concatenate([who, first])
    recent = np.concatenate([recent, np.ones(first.size, dtype=bool)])
    keep = has_rm[area_id[who]]
    who, recent = who[keep], recent[keep]
    m = who.size

    a = area_id[who]
    # Clear of the 90-day window's edge on both sides: a looked-after area's recent visit is at most
    # 88 days before ``as_of``, a neglected area's visits at least 92 days, so scoring up to a day
    # after ``as_of`` counts the same areas as visited (the demo scores as of the day it runs).
    lo_day = np.where(neglected[a], RECENT_DAYS + 2, 0)
    hi_day = np.where(recent, min(RECENT_DAYS - 2, days), days)
    ago = (lo_day + rng.random(m) * np.maximum(hi_day - lo_day, 0)).astype(np.int64)
    # Working hours only: 08:00-18:00 on the chosen day, always a day before ``as_of`` (never after it).
    day = (as_of - (ago + 1).astype("timedelta64[D]")).astype("datetime64[s]")
    at = day + (8 * 3600 + rng.integers(0, 10 * 3600, m)).astype("timedelta64[s]")

    rm_i = owner[a].copy()
    other = rng.random(m) < 0.2
    span = (hi - lo)[a]
    rm_i[other] = order[lo[a][other] + (rng.random(other.sum()) * span[other]).astype(np.int64)]

    channel = rng.choice(CHANNELS.size, m, p=_CHANNEL_P)
    cx, cy = jitter_km(rng, c["lon"].to_numpy(float)[who], c["lat"].to_numpy(float)[who], 0.03)
    vlon = np.where(channel == 0, cx, np.nan)
    vlat = np.where(channel == 0, cy, np.nan)
    if outlets is not None:
        where = dict(zip(outlets["code"].astype(str), range(len(outlets)), strict=True))
        oi = np.array([where.get(o, -1) for o in rm_outlet[rm_i]], dtype=np.int64)
        ok = (channel == 2) & (oi >= 0)
        vlon[ok] = outlets["lon"].to_numpy(float)[oi[ok]]
        vlat[ok] = outlets["lat"].to_numpy(float)[oi[ok]]

    out = frame(
        "visits",
        {
            "customer_id": c["customer_id"].astype(str).to_numpy()[who],
            "rm_code": rm_code[rm_i],
            "visited_at": at,
            "channel": CHANNELS[channel],
            "outcome": OUTCOMES[rng.choice(OUTCOMES.size, m, p=_OUTCOME_P)],
            "lon": np.round(vlon, 6),
            "lat": np.round(vlat, 6),
        },
    )
    out = out.drop_duplicates(["customer_id", "rm_code", "visited_at"])
    return out.sort_values(["visited_at", "customer_id"], kind="stable").reset_index(drop=True)


def leads(customers: pd.DataFrame, rng, *, as_of=AS_OF) -> pd.DataFrame:
    """Marketing leads (营销线索) for some customers, at most one per customer and type.

    产品到期 for about 12 % of depositors above 20,000, 逾期提醒 for about 8 % of
    borrowers, 大额资金变动 for about 30 % above 200,000, 客户关怀 for about 5 %
    of everyone.  Created in the 120 days before ``as_of``, due 7–30 days
    later; older ones are more often closed.

    Returns
    -------
    DataFrame
        The ``leads`` import columns; ``lead_id`` is ``'L'`` + 10 digits.

    Examples
    --------
    >>> c = pd.DataFrame({"customer_id": ["C1", "C2"], "deposit_balance": [5e5, 10.0],
    ...                   "loan_balance": [1e5, 0.0]})
    >>> out = leads(c, np.random.default_rng(0))
    >>> set(out["lead_type"]) <= {"客户关怀", "产品到期", "逾期提醒", "大额资金变动"}
    True
    """
    rng = as_rng(rng)
    as_of = np.datetime64(as_of, "D")
    dep = customers["deposit_balance"].fillna(0).to_numpy(float)
    loan = customers["loan_balance"].fillna(0).to_numpy(float)
    n = dep.size
    probs = np.column_stack(
        [
            np.full(n, 0.05),
            np.where(dep > 20_000, 0.12, 0.0),
            np.where(loan > 0, 0.08, 0.0),
            np.where(dep > 200_000, 0.30, 0.0),
        ]
    )
    hit = rng.random(probs.shape) < probs
    ci, ti = np.nonzero(hit)
    m = ci.size
    ago = rng.integers(0, 120, m)
    created = (as_of - ago.astype("timedelta64[D]")).astype("datetime64[s]")
    created = created + rng.integers(8 * 3600, 18 * 3600, m).astype("timedelta64[s]")
    due = (
        created.astype("datetime64[D]") + rng.integers(7, 31, m).astype("timedelta64[D]")
    ).astype("datetime64[s]")
    closed = rng.random(m) < np.clip(ago / 120.0 + 0.1, 0.0, 0.9)
    return frame(
        "leads",
        {
            "lead_id": str_series(padded("L", np.arange(1, m + 1), 10)),
            "customer_id": customers["customer_id"].astype(str).to_numpy()[ci],
            "lead_type": np.array(LEAD_TYPES)[ti],
            "status": np.where(closed, "closed", "open"),
            "created_at": created,
            "due_on": due,
        },
    )


def tags(customers: pd.DataFrame, rng) -> pd.DataFrame:
    """Customer tags (客户标签) in long form, one row per customer and tag.

    有贷户 exactly for borrowers, 高净值 for deposits of 500,000 or more, 惠农卡
    for about 60 % of 农户, 代发工资 for about 12 % of 个人, 手机银行 for about
    45 % of everyone.

    Returns
    -------
    DataFrame
        The ``tags`` import columns, ordered by customer then tag.

    Examples
    --------
    >>> c = pd.DataFrame({"customer_id": ["C1"], "deposit_balance": [6e5], "loan_balance": [1.0],
    ...                   "segment": ["个人"]})
    >>> sorted(set(tags(c, np.random.default_rng(0))["tag"]) & {"高净值", "有贷户"})
    ['有贷户', '高净值']
    """
    rng = as_rng(rng)
    dep = customers["deposit_balance"].fillna(0).to_numpy(float)
    loan = customers["loan_balance"].fillna(0).to_numpy(float)
    seg = (
        customers["segment"].astype(str).to_numpy()
        if "segment" in customers
        else np.full(dep.size, "")
    )
    u = rng.random((dep.size, len(TAGS)))
    has = np.column_stack(
        [
            (seg == "个人") & (u[:, 0] < 0.12),
            dep >= 500_000,
            loan > 0,
            u[:, 3] < 0.45,
            (seg == "农户") & (u[:, 4] < 0.60),
        ]
    )
    ci, ti = np.nonzero(has)
    return frame(
        "tags",
        {
            "customer_id": customers["customer_id"].astype(str).to_numpy()[ci],
            "tag": np.array(TAGS)[ti],
        },
    )
