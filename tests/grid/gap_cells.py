"""Measure rows for grid.gaps tests: one well-served cell, overridable field by field."""

from __future__ import annotations


def cell(cell_id, **over):
    """One well-served cell (owned, visited, near facilities), overridable."""
    base = dict(
        cell_id=cell_id, households=100, population=280, customers=100, deposit=5e6, loan=1e6,
        owner_rm="RM01", visits_90d=30, customers_visited_90d=100, days_since_visit=0.0,
        dist_outlet_km=0.0, dist_service_point_km=0.0, open_leads=0, apportioned=False,
    )
    base.update(over)
    return base
