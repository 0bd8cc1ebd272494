"""Customers: the big one, streamed in chunks and loaded with COPY (see ``load``)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geodata import tables
from geodata.importers.base import Kind


def _check_customer(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    """An empty county code is the first 6 digits of the village code (as ``places.parent_code``)."""
    given = pa.array(pd.Series(out.get("county_code"), index=f.index, dtype=object), type=pa.large_string(),
                     from_pandas=True)
    village = pa.array(f["village_code"], type=pa.large_string(), from_pandas=True)
    derived = pc.if_else(pc.greater_equal(pc.utf8_length(village), 6), pc.utf8_slice_codeunits(village, 0, 6), None)
    county = pc.coalesce(given, derived)
    county = pc.if_else(pc.equal(county, ""), None, county)
    # Kept as Arrow-backed text: no Python string per row.
    out["county_code"] = pd.Series(county, index=f.index, dtype="str")


CUSTOMERS = Kind(
    name="customers", table=tables.customer, key=("customer_id",),
    fields={"customer_id": "text", "name": "text", "id_number": "text", "phone": "text",
            "legal_entity": "legal_entity", "county_code": "code6", "village_code": "code12",
            "lon": "lon", "lat": "lat", "deposit_balance": "num", "loan_balance": "num",
            "segment": "text", "opened_on": "date"},
    required=("customer_id",), point="optional", check=_check_customer,
    fill={"deposit_balance": 0.0, "loan_balance": 0.0}, streaming=True,
)
