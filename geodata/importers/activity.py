"""What RMs do and what the bank's other systems know: visits, leads, customer tags."""

from __future__ import annotations

import pandas as pd

from geodata import tables
from geodata.importers.base import Kind
from geodata.visits.checkins import merge_imported


def _check_visit(f: pd.DataFrame, out: dict, ctx, rej) -> None:
    # On behalf of a legal entity only its own RMs are known (``scoped`` checks the rest in SQL).
    rms = ctx.known.get("rm")
    # Only checkable once RMs are stored; visits may legitimately arrive first.
    if rms:
        missing = (f["rm_code"] != "") & ~f["rm_code"].isin(rms)
        rej.add(missing.to_numpy(), "rm_code", "no such RM (import rms first)", f["rm_code"])


def _merge_checkins(cur, ctx) -> None:
    """Imported visits and check-ins are the same data: an imported row near a check-in folds into it."""
    merged = merge_imported(cur)
    if merged:
        ctx.extra["merged_with_checkins"] = merged


VISITS = Kind(
    name="visits", table=tables.visit, key=("customer_id", "rm_code", "visited_at"),
    fields={"customer_id": "text", "rm_code": "text", "visited_at": "datetime", "channel": "text",
            "outcome": "text", "lon": "lon", "lat": "lat"},
    required=("customer_id", "rm_code", "visited_at"), point="optional", check=_check_visit,
    streaming=True, after=_merge_checkins,
)

LEADS = Kind(
    name="leads", table=tables.lead, key=("lead_id",),
    fields={"lead_id": "text", "customer_id": "text", "lead_type": "text",
            "status": "enum:open|closed", "created_at": "datetime", "due_on": "date"},
    required=("lead_id", "customer_id", "lead_type"), fill={"status": "open"}, streaming=True,
)

TAGS = Kind(
    name="tags", table=tables.customer_tag, key=("customer_id", "tag"),
    fields={"customer_id": "text", "tag": "text"},
    required=("customer_id", "tag"), streaming=True,
)
