"""Customers: the big one, streamed in chunks and loaded with COPY (see ``load``)."""

from __future__ import annotations

import pandas as pd

from geodata import tables
from geodata.importers.base import Kind
from geodata.importers.places import parent_code


def _check_customer(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    parent_code(out, "county_code", f["village_code"], 6)
    out["county_code"] = pd.Series(out["county_code"], dtype=object).where(lambda s: s != "", None)


CUSTOMERS = Kind(
    name="customers", table=tables.customer, key=("customer_id",),
    fields={"customer_id": "text", "name": "text", "id_number": "text", "phone": "text",
            "legal_entity": "legal_entity", "county_code": "code6", "village_code": "code12",
            "lon": "lon", "lat": "lat", "deposit_balance": "num", "loan_balance": "num",
            "segment": "text", "opened_on": "date"},
    required=("customer_id",), point="optional", check=_check_customer,
    fill={"deposit_balance": 0.0, "loan_balance": 0.0}, streaming=True,
)
