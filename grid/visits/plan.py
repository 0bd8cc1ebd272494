"""An RM's day plan: which customers to visit, each with its reasons (拜访计划).

Candidates are the RM's customers with what is known about them; each reason
is a component in [0, 1]:

================== ============================================================
component          strength
================== ============================================================
``open_lead``      ``min(open_leads / open_leads_cap, 1) * lead_priority``
``overdue_visit``  0 within the visit window; past it ``0.5 + 0.5 * overdue /
                   window`` (capped at 1); 1 when never visited
``gap_cell``       1 in a blank cell, ``under_served_value`` in an under-served one
``handover``       1 when handed over to the RM and not yet met
``maturing``       a product maturing within ``maturing_horizon_days`` (1 on the
                   day, 0.5 at the horizon), or matured at most
                   ``maturing_grace_days`` ago (1)
================== ============================================================

``score = 100 * sum(weight_c * comp_c) / sum(weights)``; the reasons name the
largest contributions in Chinese and English, as the gap scores do.

A plan puts the branch manager's visit tasks (走访任务) first, always (even past
``max_stops``), then the stops the RM added, then the best-scoring candidates
until ``max_stops``. Each stop has a place: the customer's point, else their
village's point, else none (``place_source`` says which); its rows feed
:meth:`grid.visits.DayRoute.from_records` as they are.

Candidate columns (only ``customer_id`` is required; a missing column means
"not known", never "bad"):

``customer_id``, ``lon``, ``lat`` (customer point, WGS84), ``village_lon``,
``village_lat``, ``open_leads``, ``lead_priority`` (0-1), ``last_visit_date``
or ``days_since_visit`` (empty = never visited), ``visit_window_days``,
``gap_class`` ('blank' / 'under-served' / 'covered' / 'no-potential'), ``handed_over_unmet``,
``maturity_date``, ``maturing_product``.

Task columns: ``task_id``, ``customer_id``, ``due_date``; optional
``window_start``, ``window_end``, ``service_min`` and the place columns (used
when the customer is not among the candidates).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from grid.errors import VisitInputError
from grid.visits.checks import is_missing, row_date, row_flag, row_number, row_place
from grid.visits.clock import clock_to_minutes, minutes_to_clock
from grid.visits.weights import COMPONENTS, VisitWeights

GAP_VALUES = ("blank", "under-served", "covered", "no-potential")
PLAN_COLUMNS: tuple[str, ...] = (
    "rank", "stop_id", "customer_id", "kind", "task_id", "due_date", "score", "reasons", "reason_zh",
    "reason_en", "place_source", "lon", "lat", "window_start", "window_end", "service_min", "priority",
    "required",
)
# ---------------------------------------------------------------------- scoring
def score_candidates(candidates: pd.DataFrame | Iterable[Mapping[str, Any]], *, plan_date: dt.date,
                     weights: VisitWeights | None = None) -> pd.DataFrame:
    """Score every candidate 0-100 with its components and bilingual reasons.

    Parameters
    ----------
    candidates : DataFrame or iterable of mappings
        One row per customer, columns as in the module docstring.
    plan_date : date
        The day planned (days since the last visit and to maturity count from it).
    weights : VisitWeights, optional
        :meth:`VisitWeights.default` when omitted.

    Returns
    -------
    DataFrame
        Candidates ranked (score descending, ties by ``customer_id``):
        ``customer_id, score, comp_<c>..., reasons`` (codes, largest first),
        ``reason_zh, reason_en, place_source, lon, lat``.

    Examples
    --------
    >>> s = score_candidates([{"customer_id": "C1", "open_leads": 3},
    ...                       {"customer_id": "C2", "handed_over_unmet": True, "gap_class": "blank"}],
    ...                      plan_date=dt.date(2026, 12, 7))
    >>> s[["customer_id", "score"]].values.tolist()
    [['C2', 40.0], ['C1', 30.0]]
    >>> s.loc[0, "reason_en"]
    'handed over to you, not yet met; in a blank cell'
    """
    rows = _score_rows(candidates, plan_date, weights or VisitWeights.default())
    cols = ["customer_id", "score", *[f"comp_{c}" for c in COMPONENTS], "reasons", "reason_zh", "reason_en",
            "place_source", "lon", "lat"]
    return pd.DataFrame(rows, columns=cols)


def _score_rows(candidates, plan_date: dt.date, w: VisitWeights) -> list[dict]:
    """Scored candidates as dicts, ranked: score descending, ties by customer id."""
    records = _records(candidates, "candidate")
    if records and "customer_id" not in records[0]:
        raise VisitInputError("candidates lack the column customer_id")
    total = sum(w.weights.values())
    rows = []
    seen: set = set()
    for i, r in enumerate(records):
        cid = r.get("customer_id")
        if is_missing(cid):
            raise VisitInputError(f"candidate {i}: customer_id is missing")
        if cid in seen:
            raise VisitInputError(f"candidate {i}: customer_id {cid!r} appears twice")
        seen.add(cid)
        comps, phrases = _components(r, i, plan_date, w)
        contrib = {c: 100.0 * w.weights[c] / total * comps[c] for c in COMPONENTS}
        order = sorted((c for c in COMPONENTS if contrib[c] > 0), key=lambda c: -contrib[c])[: w.max_reasons]
        src, lon, lat = row_place(r, f"candidate {i}")
        rows.append({
            "customer_id": cid, "score": round(sum(contrib[c] for c in COMPONENTS), 6),
            **{f"comp_{c}": comps[c] for c in COMPONENTS},
            "reasons": tuple(order),
            "reason_zh": "；".join(phrases[c][0] for c in order),
            "reason_en": "; ".join(phrases[c][1] for c in order),
            "place_source": src, "lon": lon, "lat": lat,
        })
    return sorted(rows, key=lambda r: (-r["score"], str(r["customer_id"])))


def plan_day(candidates: pd.DataFrame | Iterable[Mapping[str, Any]], *, plan_date: dt.date,
             tasks: pd.DataFrame | Iterable[Mapping[str, Any]] = (), weights: VisitWeights | None = None,
             max_stops: int | None = None, added: Iterable = (), removed: Iterable = ()) -> pd.DataFrame:
    """The day's proposed stops: tasks first, then the RM's additions, then the best candidates.

    Parameters
    ----------
    candidates : DataFrame or iterable of mappings
        The RM's customers (see :func:`score_candidates`).
    plan_date : date
        The day planned.
    tasks : DataFrame or iterable of mappings, optional
        Open visit tasks of the RM (``task_id, customer_id, due_date`` and
        optionally ``window_start, window_end, service_min``, place columns).
        Every one is in the plan, even past ``max_stops``; several tasks for
        one customer make one stop (the earliest due leads).
    weights : VisitWeights, optional
        Weights and defaults (``max_stops``, service minutes).
    max_stops : int, optional
        Overrides ``weights.max_stops``.
    added : iterable of customer ids
        Stops the RM added (kept in their order, after the tasks).
    removed : iterable of customer ids
        Customers the RM took off today's plan (a task is never removed).

    Returns
    -------
    DataFrame
        Columns ``PLAN_COLUMNS``: ``rank`` (1-based), ``stop_id`` (= customer
        id), ``kind`` ('task' / 'added' / 'proposed'), ``reason_zh``,
        ``reason_en``, ``place_source`` ('customer' / 'village' / missing),
        ``lon``, ``lat``, ``window_start``/``window_end`` ('HH:MM' or None),
        ``service_min``, ``priority`` (score / 100, for the route) and
        ``required`` (tasks).

    Examples
    --------
    >>> p = plan_day([{"customer_id": "C1", "open_leads": 1, "lon": 106.1, "lat": 38.2},
    ...               {"customer_id": "C2", "gap_class": "blank", "village_lon": 106.2, "village_lat": 38.3}],
    ...              tasks=[{"task_id": "T9", "customer_id": "C3", "due_date": "2026-12-08",
    ...                      "window_start": "10:00", "window_end": "11:00"}],
    ...              plan_date=dt.date(2026, 12, 7))
    >>> p["stop_id"].tolist(), p["kind"].tolist(), p["window_start"].tolist()
    (['C3', 'C2', 'C1'], ['task', 'proposed', 'proposed'], ['10:00', nan, nan])
    >>> p["place_source"].tolist()  # the task's customer has no known point
    [nan, 'village', 'customer']
    >>> p.loc[0, "reason_en"]
    'visit task T9 (due 2026-12-08)'
    """
    w = weights or VisitWeights.default()
    limit = w.max_stops if max_stops is None else int(max_stops)
    if limit < 0:
        raise VisitInputError(f"max_stops must be >= 0, got {max_stops!r}")
    scored = _score_rows(candidates, plan_date, w)
    by_id = {r["customer_id"]: r for r in scored}
    removed_set = set(removed)
    stops: list[dict] = []
    taken: set = set()

    for t in _tasks(tasks, plan_date):
        cid = t["customer_id"]
        if cid in taken:
            lead = next(s for s in stops if s["customer_id"] == cid)
            lead["reason_zh"] += f"；另有任务{t['task_id']}"
            lead["reason_en"] += f"; also task {t['task_id']}"
            continue
        c = by_id.get(cid)
        src, lon, lat = (c["place_source"], c["lon"], c["lat"]) if c and c["place_source"] else \
            row_place(t, f"task {t['task_id']!r}")
        zh, en = t["phrase"]
        if c and c["reason_en"]:
            zh, en = f"{zh}；{c['reason_zh']}", f"{en}; {c['reason_en']}"
        stops.append(_stop(cid, "task", t["task_id"], t["due_date"], c["score"] if c else None,
                           ("task", *(c["reasons"] if c else ())), zh, en, src, lon, lat, t["window"],
                           t["service_min"] if t["service_min"] is not None else w.task_service_min,
                           1.0, True))
        taken.add(cid)

    for cid in added:
        if cid in taken or cid in removed_set:
            continue
        c = by_id.get(cid)
        if c is None:
            raise VisitInputError(f"added stop {cid!r} is not one of the candidates")
        zh, en = "客户经理添加", "added by the RM"
        if c["reason_en"]:
            zh, en = f"{zh}；{c['reason_zh']}", f"{en}; {c['reason_en']}"
        stops.append(_stop(cid, "added", None, None, c["score"], ("added", *c["reasons"]), zh, en,
                           c["place_source"], c["lon"], c["lat"], (None, None), w.service_min, 1.0, False))
        taken.add(cid)

    room = max(limit - len(stops), 0)
    for c in scored:
        if room == 0:
            break
        cid = c["customer_id"]
        if cid in taken or cid in removed_set or c["score"] < w.min_score or c["score"] <= 0:
            continue
        stops.append(_stop(cid, "proposed", None, None, c["score"], c["reasons"], c["reason_zh"], c["reason_en"],
                           c["place_source"], c["lon"], c["lat"], (None, None), w.service_min,
                           max(c["score"] / 100.0, 0.01), False))
        taken.add(cid)
        room -= 1

    out = pd.DataFrame(stops, columns=[c for c in PLAN_COLUMNS if c != "rank"])
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


# ---------------------------------------------------------------------- internals
def _stop(cid, kind, task_id, due, score, reasons, zh, en, src, lon, lat, window, service, priority, required):
    return {"stop_id": cid, "customer_id": cid, "kind": kind, "task_id": task_id, "due_date": due,
            "score": score, "reasons": tuple(reasons), "reason_zh": zh, "reason_en": en, "place_source": src,
            "lon": lon, "lat": lat,
            "window_start": None if window[0] is None else minutes_to_clock(window[0]),
            "window_end": None if window[1] is None else minutes_to_clock(window[1]),
            "service_min": float(service), "priority": float(priority), "required": bool(required)}


def _records(rows, what: str) -> list[dict]:
    """Rows as dicts that all have the same keys (a key one row lacks is empty there, as in a table)."""
    if isinstance(rows, pd.DataFrame):
        return rows.to_dict("records")
    rows = list(rows)
    keys: dict = {}
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise VisitInputError(f"{what} {i}: must be a mapping of fields, got {type(r).__name__}")
        keys.update(dict.fromkeys(r))
    return [{**dict.fromkeys(keys), **r} for r in rows]


def _components(r: Mapping, i: int, day: dt.date, w: VisitWeights):
    where = f"candidate {i} ({r.get('customer_id')!r})"
    comps = dict.fromkeys(COMPONENTS, 0.0)
    ph: dict[str, tuple[str, str]] = {}

    leads = row_number(r, "open_leads", where) or 0.0
    prio = row_number(r, "lead_priority", where, hi=1.0)
    if leads > 0:
        comps["open_lead"] = min(leads / w.open_leads_cap, 1.0) * (1.0 if prio is None else prio)
        ph["open_lead"] = (f"{leads:.0f}条线索未跟进", f"{leads:.0f} open lead{'s' if leads != 1 else ''}")

    window = row_number(r, "visit_window_days", where) or w.visit_window_days
    if "last_visit_date" in r or "days_since_visit" in r:
        last = row_date(r, "last_visit_date", where)
        days = (day - last).days if last is not None else row_number(r, "days_since_visit", where)
        if days is None:
            comps["overdue_visit"] = 1.0
            ph["overdue_visit"] = ("从未走访", "never visited")
        elif days > window:
            comps["overdue_visit"] = min(1.0, 0.5 + 0.5 * (days - window) / window)
            ph["overdue_visit"] = (f"{days:.0f}天未走访（走访周期{window:.0f}天）",
                                   f"not visited for {days:.0f} days (visit window {window:.0f} days)")

    gap = r.get("gap_class")
    if not is_missing(gap):
        if gap not in GAP_VALUES:
            raise VisitInputError(f"{where}: gap_class {gap!r} is not one of {', '.join(GAP_VALUES)}")
        if gap == "blank":
            comps["gap_cell"] = 1.0
            ph["gap_cell"] = ("所在网格为空白区域", "in a blank cell")
        elif gap == "under-served":
            comps["gap_cell"] = w.under_served_value
            ph["gap_cell"] = ("所在网格服务不足", "in an under-served cell")

    if row_flag(r, "handed_over_unmet", where):
        comps["handover"] = 1.0
        ph["handover"] = ("移交后尚未见面", "handed over to you, not yet met")

    mature = row_date(r, "maturity_date", where)
    if mature is not None:
        n = (mature - day).days
        prod = r.get("maturing_product")
        zh_p, en_p = ("产品", "a product") if is_missing(prod) else (str(prod), str(prod))
        if -w.maturing_grace_days <= n < 0:
            comps["maturing"] = 1.0
            ph["maturing"] = (f"{zh_p}已到期{-n}天（{mature}）", f"{en_p} matured {-n} days ago ({mature})")
        elif 0 <= n <= w.maturing_horizon_days:
            comps["maturing"] = 1.0 - 0.5 * n / w.maturing_horizon_days
            ph["maturing"] = ((f"{zh_p}今天到期", f"{en_p} matures today") if n == 0 else
                              (f"{zh_p}{n}天后到期（{mature}）", f"{en_p} matures in {n} days ({mature})"))
    return comps, ph


def _tasks(tasks, day: dt.date) -> list[dict]:
    """Tasks checked, with their phrase, earliest due first (ties by task id)."""
    out = []
    seen: set = set()
    for i, r in enumerate(_records(tasks, "task")):
        tid = r.get("task_id")
        where = f"task {i}" if is_missing(tid) else f"task {tid!r}"
        for key in ("task_id", "customer_id", "due_date"):
            if is_missing(r.get(key)):
                raise VisitInputError(f"{where}: {key} is missing")
        if tid in seen:
            raise VisitInputError(f"{where}: task_id appears twice")
        seen.add(tid)
        due = row_date(r, "due_date", where)
        ws = clock_to_minutes(r.get("window_start"), field=f"{where}: window_start")
        we = clock_to_minutes(r.get("window_end"), field=f"{where}: window_end")
        if ws is not None and we is not None and ws > we:
            raise VisitInputError(f"{where}: window_start {minutes_to_clock(ws)} is after "
                                  f"window_end {minutes_to_clock(we)}")
        late = (day - due).days
        phrase = ((f"走访任务{tid}（已逾期{late}天，截止{due}）", f"visit task {tid} (overdue {late} days, due {due})")
                  if late > 0 else (f"走访任务{tid}（截止{due}）", f"visit task {tid} (due {due})"))
        out.append({**r, "due_date": due, "window": (ws, we), "phrase": phrase,
                    "service_min": row_number(r, "service_min", where, hi=24 * 60)})
    return sorted(out, key=lambda t: (t["due_date"], str(t["task_id"])))
