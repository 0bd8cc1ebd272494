"""Scoped reads: what a signed-in user may see, filtered and paged in SQL.

Every rule comes from :mod:`geodata.scope`; rows outside a user's scope are
never fetched. One module per concept:

- :mod:`~geodata.reads.rows`: any table's rows under a scope kind, paged (the collections catalog uses it);
- :mod:`~geodata.reads.access`: is this grid, cell, scenario or RM in scope (NotFound, never the data);
- :mod:`~geodata.reads.cells`: a grid's cells as GeoJSON, roll-ups, one cell in detail;
- :mod:`~geodata.reads.territories`: current territories, one RM's cells, ownership history;
- :mod:`~geodata.reads.gaps`: latest gap scores a user may see;
- :mod:`~geodata.reads.figures`: a grid's summary figures (入格率 and the rest) within a user's scope;
- :mod:`~geodata.reads.imports`: import runs;
- :mod:`~geodata.reads.maps`: what the map index lists (grids, RMs, scenarios in scope);
- :mod:`~geodata.reads.workbook`: the RMs, cells and customers of the RM workbook;
- :mod:`~geodata.reads.values`: plain JSON values and list/collection envelopes.
"""

from geodata.reads.access import LE_WIDE, check_cell, check_rms, check_scenario, scoped_grid
from geodata.reads.values import jsonable, records

__all__ = ["LE_WIDE", "check_cell", "check_rms", "check_scenario", "jsonable", "records", "scoped_grid"]
