"""Explainable coverage-gap scores per grid cell (业务空白区域评分).

Input: the per-cell measures, one row per cell, computed elsewhere (from the
database). Expected columns:

========================= =====================================================
column                    meaning
========================= =====================================================
``cell_id``               cell key (H3 index or village-cell id); unique
``households``            households in the cell (NaN/inf = unknown, counts as 0)
``population``            people in the cell
``customers``             the bank's customers living in the cell
``deposit``               deposit balance of those customers (yuan)
``loan``                  loan balance of those customers (yuan)
``owner_rm``              code of the RM owning the cell; None/NaN/'' = nobody
``visits_90d``            visits in the recent-visit window
``customers_visited_90d`` distinct customers visited in that window
``days_since_visit``      days since the last visit to the cell (NaN = never)
``dist_outlet_km``        straight-line km to the nearest outlet (NaN = none)
``dist_service_point_km`` straight-line km to the nearest service point
``open_leads``            open leads of the cell's customers (0 when unknown)
``apportioned``           bool: households apportioned from a point shared with
                          other villages (township or county seat)
========================= =====================================================

Components, each normalised to [0, 1] so that a manager can read them:

- ``potential``: households / cap, capped at 1. The cap is robust: the 95th
  percentile (``potential_quantile``) of households over the cells that have
  potential, or a fixed ``potential_cap_households``.
- ``low_penetration``: ``1 - penetration / penetration_target``, clipped, where
  penetration is customers per household.
- ``no_owner``: 1 when no RM owns the cell.
- ``no_recent_visit``: days since the last visit / window, capped at 1; 1 when
  never visited.
- ``unvisited_customers``: share of the cell's customers not visited in the
  window (0 when it has no customers: low penetration says that already).
- ``far_outlet`` / ``far_service_point``: distance / ``far_*_km``, capped at 1;
  1 when no such facility is known.
- ``open_leads``: open leads / ``open_leads_cap``, capped at 1.

A cell with fewer than ``min_households`` households and no customers has no
potential: all its components are 0, it scores 0 and its class is
``no-potential`` (无潜力), never blank. Otherwise the farm land and empty cells
of an H3 grid, owned by an RM who has no reason to visit them, would flood the
map and the ranking with "blank" cells. A cell with customers always counts,
however few its households (its customers still need serving).

``contrib_<c> = 100 * weight_c / sum(weights) * comp_<c>`` and ``score`` is
the row sum of the contributions, so the contributions add up to the score.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from grid.errors import GapConfigError, GapInputError
from grid.gap_config import COMPONENTS, GapConfig

__all__ = [
    "COMPONENTS",
    "GAP_CLASSES",
    "MEASURE_COLUMNS",
    "GapConfig",
    "GapConfigError",
    "GapInputError",
    "potential_cap",
    "rank_blank_areas",
    "score_cells",
]

MEASURE_COLUMNS: tuple[str, ...] = (
    "cell_id", "households", "population", "customers", "deposit", "loan", "owner_rm",
    "visits_90d", "customers_visited_90d", "days_since_visit", "dist_outlet_km",
    "dist_service_point_km", "open_leads", "apportioned",
)
GAP_CLASSES: tuple[str, ...] = ("blank", "under-served", "covered", "no-potential")
# the window of the measures visits_90d and customers_visited_90d (cell_stat)
MEASURE_VISIT_DAYS = 90

def potential_cap(households, config: GapConfig | None = None) -> float:
    """Households at which the potential component reaches 1.

    The ``potential_quantile`` of the households of cells with potential, or
    ``potential_cap_households`` when that is set (> 0). Never below 1.

    Examples
    --------
    >>> round(potential_cap([0, 10, 20, 30, 40, 1000]), 1)
    856.0
    """
    cfg = config or GapConfig.default()
    if cfg.potential_cap_households > 0:
        return float(cfg.potential_cap_households)
    h = np.nan_to_num(np.asarray(households, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    h = h[(h >= cfg.min_households) & (h > 0)]
    if h.size == 0:
        return 1.0
    return float(max(np.quantile(h, cfg.potential_quantile), 1.0))


def _validated(measures: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and keys; return the rows sorted by cell_id."""
    missing = [c for c in MEASURE_COLUMNS if c not in measures.columns]
    if missing:
        raise GapInputError(f"measures lack columns: {', '.join(missing)}")
    dup = measures["cell_id"][measures["cell_id"].duplicated()]
    if len(dup):
        raise GapInputError(f"duplicate cell_id: {dup.iloc[0]!r}")
    # sorting first makes every result independent of the database's row order
    return measures.sort_values("cell_id", kind="mergesort").reset_index(drop=True)


def _flag(value: Any) -> bool:
    """A bool measure that may arrive as bool, 0/1, NaN or text ('t', 'true', 'Y')."""
    if isinstance(value, str):
        # bool("false") is True, so text is read by meaning
        return value.strip().lower() in ("t", "true", "y", "yes", "1")
    return bool(value) if pd.notna(value) else False


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    """A measure column as floats (missing values stay NaN)."""
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


def _components(m: pd.DataFrame, cfg: GapConfig) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Normalised components and the derived values the reasons quote."""
    # not finite = unknown (nan_to_num would make inf the largest float, squashing every other cell)
    h = np.nan_to_num(_col(m, "households"), nan=0.0, posinf=0.0, neginf=0.0)
    customers = np.nan_to_num(_col(m, "customers"), nan=0.0)
    # customers make a cell count whatever its households (unknown ones too): someone there is the bank's
    has = ((h >= cfg.min_households) & (h > 0)) | (customers > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        penetration = np.where(h > 0, customers / h, np.nan)
        balance = (np.nan_to_num(_col(m, "deposit")) + np.nan_to_num(_col(m, "loan"))) / h
        unvisited = np.where(
            customers > 0, 1.0 - np.nan_to_num(_col(m, "customers_visited_90d")) / customers, 0.0
        )
    balance = np.where(h > 0, balance, np.nan)
    owner = m["owner_rm"]
    no_owner = (owner.isna() | (owner.astype(str).str.strip() == "")).to_numpy()
    days = _col(m, "days_since_visit")
    dist_outlet = _col(m, "dist_outlet_km")
    dist_sp = _col(m, "dist_service_point_km")
    leads = np.nan_to_num(_col(m, "open_leads"), nan=0.0)
    apportioned = np.array([_flag(v) for v in m["apportioned"]], dtype=bool)

    def capped(x: np.ndarray, cap: float, missing: float) -> np.ndarray:
        return np.clip(np.where(np.isnan(x), missing, x / cap), 0.0, 1.0)

    comps = {
        "potential": np.clip(h / potential_cap(h, cfg), 0.0, 1.0),
        # unknown households (penetration NaN): no penetration to measure, not "no customers per household"
        "low_penetration": np.where(np.isnan(penetration), 0.0,
                                    np.clip(1.0 - np.nan_to_num(penetration) / cfg.penetration_target, 0.0, 1.0)),
        "no_owner": no_owner.astype(float),
        "no_recent_visit": capped(days, cfg.recent_visit_days, 1.0),
        "unvisited_customers": np.clip(unvisited, 0.0, 1.0),
        "far_outlet": capped(dist_outlet, cfg.far_outlet_km, 1.0),
        "far_service_point": capped(dist_sp, cfg.far_service_point_km, 1.0),
        "open_leads": capped(leads, cfg.open_leads_cap, 0.0),
    }
    comps = {c: np.where(has, v, 0.0) for c, v in comps.items()}
    stale = np.isnan(days) | (days > cfg.recent_visit_days)
    derived = {
        "households": h, "has": has, "penetration": penetration, "balance": balance,
        "no_owner": no_owner, "stale": stale, "days": days, "unvisited": unvisited,
        "dist_outlet_km": dist_outlet, "dist_service_point_km": dist_sp, "open_leads": leads,
        "apportioned": apportioned,
    }
    return comps, derived


def score_cells(measures: pd.DataFrame, config: GapConfig | None = None) -> pd.DataFrame:
    """Score every cell 0–100 with its components, contributions, class and reasons.

    Parameters
    ----------
    measures : DataFrame
        One row per cell with the columns listed in the module docstring.
    config : GapConfig, optional
        Weights and thresholds; :meth:`GapConfig.default` when omitted.

    Returns
    -------
    DataFrame
        One row per cell, sorted by ``cell_id``: ``cell_id, households,
        penetration, balance_per_household, comp_<c>...`` (in [0, 1]),
        ``contrib_<c>...`` (points; they sum to ``score``), ``score`` (0–100),
        ``gap_class`` ('blank' / 'under-served' / 'covered' / 'no-potential'), ``reason_zh``,
        ``reason_en``. ``attrs['potential_cap_households']`` holds the cap used.

    Examples
    --------
    >>> m = pd.DataFrame({"cell_id": ["a", "b"], "households": [320, 300],
    ...     "population": [900, 850], "customers": [0, 280], "deposit": [0, 9e6],
    ...     "loan": [0, 2e6], "owner_rm": [None, "RM01"], "visits_90d": [0, 40],
    ...     "customers_visited_90d": [0, 200], "days_since_visit": [float("nan"), 5],
    ...     "dist_outlet_km": [8.0, 1.0], "dist_service_point_km": [6.0, 0.5],
    ...     "open_leads": [0, 0], "apportioned": [False, False]})
    >>> s = score_cells(m)
    >>> s["gap_class"].tolist()
    ['blank', 'covered']
    >>> s.loc[0, "reason_en"]
    'potential (320 households) but no RM owns it; low penetration (0.00 customers per household, target 1); never visited'
    """
    cfg = config or GapConfig.default()
    m = _validated(measures)
    comps, d = _components(m, cfg)
    weights = cfg.normalised_weights()
    out = pd.DataFrame({
        "cell_id": m["cell_id"].to_numpy(),
        "households": d["households"],
        "penetration": d["penetration"],
        "balance_per_household": d["balance"],
    })
    for c in COMPONENTS:
        out[f"comp_{c}"] = comps[c]
    contrib_cols = [f"contrib_{c}" for c in COMPONENTS]
    for c in COMPONENTS:
        out[f"contrib_{c}"] = weights[c] * comps[c]
    # the score is defined as the row sum so that the contributions add up exactly
    out["score"] = out[contrib_cols].sum(axis=1)
    blank = d["has"] & (d["no_owner"] | d["stale"])
    out["gap_class"] = np.select(
        [blank, ~d["has"], out["score"].to_numpy() >= cfg.under_served_score],
        ["blank", "no-potential", "under-served"], "covered")
    zh, en = _reasons(out, d, blank, cfg)
    out["reason_zh"] = zh
    out["reason_en"] = en
    out.attrs["potential_cap_households"] = potential_cap(d["households"], cfg)
    return out


def rank_blank_areas(scores: pd.DataFrame, top: int | None = None) -> pd.DataFrame:
    """Blank cells ranked by score (highest first), ties by ``cell_id``.

    Returns the rows of ``scores`` whose ``gap_class`` is 'blank', with a
    1-based ``rank`` column in front; at most ``top`` rows when given.

    Examples
    --------
    >>> s = pd.DataFrame({"cell_id": ["b", "a", "c"], "score": [50.0, 50.0, 90.0],
    ...                   "gap_class": ["blank", "blank", "covered"]})
    >>> rank_blank_areas(s)[["rank", "cell_id"]].values.tolist()
    [[1, 'a'], [2, 'b']]
    """
    blank = scores[scores["gap_class"] == "blank"]
    ranked = blank.sort_values(["score", "cell_id"], ascending=[False, True], kind="mergesort")
    if top is not None:
        ranked = ranked.head(top)
    ranked = ranked.reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked


def _fmt_households(h: float) -> tuple[str, str]:
    """Households as a whole number in Chinese and English text, marked 约 / ≈ when the stored figure is a
    fractional (apportioned) share: "约46户" / "≈46 households", never "45.5户"."""
    n = f"{round(float(h)):,}"
    return (n, n) if float(h).is_integer() else (f"约{n}", f"≈{n}")


def _phrase(c: str, i: int, d: dict[str, list], cfg: GapConfig) -> tuple[str, str]:
    """Chinese and English phrase of component ``c`` for cell ``i``."""
    w = cfg.recent_visit_days
    if c in ("potential", "potential+no_owner"):
        hz, he = _fmt_households(d["households"][i])
        zh, en = (
            (f"有潜力（{hz}户，按共用的乡镇/县点位分摊）", f"potential ({he} households, apportioned from a shared township/county point)")
            if d["apportioned"][i] else (f"有潜力（{hz}户）", f"potential ({he} households)")
        )
        return (f"{zh}但无客户经理负责", f"{en} but no RM owns it") if c != "potential" else (zh, en)
    if c == "no_owner":
        return ("无客户经理负责", "no RM owns it")
    if c == "no_recent_visit":
        days = d["days"][i]
        if math.isnan(days):
            return ("从未走访", "never visited")
        if days > w:
            return (f"{w}天内无走访", f"no visit in {w} days")
        return (f"已{days:.0f}天未走访", f"last visit {days:.0f} days ago")
    if c == "low_penetration":
        pen = d["penetration"][i]
        pen = 0.0 if math.isnan(pen) else pen
        t = cfg.penetration_target
        return (f"渗透率低（每户{pen:.2f}个客户，目标{t:g}）",
                f"low penetration ({pen:.2f} customers per household, target {t:g})")
    if c == "unvisited_customers":
        # customers_visited_90d is measured over 90 days, whatever recent_visit_days says
        pct, mw = f"{100 * d['unvisited'][i]:.0f}%", MEASURE_VISIT_DAYS
        return (f"{pct}的客户{mw}天内未走访", f"{pct} of customers not visited in {mw} days")
    if c in ("far_outlet", "far_service_point"):
        zh, en = ("网点", "outlet") if c == "far_outlet" else ("服务点", "service point")
        km = d[f"dist_{c[4:]}_km"][i]
        if math.isnan(km):
            return (f"无已知{zh}", f"no {en} known")
        return (f"距最近{zh}{km:.1f}公里", f"{km:.1f} km from the nearest {en}")
    leads = f"{d['open_leads'][i]:.0f}"
    return (f"{leads}条线索未跟进", f"{leads} open leads not worked")


def _reasons(out: pd.DataFrame, arrays: dict[str, np.ndarray], blank: np.ndarray,
             cfg: GapConfig) -> tuple[list[str], list[str]]:
    """Plain-words reasons from the largest contributions of each cell."""
    values = out[[f"contrib_{c}" for c in COMPONENTS]].to_numpy()
    # largest contribution first; a stable sort keeps equal ones in COMPONENTS order
    ranking = np.argsort(-values, axis=1, kind="stable").tolist()
    # plain Python lists: indexing numpy scalars one by one is several times slower
    contrib = values.tolist()
    d = {k: v.tolist() for k, v in arrays.items()}
    blank = blank.tolist()
    zh_all: list[str] = []
    en_all: list[str] = []
    for i in range(len(out)):
        if not d["has"][i]:
            hh = d["households"][i]
            if hh > 0:  # known, but below min_households
                (nz, ne), lo = _fmt_households(hh), f"{cfg.min_households:g}"
                zh_all.append(f"无潜力：{nz}户（少于计入的{lo}户）且无客户")
                en_all.append(f"no potential: {ne} households (fewer than the {lo} that count) and no customers")
            else:
                zh_all.append("无潜力：无已知户数且无客户")
                en_all.append("no potential: no known households and no customers")
            continue
        forced: list[str] = []
        if blank[i]:
            # the reasons that make a cell blank are always named, even when weighted 0
            forced = ["potential"] + (["no_owner"] if d["no_owner"][i] else []) \
                + (["no_recent_visit"] if d["stale"][i] else [])
        ranked = [COMPONENTS[j] for j in ranking[i] if contrib[i][j] > 0 or COMPONENTS[j] in forced]
        # "potential but no owner" is one phrase, so it takes one place of max_reasons
        room = max(cfg.max_reasons - len(forced) + int("no_owner" in forced), 0)
        extra = [c for c in ranked if c not in forced][:room]
        chosen = [c for c in ranked if c in forced or c in extra]
        if not chosen:
            zh_all.append("已覆盖")
            en_all.append("covered")
            continue
        if "potential" in chosen and "no_owner" in chosen:
            # "potential but no owner" reads as one finding: merge at the first of the two
            first = min(chosen.index("potential"), chosen.index("no_owner"))
            chosen = [c for c in chosen if c not in ("potential", "no_owner")]
            chosen.insert(first, "potential+no_owner")
        phrases = [_phrase(c, i, d, cfg) for c in chosen]
        zh_all.append("；".join(p[0] for p in phrases))
        en_all.append("; ".join(p[1] for p in phrases))
    return zh_all, en_all
