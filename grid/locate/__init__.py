"""Points to grid cells, exactly and fast: H3 grids, village grids, and plain H3 indexes.

Every function and method takes longitude first, ``(lon, lat)``, as shapely and GeoJSON do
(``h3`` itself takes lat first; :mod:`grid.locate.h3_points` turns the order round for it).

- :class:`H3Locator` (:mod:`grid.locate.h3_locator`): points to the cells of a clipped H3 grid,
  rounded on the fitted hexagon lattice (:mod:`grid.locate.lattice`).
- :class:`VillageLocator` (:mod:`grid.locate.village_locator`): points to any set of polygons
  through a two-level raster; :func:`locate_exact` (:mod:`grid.locate.polygons`) is the exact answer.
- :func:`lonlat_to_h3`, :func:`locate_multi` (:mod:`grid.locate.h3_points`): H3 indexes without a grid.
- Both locators store their tables as bytes (:mod:`grid.locate.stored`) and fork workers
  for large inputs (:mod:`grid.locate.forked`).
"""

from grid.locate.h3_locator import H3Locator
from grid.locate.h3_points import locate_multi, lonlat_to_h3
from grid.locate.polygons import locate_exact
from grid.locate.village_locator import VillageLocator

__all__ = ["H3Locator", "VillageLocator", "locate_exact", "locate_multi", "lonlat_to_h3"]
