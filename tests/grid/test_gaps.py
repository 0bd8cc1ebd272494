"""Coverage-gap scores on hand-built cells with known answers."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.gap_config import DEFAULT_TABLE
from grid.gaps import (
    COMPONENTS,
    GapConfig,
    GapConfigError,
    GapInputError,
    potential_cap,
    rank_blank_areas,
    score_cells,
)
from tests.grid.gap_cells import cell

NAN = float("nan")
CONTRIB = [f"contrib_{c}" for c in COMPONENTS]


def frame(*cells):
    return pd.DataFrame(list(cells))


# A fixed cap makes the potential component a known number in every test below.
CAP100 = GapConfig.from_toml_text("[normalisation]\npotential_cap_households = 100")


def test_unowned_cell_with_potential_is_blank_with_that_reason():
    m = frame(cell("v1", households=320, owner_rm=None, customers=0, customers_visited_90d=0,
                   visits_90d=0, days_since_visit=NAN))
    s = score_cells(m, CAP100).iloc[0]
    assert s["gap_class"] == "blank"
    assert s["comp_potential"] == 1.0
    assert s["comp_no_owner"] == 1.0
    assert s["comp_no_recent_visit"] == 1.0
    assert s["comp_low_penetration"] == 1.0
    assert s["reason_zh"].startswith("有潜力（320户）但无客户经理负责")
    assert "从未走访" in s["reason_zh"]
    assert s["reason_en"].startswith("potential (320 households) but no RM owns it")
    assert "never visited" in s["reason_en"]
    # potential 25 + penetration 20 + owner 20 + visit 10 of the default 100 points
    assert s["score"] == pytest.approx(75.0)


def test_stale_visit_makes_an_owned_cell_blank():
    m = frame(cell("v1", days_since_visit=120, visits_90d=0, customers_visited_90d=0))
    s = score_cells(m, CAP100).iloc[0]
    assert s["gap_class"] == "blank"
    assert s["comp_no_owner"] == 0.0
    assert s["comp_no_recent_visit"] == 1.0
    assert s["comp_unvisited_customers"] == 1.0
    assert "90天内无走访" in s["reason_zh"]
    assert "no visit in 90 days" in s["reason_en"]
    assert "no RM owns it" not in s["reason_en"]


def test_visit_inside_the_window_is_not_blank():
    m = frame(cell("v1", days_since_visit=90))
    s = score_cells(m, CAP100).iloc[0]
    assert s["gap_class"] != "blank"
    assert s["comp_no_recent_visit"] == 1.0


def test_well_covered_cell_is_covered():
    m = frame(cell("v1", days_since_visit=9, customers_visited_90d=80, dist_outlet_km=2.0,
                   dist_service_point_km=1.0, open_leads=1))
    s = score_cells(m, CAP100).iloc[0]
    assert s["gap_class"] == "covered"
    assert s["penetration"] == 1.0
    assert s["balance_per_household"] == 60_000.0
    # components with known answers
    assert s["comp_low_penetration"] == 0.0
    assert s["comp_no_recent_visit"] == pytest.approx(0.1)
    assert s["comp_unvisited_customers"] == pytest.approx(0.2)
    assert s["comp_far_outlet"] == pytest.approx(0.2)
    assert s["comp_far_service_point"] == pytest.approx(0.2)
    assert s["comp_open_leads"] == pytest.approx(0.2)
    # 25 + 0.1*10 + 0.2*5 + 0.2*5 + 0.2*10 + 0.2*5
    assert s["score"] == pytest.approx(31.0)


def test_under_served_between_blank_and_covered():
    m = frame(cell("v1", customers=20, customers_visited_90d=10, dist_service_point_km=9.0))
    s = score_cells(m, CAP100).iloc[0]
    # 25 + 0.8*20 + 0.5*5 + 10 = 53.5 >= 35
    assert s["score"] == pytest.approx(53.5)
    assert s["gap_class"] == "under-served"
    assert s["reason_en"].split("; ")[0] == "potential (100 households)"
    assert "low penetration (0.20 customers per household, target 1)" in s["reason_en"]
    raised = GapConfig.from_toml_text(
        "[normalisation]\npotential_cap_households = 100\n[thresholds]\nunder_served_score = 60"
    )
    assert score_cells(m, raised).iloc[0]["gap_class"] == "covered"


def test_zero_household_cell_scores_zero_and_is_not_blank():
    m = frame(cell("empty", households=0, owner_rm=None, customers=0, days_since_visit=NAN,
                   dist_outlet_km=40.0))
    s = score_cells(m).iloc[0]
    assert s["score"] == 0.0
    assert s["comp_potential"] == 0.0
    assert s["gap_class"] == "no-potential"
    assert s["reason_en"] == "no potential: no known households and no customers"
    assert math.isnan(s["penetration"])


def test_apportioned_potential_says_so():
    m = frame(cell("v1", households=45.5, owner_rm=None, apportioned=True))
    s = score_cells(m, CAP100).iloc[0]
    # An apportioned share is stored as it is and said rounded, marked 约 / ≈ (issue 15: it read 45.5户).
    assert "约46户，按共用的乡镇/县点位分摊" in s["reason_zh"] and "45.5" not in s["reason_zh"]
    assert "potential (≈46 households, apportioned from a shared township/county point)" in s["reason_en"]
    texts = frame(cell("t", apportioned="true"), cell("f", apportioned="false"), cell("n", apportioned=NAN))
    flags = score_cells(texts, CAP100).set_index("cell_id")["reason_en"].str.contains("apportioned")
    assert flags.to_dict() == {"f": False, "n": False, "t": True}


def test_potential_cap_is_the_95th_percentile_of_cells_with_potential():
    h = list(range(1, 101))
    # cells below min_households (15 by default) have no potential and do not set the cap
    assert potential_cap(h + [0, 0, 0]) == pytest.approx(np.quantile(h[14:], 0.95))
    m = frame(*[cell(f"c{i:03d}", households=v) for i, v in enumerate(h)])
    s = score_cells(m)
    assert s.attrs["potential_cap_households"] == pytest.approx(np.quantile(h[14:], 0.95))
    assert s.set_index("cell_id").loc["c099", "comp_potential"] == 1.0
    assert s.set_index("cell_id").loc["c009", "comp_potential"] == pytest.approx(10 / np.quantile(h[14:], 0.95))  # customers: it counts


def test_contributions_sum_exactly_to_score():
    m = frame(cell("a", owner_rm=None), cell("b", days_since_visit=NAN, open_leads=9),
              cell("c", households=7, customers=1, dist_outlet_km=NAN))
    s = score_cells(m)
    assert (s[CONTRIB].sum(axis=1) == s["score"]).all()
    w = GapConfig.default().normalised_weights()
    for c in COMPONENTS:
        assert np.allclose(s[f"contrib_{c}"], w[c] * s[f"comp_{c}"])


def test_weights_are_normalised_so_only_ratios_matter():
    m = frame(cell("a", owner_rm=None, customers=30))
    doubled = "\n".join(f"{c} = {2 * v}" for c, v in GapConfig.default().weights.items())
    s1 = score_cells(m)
    s2 = score_cells(m, GapConfig.from_toml_text("[weights]\n" + doubled))
    assert s2["score"].iloc[0] == pytest.approx(s1["score"].iloc[0])
    only_owner = GapConfig.from_toml_text(
        "[weights]\n" + "\n".join(f"{c} = 0" for c in COMPONENTS if c != "no_owner")
    )
    assert score_cells(m, only_owner)["score"].iloc[0] == 100.0


def test_reason_lists_at_most_max_reasons_phrases_by_contribution():
    m = frame(cell("a", customers=10, customers_visited_90d=0, days_since_visit=60,
                   dist_outlet_km=30, dist_service_point_km=30, open_leads=50))
    one = GapConfig.from_toml_text("[reasons]\nmax_reasons = 1")
    s = score_cells(m, one).iloc[0]
    assert s["gap_class"] != "blank"
    # the largest contribution is potential (25 points at the 1-cell quantile cap)
    assert s["reason_en"] == "potential (100 households)"
    s3 = score_cells(m).iloc[0]
    assert s3["reason_en"] == (
        "potential (100 households); low penetration (0.10 customers per household, target 1); "
        "30.0 km from the nearest service point"
    )
    assert s3["reason_zh"] == "有潜力（100户）；渗透率低（每户0.10个客户，目标1）；距最近服务点30.0公里"


def test_rank_blank_areas_orders_by_score_then_cell_id():
    m = frame(
        cell("z", owner_rm=None),
        cell("b", owner_rm=None),
        cell("a", owner_rm=None),
        cell("big", households=300, owner_rm=None),
        cell("ok"),
    )
    ranked = rank_blank_areas(score_cells(m, CAP100))
    assert ranked["cell_id"].tolist() == ["big", "a", "b", "z"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    assert rank_blank_areas(score_cells(m, CAP100), top=2)["cell_id"].tolist() == ["big", "a"]


def test_deterministic_whatever_the_row_order():
    cells = [cell(f"c{i}", households=10 * i, owner_rm=None if i % 3 else "R", open_leads=i % 4,
                  days_since_visit=NAN if i % 2 else i) for i in range(12)]
    a = score_cells(frame(*cells))
    b = score_cells(frame(*reversed(cells)))
    pd.testing.assert_frame_equal(a, b)
    assert a["cell_id"].tolist() == sorted(a["cell_id"])


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[weights]\nno_owner = -1", "weights.no_owner"),
        ("[weights]\nno_ownr = 1", "weights.no_ownr"),
        ("[weights]\npotential = 'high'", "weights.potential"),
        ("[weights]\npotential = true", "weights.potential"),
        ("[thresholds]\nrecent_visit_days = 0", "thresholds.recent_visit_days"),
        ("[thresholds]\nrecent_visit_days = 30.5", "thresholds.recent_visit_days"),
        ("[thresholds]\nunder_served_score = 120", "thresholds.under_served_score"),
        ("[normalisation]\npotential_quantile = 1.5", "normalisation.potential_quantile"),
        ("[reasons]\nmax_reasons = 0", "reasons.max_reasons"),
        ("[colours]\nred = 1", "colours"),
        ("weights = 3", "weights"),
    ],
)
def test_config_errors_name_the_bad_key(text, key):
    with pytest.raises(GapConfigError, match=key.replace(".", r"\.")):
        GapConfig.from_toml_text(text)


def test_config_all_zero_weights_and_bad_toml_are_rejected():
    with pytest.raises(GapConfigError, match="weights"):
        GapConfig.from_toml_text("[weights]\n" + "\n".join(f"{c} = 0" for c in COMPONENTS))
    with pytest.raises(GapConfigError, match="TOML"):
        GapConfig.from_toml_text("[weights\n")


def test_default_config_matches_the_documented_file():
    # The defaults are data in grid (no file read there); docs/gap_weights.toml documents them key by key.
    text = (Path(__file__).resolve().parents[2] / "docs" / "gap_weights.toml").read_text(encoding="utf-8")
    assert tomllib.loads(text) == {s: dict(t) for s, t in DEFAULT_TABLE.items()}
    cfg = GapConfig.default()
    assert GapConfig.from_toml_text(text) == cfg
    assert cfg.recent_visit_days == 90
    assert cfg.potential_quantile == 0.95
    assert set(cfg.weights) == set(COMPONENTS)
    assert sum(cfg.normalised_weights().values()) == pytest.approx(100.0)
    partial = GapConfig.from_toml_text("[weights]\nopen_leads = 15")
    assert partial.weights["open_leads"] == 15.0
    assert partial.weights["no_owner"] == cfg.weights["no_owner"]


def test_bad_measures_are_rejected():
    with pytest.raises(GapInputError, match="owner_rm"):
        score_cells(frame(cell("a")).drop(columns=["owner_rm"]))
    with pytest.raises(GapInputError, match="duplicate cell_id"):
        score_cells(frame(cell("a"), cell("a")))


def test_empty_string_owner_counts_as_no_owner():
    s = score_cells(frame(cell("a", owner_rm=" ")), CAP100).iloc[0]
    assert s["comp_no_owner"] == 1.0
    assert s["gap_class"] == "blank"


finite = st.floats(0, 1e4, allow_nan=False)
maybe_nan = st.one_of(st.just(NAN), st.floats(0, 500, allow_nan=False))
cells_strategy = st.lists(
    st.fixed_dictionaries({
        "households": st.one_of(st.just(0.0), finite), "customers": finite,
        "owner_rm": st.sampled_from([None, "R1"]), "customers_visited_90d": finite,
        "days_since_visit": maybe_nan, "dist_outlet_km": maybe_nan,
        "dist_service_point_km": maybe_nan, "open_leads": st.integers(0, 50),
    }),
    min_size=1, max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(cells_strategy)
def test_property_components_bounded_and_contributions_add_up(rows):
    m = frame(*[cell(f"c{i:02d}", **r) for i, r in enumerate(rows)])
    s = score_cells(m)
    comps = s[[f"comp_{c}" for c in COMPONENTS]].to_numpy()
    assert ((comps >= 0) & (comps <= 1)).all()
    assert ((s["score"] >= 0) & (s["score"] <= 100 + 1e-9)).all()
    assert (s[CONTRIB].sum(axis=1) == s["score"]).all()
    assert set(s["gap_class"]) <= {"blank", "under-served", "covered", "no-potential"}
    # fewer than min_households (15) and no customers: no potential, score 0; every other cell counts
    no_potential = (s["households"] < 15).to_numpy() & (m["customers"].to_numpy() == 0)
    assert (s.loc[no_potential, "score"] == 0).all()
    assert (s.loc[no_potential, "gap_class"] == "no-potential").all()
    assert (s.loc[~no_potential, "gap_class"] != "no-potential").all()
    assert s["reason_en"].str.len().gt(0).all()


@settings(max_examples=40, deadline=None)
@given(cells_strategy, st.integers(0, 24), st.floats(1, 1e4))
def test_property_more_households_never_lowers_potential(rows, pick, extra):
    m = frame(*[cell(f"c{i:02d}", **r) for i, r in enumerate(rows)])
    i = pick % len(m)
    more = m.copy()
    more.loc[i, "households"] = m.loc[i, "households"] + extra
    # a fixed cap, otherwise the quantile itself moves with the cell
    a = score_cells(m, CAP100)
    b = score_cells(more, CAP100)
    assert b.loc[i, "comp_potential"] >= a.loc[i, "comp_potential"]
