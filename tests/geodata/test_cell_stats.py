"""Cell statistics counted from the placement (an assignment) equal the ones summed in SQL (a refresh).

Real reference data (the 22 counties, the 2,912 villages) and the demo's synthetic bank of the demo
county (customers with cents, some without a point or outside the county, visits); plain, refined
(mixed-resolution) H3 grids and plain and refined village grids.
"""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from api.demo import DemoContext, step_reference, step_synthetic
from api.settings import AuthSettings, DatabaseSettings, Settings
from geodata import assign, cell_stats, grids
from geodata.refine_grid import RefineOptions

AS_OF = "2025-07-01T00:00:00+00:00"
COLUMNS = ("cell_id", "customers", "households", "population", "apportioned", "deposit", "loan", "visits_90d",
           "customers_visited_90d", "last_visit_at", "as_of")


@pytest.fixture(scope="module")
def bank(engine, db_url, tmp_path_factory):
    home = tmp_path_factory.mktemp("stats-home")
    s = Settings(db=DatabaseSettings(url=db_url, home=home), auth=AuthSettings(secret_key="t"))
    ctx = DemoContext(engine=engine, settings=s, customers=4000, seed=11, workdir=home / "demo", as_of=AS_OF)
    step_reference(ctx)
    step_synthetic(ctx)
    with engine.begin() as conn:
        # Cents that a float sum would get wrong, and a customer of the county with a balance but no cell.
        conn.execute(text("UPDATE customer SET deposit_balance = deposit_balance + 0.01, loan_balance = 0.07 "
                          "WHERE customer_id IN (SELECT customer_id FROM customer ORDER BY customer_id LIMIT 500)"))
        conn.execute(text("INSERT INTO customer (customer_id, county_code, deposit_balance) "
                          "VALUES ('NOWHERE', :c, 123.45)"), {"c": ctx.county})
    return ctx


def _stats(conn, gid: int) -> pd.DataFrame:
    rows = conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM cell_stat WHERE grid_id = :g ORDER BY cell_id"),
                        {"g": gid}).all()
    return pd.DataFrame(rows, columns=list(COLUMNS))


@pytest.mark.slow
@pytest.mark.parametrize("kind, res, refine", [
    ("h3", 8, None), ("h3", 8, RefineOptions(share=0.05, max_res=10)),
    ("village", None, None), ("village", None, RefineOptions(share=0.05, village_res=8)),
])
def test_statistics_from_the_placement_equal_the_sql_ones(engine, bank, kind, res, refine):
    with engine.begin() as conn:
        g = grids.build_grid(conn, county_code=bank.county, kind=kind, resolution=res, refine=refine)
        rep = assign.assign_customers(conn, grid_id=g["id"], as_of=AS_OF)
        fast = _stats(conn, g["id"])
        # The SQL path: the same grid's figures summed again from the stored assignment.
        cell_stats.refresh_cell_stats(conn, grid_id=g["id"], as_of=AS_OF)
        slow = _stats(conn, g["id"])
        placed = conn.execute(text("SELECT sum(deposit_balance) FROM customer c JOIN customer_cell cc USING "
                                   "(customer_id) WHERE cc.grid_id = :g AND cc.cell_id IS NOT NULL"),
                              {"g": g["id"]}).scalar()
    if refine is not None:
        assert g["report"]["refined"]["cells_split"] > 0
    if kind == "h3" and refine is not None:
        assert len({c[1] for c in fast["cell_id"]}) > 1  # cells of several resolutions
    assert rep["customers"] > 3000 and rep["no_location"] >= 1
    assert fast["customers"].sum() == rep["by_point"] + rep["by_village_code"] > 0
    assert fast["visits_90d"].sum() > 0 and fast["last_visit_at"].notna().any()
    assert fast["deposit"].sum() == placed  # exact decimals, not floats
    pd.testing.assert_frame_equal(fast, slow)


def test_totals_frame_keeps_cells_with_customers_and_exact_cents():
    totals = np.array([[2, 0, 3], [6, 5, 2**52 + 10], [-6, 0, -105]], dtype=np.int64)
    out = cell_stats.totals_frame(np.array(["a", "b", "c"]), totals)
    assert out.to_dict("list") == {"cell_id": ["a", "c"], "customers": [2, 3], "deposit": ["0.06", "45035996273705.06"],
                                   "loan": ["-0.06", "-1.05"]}
