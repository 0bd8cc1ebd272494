"""Small literal inputs for the page builders: a 2×2 block of cells, RMs R1/R2, an outlet, customers."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import box

from maps.base import Background, PageOptions

OPTIONS = PageOptions(
    tag_url="https://tags.bank.test/customers/{customer_id}",
    lead_url="https://leads.bank.test/leads?customer={customer_id}",
    tag_cell_url="https://tags.bank.test/customers?ids={customer_ids}",
    lead_cell_url="https://leads.bank.test/leads?customers={customer_ids}",
)
CDN_MARKERS = ("cdn.", "unpkg", "jsdelivr", "cdnjs", "googleapis", "bootstrapcdn")


def cells() -> gpd.GeoDataFrame:
    """A (R1), B (R1), C (R2) and D (no owner) as 0.02° squares near Yinchuan."""
    return gpd.GeoDataFrame({
        "cell_id": ["A", "B", "C", "D"], "label": ["甲村", "乙村", "丙村", "丁村"],
        "customers": [3, 2, 1, 0], "households": [100, 50, 0, 80], "deposit": [3000.0, 2000.0, 500.0, 0.0],
        "owner_rm": ["R1", "R1", "R2", None], "score": [20.0, 35.0, 55.0, 90.0],
        "gap_class": ["covered", "covered", "under-served", "blank"],
        "reason_zh": [None, None, None, "有潜力但无人负责"],
        "components": [{"contrib_potential": 5.0}, {}, {}, {"contrib_potential": 40.0, "contrib_no_owner": 30.0}],
    }, geometry=[box(106.00, 38.00, 106.02, 38.02), box(106.02, 38.00, 106.04, 38.02),
                 box(106.00, 38.02, 106.02, 38.04), box(106.02, 38.02, 106.04, 38.04)], crs=4326)


CELL_CUSTOMERS = {"A": ["C001", "C002", "C003"], "B": ["C004", "C005"], "C": ["C006"]}
RMS = pd.DataFrame({"rm_id": ["R1", "R2"], "name": ["张*", "李*"]})
OUTLETS = pd.DataFrame({"code": ["O1"], "name": ["城关支行"], "lon": [106.005], "lat": [38.005]})
SERVICE_POINTS = pd.DataFrame({"code": ["S1"], "name": ["王团服务点"], "lon": [106.035], "lat": [38.035]})
BACKGROUND = Background(
    county=box(105.99, 37.99, 106.05, 38.05),
    townships=pd.DataFrame({"name": ["城关镇"], "lon": [106.015], "lat": [38.015]}),
    villages=pd.DataFrame({"name": ["甲村", "乙村"], "lon": [106.01, 106.03], "lat": [38.01, 38.01]}),
)


def customers(n: int = 6, seed: int = 0) -> pd.DataFrame:
    """n customers spread over cells A and B (R1's) and C (R2's); every third has an open lead."""
    rng = np.random.default_rng(seed)
    cell = np.array(["A", "B", "C"])[np.arange(n) % 3]
    x0 = np.select([cell == "A", cell == "B"], [106.00, 106.02], 106.00)
    y0 = np.where(cell == "C", 38.02, 38.00)
    return pd.DataFrame({
        "customer_id": [f"K{i:05d}" for i in range(n)], "name": ["张三丰" if i % 2 else "欧阳娜娜" for i in range(n)],
        "lon": x0 + rng.uniform(0.002, 0.018, n), "lat": y0 + rng.uniform(0.002, 0.018, n),
        "cell_id": cell, "open_leads": np.where(np.arange(n) % 3 == 0, 2, 0),
    })


def villages() -> pd.DataFrame:
    """Six villages: two share one point (merged), one has no point (unplaced)."""
    return pd.DataFrame({
        "code": [f"64012110000{i}" for i in range(1, 7)], "name": ["甲村", "乙村", "丙村", "丁村", "戊村", "己村"],
        "lon": [106.01, 106.03, 106.01, 106.01, 106.03, np.nan], "lat": [38.01, 38.01, 38.03, 38.03, 38.03, np.nan],
    })


def village_cells() -> gpd.GeoDataFrame:
    """Village cells: 丙村 and 丁村 merged into one cell."""
    c = cells()[["cell_id", "label", "geometry"]].copy()
    c["label"] = ["甲村", "乙村", "丙村、丁村", "戊村"]
    c["village_codes"] = [["640121100001"], ["640121100002"], ["640121100003", "640121100004"], ["640121100005"]]
    return c
