"""Day plans (grid/visits/plan.py): reasons, tasks first, places, weights; then properties."""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.errors import GridError, VisitConfigError, VisitInputError
from grid.visits import DayRoute, VisitWeights, plan_day, score_candidates
from grid.visits.weights import DEFAULT_TABLE

DAY = dt.date(2026, 12, 7)
ROOT = Path(__file__).resolve().parents[3]


def one(**fields) -> pd.Series:
    return score_candidates([{"customer_id": "C1", **fields}], plan_date=DAY).iloc[0]


def test_each_reason_scores_and_speaks_both_languages():
    r = one(open_leads=3)
    assert r["score"] == 30 and r["reason_en"] == "3 open leads" and r["reason_zh"] == "3条线索未跟进"
    assert one(open_leads=3, lead_priority=0.5)["score"] == 15
    assert one(open_leads=1)["reason_en"] == "1 open lead"
    r = one(last_visit_date="2026-07-01")  # 159 days, window 90: 0.5 + 0.5 * 69/90
    assert r["score"] == pytest.approx(20 * (0.5 + 0.5 * 69 / 90), abs=1e-6)
    assert r["reason_en"] == "not visited for 159 days (visit window 90 days)"
    assert r["reason_zh"] == "159天未走访（走访周期90天）"
    assert one(last_visit_date="2026-11-01")["score"] == 0
    assert one(days_since_visit=100, visit_window_days=30)["score"] == 20  # capped at 1
    assert one(last_visit_date=None)["reason_en"] == "never visited"
    assert one(gap_class="blank")["score"] == 15 and one(gap_class="under-served")["score"] == 7.5
    assert one(gap_class="covered")["score"] == 0
    assert one(handed_over_unmet="yes")["reason_zh"] == "移交后尚未见面"
    r = one(maturity_date="2026-12-22", maturing_product="定期存款")
    assert r["score"] == pytest.approx(10 * (1 - 0.5 * 15 / 30)) and r["reason_zh"] == "定期存款15天后到期（2026-12-22）"
    assert one(maturity_date="2026-12-03")["reason_en"] == "a product matured 4 days ago (2026-12-03)"
    assert one(maturity_date="2026-11-01")["score"] == 0 and one(maturity_date="2027-03-01")["score"] == 0


def test_reasons_are_largest_first_and_capped():
    r = one(open_leads=3, handed_over_unmet=True, gap_class="blank", maturity_date="2026-12-07",
            last_visit_date=None)
    assert r["score"] == 100
    assert r["reasons"] == ("open_lead", "handover", "overdue_visit")
    assert r["reason_en"] == "3 open leads; handed over to you, not yet met; never visited"


def test_no_column_means_unknown_not_never_visited():
    assert one()["score"] == 0 and one()["reason_en"] == ""


def test_place_prefers_the_customer_point_then_the_village():
    s = score_candidates([
        {"customer_id": "A", "lon": 106.1, "lat": 38.1, "village_lon": 106.2, "village_lat": 38.2},
        {"customer_id": "B", "lon": None, "lat": None, "village_lon": 106.2, "village_lat": 38.2},
        {"customer_id": "C"},
    ], plan_date=DAY).set_index("customer_id")
    assert s.loc["A", ["place_source", "lon"]].tolist() == ["customer", 106.1]
    assert s.loc["B", ["place_source", "lon"]].tolist() == ["village", 106.2]
    assert pd.isna(s.loc["C", "place_source"]) and math.isnan(s.loc["C", "lon"])


CANDS = [
    {"customer_id": "C1", "open_leads": 3, "lon": 106.10, "lat": 38.20},
    {"customer_id": "C2", "gap_class": "blank", "village_lon": 106.12, "village_lat": 38.21},
    {"customer_id": "C3", "handed_over_unmet": True, "lon": 106.11, "lat": 38.22},
    {"customer_id": "C4", "gap_class": "under-served", "lon": 106.13, "lat": 38.19},  # 7.5 < min_score
    {"customer_id": "C5", "maturity_date": "2026-12-10", "lon": 106.09, "lat": 38.18},
]
TASKS = [
    {"task_id": "T2", "customer_id": "C9", "due_date": "2026-12-20", "lon": 106.2, "lat": 38.3},
    {"task_id": "T1", "customer_id": "C2", "due_date": "2026-12-01", "window_start": "14:00",
     "window_end": "15:00"},
    {"task_id": "T3", "customer_id": "C2", "due_date": "2026-12-25"},
]


def test_plan_puts_tasks_first_then_added_then_ranked():
    p = plan_day(CANDS, plan_date=DAY, tasks=TASKS, added=["C5"], removed=["C1", "C2"])
    assert p["stop_id"].tolist() == ["C2", "C9", "C5", "C3"]
    assert p["kind"].tolist() == ["task", "task", "added", "proposed"]
    assert p["rank"].tolist() == [1, 2, 3, 4]
    c2 = p.iloc[0]
    # the overdue task leads; the customer's own reasons and the second task follow
    assert c2["reason_en"] == "visit task T1 (overdue 6 days, due 2026-12-01); in a blank cell; also task T3"
    assert c2["reason_zh"].startswith("走访任务T1（已逾期6天，截止2026-12-01）；所在网格为空白区域")
    assert (c2["window_start"], c2["window_end"], c2["required"], c2["service_min"]) == ("14:00", "15:00", True, 30)
    assert c2["place_source"] == "village"
    assert p.iloc[1]["place_source"] == "customer" and p.iloc[1]["reason_en"] == "visit task T2 (due 2026-12-20)"
    assert p.iloc[2]["reason_en"].startswith("added by the RM; ")
    assert p.iloc[3]["priority"] == pytest.approx(0.25)


def test_tasks_stay_past_max_stops_and_low_scores_are_not_proposed():
    p = plan_day(CANDS, plan_date=DAY, tasks=TASKS, max_stops=1)
    assert p["kind"].tolist() == ["task", "task"]
    p = plan_day(CANDS, plan_date=DAY, max_stops=10)
    # C5 (matures in 3 days: 9.5) and C4 (under-served: 7.5) score below min_score 10
    assert p["stop_id"].tolist() == ["C1", "C3", "C2"]
    w = VisitWeights.from_toml_text("[thresholds]\nmin_score = 4\n[weights]\nhandover = 100")  # C4: 4.3, C5: 5.4
    p = plan_day(CANDS, plan_date=DAY, weights=w)
    assert p["stop_id"].tolist() == ["C3", "C1", "C2", "C5", "C4"]


def test_plan_rows_feed_the_route():
    p = plan_day(CANDS, plan_date=DAY, tasks=TASKS)
    r = DayRoute.from_records(p, start=(106.1, 38.2)).solve(no_improvement=300)
    assert sorted(r.kept_ids + r.dropped["stop_id"].tolist()) == sorted(p["stop_id"])
    assert set(r.kept_ids) == set(p["stop_id"])
    c2 = r.route.set_index("stop_id").loc["C2"]
    assert 14 * 60 <= c2["start_min"] <= 15 * 60 and c2["required"]


def test_shipped_toml_equals_the_built_in_defaults_and_is_package_data():
    shipped = tomllib.loads((ROOT / "grid" / "visits" / "visit_weights.toml").read_text(encoding="utf-8"))
    assert shipped == DEFAULT_TABLE
    assert VisitWeights.from_table(shipped) == VisitWeights.default()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["grid.visits"]


@pytest.mark.parametrize("text, match", [
    ("[weights]\nopen_leads = 3", "weights.open_leads: unknown key"),
    ("[weight]\nopen_lead = 3", "weight: unknown section"),
    ("[weights]\nopen_lead = -1", "weights.open_lead: must be >= 0"),
    ("[weights]\nopen_lead = true", "weights.open_lead: must be a number"),
    ("[plan]\nmax_stops = 2.5", "plan.max_stops: must be a whole number"),
    ("[weights]\nopen_lead = 0\noverdue_visit = 0\ngap_cell = 0\nhandover = 0\nmaturing = 0", "at least one"),
    ("[weights", "not valid TOML"),
])
def test_bad_weights_name_the_key(text, match):
    with pytest.raises(VisitConfigError, match=match) as e:
        VisitWeights.from_toml_text(text)
    assert isinstance(e.value, GridError)


@pytest.mark.parametrize("cands, tasks, match", [
    ([{"customer_id": "A"}, {"customer_id": "A"}], [], "candidate 1: customer_id 'A' appears twice"),
    ([{"customer_id": "A", "last_visit_date": "yesterday"}], [], "last_visit_date 'yesterday' is not a date"),
    ([{"customer_id": "A", "gap_class": "empty"}], [], "gap_class 'empty' is not one of"),
    ([{"customer_id": "A", "open_leads": -1}], [], "open_leads must be between"),
    ([{"customer_id": "A", "lead_priority": 2}], [], "lead_priority must be between 0 and 1"),
    ([{"customer_id": "A", "lon": 500, "lat": 38}], [], "lon must be between -180 and 180"),
    ([], [{"task_id": "T", "customer_id": "A"}], "task 'T': due_date is missing"),
    ([], [{"task_id": "T", "customer_id": "A", "due_date": "2026-12-08", "window_start": "12:00",
           "window_end": "11:00"}], "task 'T': window_start 12:00 is after window_end 11:00"),
    ([{"customer_id": "A"}], [], None),
])
def test_bad_rows_name_row_and_field(cands, tasks, match):
    if match is None:
        with pytest.raises(VisitInputError, match="added stop 'Z' is not one of the candidates"):
            plan_day(cands, plan_date=DAY, added=["Z"])
        return
    with pytest.raises(VisitInputError, match=match):
        plan_day(cands, plan_date=DAY, tasks=tasks)


# -------------------------------------------------------------------- properties
candidate = st.fixed_dictionaries({
    "open_leads": st.integers(0, 5),
    "gap_class": st.sampled_from(["blank", "under-served", "covered", None]),
    "handed_over_unmet": st.booleans(),
    "days_since_visit": st.one_of(st.none(), st.integers(0, 400)),
    "maturity_date": st.one_of(st.none(), st.dates(dt.date(2026, 11, 1), dt.date(2027, 2, 1))),
})


@settings(max_examples=40, deadline=None)
@given(st.lists(candidate, max_size=25), st.lists(st.integers(0, 30), max_size=6, unique=True),
       st.integers(0, 15), st.randoms(use_true_random=False))
def test_plan_properties(rows, task_customers, max_stops, rnd):
    cands = [{"customer_id": f"C{i:02d}", **r} for i, r in enumerate(rows)]
    tasks = [{"task_id": f"T{j}", "customer_id": f"C{c:02d}", "due_date": DAY + dt.timedelta(days=j % 3)}
             for j, c in enumerate(task_customers)]
    p = plan_day(cands, plan_date=DAY, tasks=tasks, max_stops=max_stops)
    shuffled = cands[:]
    rnd.shuffle(shuffled)
    q = plan_day(shuffled, plan_date=DAY, tasks=tasks[::-1], max_stops=max_stops)
    # deterministic: the same plan whatever order the rows arrive in
    assert p[["stop_id", "kind", "reason_en"]].equals(q[["stop_id", "kind", "reason_en"]])
    # every task's customer is in, first, once
    n_task = len({t["customer_id"] for t in tasks})
    assert p["kind"].tolist()[:n_task] == ["task"] * n_task
    assert set(p["stop_id"][:n_task]) == {t["customer_id"] for t in tasks}
    assert p["stop_id"].is_unique
    assert len(p) <= max(max_stops, n_task)
    proposed = p[p["kind"] == "proposed"]
    assert (proposed["score"] >= 10).all() and proposed["score"].is_monotonic_decreasing
    assert (proposed["reason_en"] != "").all()
