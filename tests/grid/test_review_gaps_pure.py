"""Review of grid.gaps: edge cases of the reasons found in review (each test failed on the code before its fix)."""

from __future__ import annotations

import pandas as pd

from grid.gaps import COMPONENTS, GapConfig, score_cells
from tests.grid.gap_cells import cell

NAN = float("nan")


def test_blank_reason_names_what_makes_it_blank_even_at_weight_zero():
    # The class does not depend on the weights, so a user who weights no_owner and the visit
    # component at 0 still gets 'blank' cells; their reason must still say why they are blank.
    cfg = GapConfig.from_toml_text("[weights]\nno_owner = 0\nno_recent_visit = 0")
    s = score_cells(pd.DataFrame([cell("a", owner_rm=None), cell("b", days_since_visit=NAN)]), cfg)
    s = s.set_index("cell_id")
    assert (s["gap_class"] == "blank").all()
    assert s.at["a", "reason_en"].startswith("potential (100 households) but no RM owns it")
    assert s.at["a", "reason_zh"].startswith("有潜力（100户）但无客户经理负责")
    assert "never visited" in s.at["b", "reason_en"]
    # only open leads weigh: a blank cell with no leads scores 0, but is not explained as 'covered'
    only_leads = GapConfig.from_toml_text(
        "[weights]\n" + "\n".join(f"{c} = 0" for c in COMPONENTS if c != "open_leads"))
    r = score_cells(pd.DataFrame([cell("a", owner_rm=None)]), only_leads).iloc[0]
    assert r["gap_class"] == "blank" and r["score"] == 0.0
    assert r["reason_en"] == "potential (100 households) but no RM owns it"


def test_cell_below_min_households_is_not_explained_as_having_none():
    # min_households = 10: a village of 5 households and no customers has no potential, its households known
    cfg = GapConfig.from_toml_text("[thresholds]\nmin_households = 10")
    s = score_cells(pd.DataFrame([cell("few", households=5, owner_rm=None, customers=0),
                                  cell("none", households=0, customers=0),
                                  cell("unknown", households=NAN, customers=0)]), cfg).set_index("cell_id")
    assert (s["score"] == 0).all() and (s["gap_class"] == "no-potential").all()
    assert s.at["few", "reason_en"] == "no potential: 5 households (fewer than the 10 that count) and no customers"
    assert s.at["few", "reason_zh"] == "无潜力：5户（少于计入的10户）且无客户"
    assert s.at["none", "reason_en"] == s.at["unknown", "reason_en"] == \
        "no potential: no known households and no customers"


def test_no_potential_class_keeps_the_farm_land_out_of_the_blank_cells():
    # Issue 15: a branch manager saw ~330 of 420 cells "blank", mostly farm land with a handful of
    # apportioned households that the owning RM never visits. Those are 'no-potential' (score 0);
    # a cell of few households with customers is still a real gap when nobody visits them.
    farm = cell("farm", households=4.2, customers=0, customers_visited_90d=0, visits_90d=0,
                days_since_visit=NAN, apportioned=True)
    hamlet = cell("hamlet", households=4.2, customers=3, customers_visited_90d=0, visits_90d=0,
                  days_since_visit=200.0)
    village = cell("village", households=300, customers=20, customers_visited_90d=0, visits_90d=0,
                   days_since_visit=NAN)
    s = score_cells(pd.DataFrame([farm, hamlet, village])).set_index("cell_id")
    assert s.at["farm", "gap_class"] == "no-potential" and s.at["farm", "score"] == 0.0
    assert s.at["hamlet", "gap_class"] == "blank" and "no visit in 90 days" in s.at["hamlet", "reason_en"]
    assert s.at["village", "gap_class"] == "blank"
    # households unknown but customers there: scored, and not as "no customers per household"
    unknown = score_cells(pd.DataFrame([cell("u", households=NAN, customers=5)])).iloc[0]
    assert unknown["gap_class"] != "no-potential" and unknown["comp_low_penetration"] == 0.0


def test_unvisited_customers_reason_names_the_window_of_its_measure():
    # customers_visited_90d counts the last 90 days whatever recent_visit_days says; with a 30-day
    # window the reason said "50% of customers not visited in 30 days", a figure nobody measured.
    cfg = GapConfig.from_toml_text("[thresholds]\nrecent_visit_days = 30\n[reasons]\nmax_reasons = 8")
    s = score_cells(pd.DataFrame([cell("a", customers=100, customers_visited_90d=50, days_since_visit=45)]), cfg)
    r = s.iloc[0]
    assert "50% of customers not visited in 90 days" in r["reason_en"]
    assert "50%的客户90天内未走访" in r["reason_zh"]
    assert "no visit in 30 days" in r["reason_en"]  # the visit component does use the configured window


def test_infinite_households_count_as_unknown_and_do_not_squash_the_others():
    # households = inf (e.g. population / household size 0 upstream) made the quantile cap infinite
    # (1.8e308), so every other cell's potential became ~0; it is as unknown as NaN.
    cells = [cell("a", households=50), cell("b", households=100)]
    base = score_cells(pd.DataFrame(cells)).set_index("cell_id")
    with_inf = score_cells(pd.DataFrame(cells + [cell("c", households=float("inf"), customers=0)])).set_index("cell_id")
    assert with_inf.attrs["potential_cap_households"] == base.attrs["potential_cap_households"]
    assert with_inf.loc[["a", "b"], "score"].tolist() == base["score"].tolist()
    assert with_inf.at["c", "score"] == 0.0
    assert with_inf.at["c", "reason_en"] == "no potential: no known households and no customers"


def test_sites_on_an_empty_grid_suggest_nothing():
    import geopandas as gpd
    from shapely.geometry import Point

    from grid.sites import suggest_sites_gdf

    empty = gpd.GeoDataFrame({"households": []}, geometry=[], crs=4326)
    existing = gpd.GeoDataFrame(geometry=[Point(106.0, 38.0)], crs=4326)
    for solver in ("highs", "greedy"):
        r = suggest_sites_gdf(empty, existing, k=2, radius_km=1.0, solver=solver)
        assert r.chosen.tolist() == [] and r.total_demand == 0.0 and r.covered_after == 0.0
        assert len(r.sites) == 0 and r.sites.crs.to_epsg() == 4326
