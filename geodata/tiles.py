"""Mapbox vector tiles of a grid's cells, territories and customers, straight from PostGIS.

One statement per tile, which also checks the grid: ``ST_TileEnvelope`` gives
the tile's box in Web Mercator, ``ST_AsMVTGeom`` clips and quantises the cells'
stored Web Mercator copies (``cell.geom_3857``, generated from ``geom``, so no
reprojection per request), ``ST_AsMVT`` encodes it. Every value is a bound
parameter; the layer name picks a query from an allow-list. Every layer is
restricted by :func:`geodata.scope.where`:

``cells``
    Cell polygons with ``cell_id``, ``customers``, ``households`` (rounded; ``apportioned`` says
    when it is a share of a township or county figure), ``rm`` (the
    current owner, only when that RM is in the user's ``rm`` scope), ``score``
    and ``gap_class`` of the latest gap run. Only cells the user's ``cell``
    scope reaches (an RM: cells they own or co-own).
``territories``
    Cells dissolved per current owner RM (``rm``, ``cells``): one polygon per
    RM and tile, so outlines are drawn along territory borders only. Below
    ``TileOptions.dissolve_min_zoom`` (12) a tile spans hundreds of cells and
    dissolving them costs more than drawing them: cells come one by one with
    their ``rm`` (``cells`` = 1) and the page colours them by RM. Only owners
    in the user's ``rm`` scope, only cells in the ``cell`` scope.
``customers``
    Zoom-dependent so a tile over 10M customers stays small:

    - ``z <= TileOptions.cell_max_zoom`` (14): one point per grid cell at a
      point on its surface (``cell.point_3857``), ``count`` from the precomputed ``cell_stat``
      (no customer rows read). An RM or branch manager counts only cells
      whose owner is in their ``rm`` scope, i.e. exactly the customers the
      ``customer`` scope lets them see.
    - from ``cell_max_zoom + 1`` to ``detail_zoom - 1`` (none by default; set
      ``cell_max_zoom`` lower to use it): customers snapped to a ``cluster_px``
      pixel grid in tile space, one point per occupied square at the mean
      position of its customers, ``count``. Reading every customer of a dense
      tile costs 100+ ms, which is why the default serves counts per cell.
    - ``z >= detail_zoom`` (15): single customers, ``customer_id`` only (no
      names); customers sharing one pixel (a building) come as one point with
      their ``count`` and no id, so a tile stays bounded and nobody is dropped.

    Customers are those of the grid's county (planners, analysts, admins) or
    placed by this grid in cells whose owner is in the user's ``rm`` scope
    (RMs, branch managers), and always within ``where(scope, "customer")``.
    A point belongs to exactly one tile per zoom (half-open tile bounds), so
    the counts of the tiles of one zoom add up to the customers shown.

An empty tile is ``b""``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput, NotFound
from geodata.scope import Clause, Scope, where

LAYERS = ("cells", "territories", "customers")
MAX_ZOOM = 22
EXTENT = 4096
BUFFER = 64
# Roles whose customer scope is the whole legal entity (no per-territory check needed).
_LE_WIDE = ("admin", "planner", "analyst")


@dataclass(frozen=True)
class TileOptions:
    """Zoom thresholds and limits of the ``customers`` layer."""

    cell_max_zoom: int = 14
    detail_zoom: int = 15
    cluster_px: int = 8
    dissolve_min_zoom: int = 12


DEFAULT_OPTIONS = TileOptions()


def check_tile(z: int, x: int, y: int) -> None:
    """BadInput unless ``z/x/y`` names a tile of the Web Mercator pyramid (z 0..22)."""
    if not 0 <= z <= MAX_ZOOM:
        raise BadInput(f"zoom {z} is outside 0..{MAX_ZOOM}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise BadInput(f"tile {z}/{x}/{y} does not exist: x and y must be in 0..{n - 1} at zoom {z}")


# The grid, when the scope may see it. The statement returns its county next to the tile
# and every layer's rows require it: an unknown or foreign grid is one round trip, gives
# no county (NotFound) and no rows. A condition evaluated once (not a join: with the CTE
# in the join tree the planner drove RM and branch manager tiles from every customer).
_GRID_SEEN = "EXISTS (SELECT 1 FROM g)"


def _grid_cte(scope: Scope) -> Clause:
    cond = where(scope, "grid", "g")
    return Clause(f"g AS (SELECT g.county_code FROM grid g WHERE g.id = :gid AND {cond.sql})",
                  cond.params)


# The tile's box and its clip buffer in EPSG:3857, the unit of the stored cell copies
# (cell.geom_3857, cell.point_3857), and one tile unit in metres for simplification.
_BOUNDS = f"""b AS (
    SELECT e.env, ST_TileEnvelope(:z, :x, :y, margin => {BUFFER / EXTENT}) AS wide,
           (ST_XMax(e.env) - ST_XMin(e.env)) / {EXTENT} AS tol
      FROM (SELECT ST_TileEnvelope(:z, :x, :y) AS env) e)"""
# Customers are stored in EPSG:4326 only: the tile's box in degrees for their index.
_BOUNDS4 = "b AS (SELECT ST_Transform(ST_TileEnvelope(:z, :x, :y), 4326) AS env4)"
# Half-open bounds: a point on the edge between two tiles belongs to one of them only.
_IN_TILE = ("{g} && b.env4 AND ST_X({g}) >= ST_XMin(b.env4) AND ST_X({g}) < ST_XMax(b.env4)"
            " AND ST_Y({g}) > ST_YMin(b.env4) AND ST_Y({g}) <= ST_YMax(b.env4)")
# Tile coordinates (y down) of a WGS84 point by the Web Mercator formulas: per customer
# this is a few float operations instead of a reprojection and a clip.
_PX = "((ST_X({g}) + 180) / 360 * 2 ^ (CAST(:z AS float8) + 12) - CAST(:x AS float8) * 4096)"
_PY = ("((1 - ln(tan(pi() / 4 + radians(ST_Y({g})) / 2)) / pi()) / 2 * 2 ^ (CAST(:z AS float8) + 12)"
       " - CAST(:y AS float8) * 4096)")
# The same for a Web Mercator point, in units of the tile pyramid at zoom z (tile x + fraction):
# floor() of it names the one tile holding the point, so tiles partition the points exactly.
_HALF_WORLD = 20037508.342789244
_TX3 = f"((ST_X({{g}}) + {_HALF_WORLD}) / {2 * _HALF_WORLD} * 2 ^ CAST(:z AS float8))"
_TY3 = f"(({_HALF_WORLD} - ST_Y({{g}})) / {2 * _HALF_WORLD} * 2 ^ CAST(:z AS float8))"
_MVT_GEOM = f"ST_AsMVTGeom({{g}}, b.env, {EXTENT}, {BUFFER}, true)"
# Cells drawn one by one may drop vertices closer than one tile unit (1/16 pixel) before the
# clip: at low zooms clipped border cells carry thousands of invisible vertices.
# Not used where cells are dissolved: shared edges must stay identical there.
_MVT_GEOM_SIMPLE = f"ST_AsMVTGeom(ST_Simplify({{g}}, b.tol, true), b.env, {EXTENT}, {BUFFER}, true)"
_OWNER = ("LEFT JOIN territory t ON t.grid_id = c.grid_id AND t.cell_id = c.cell_id"
          " AND t.valid_to IS NULL AND t.role = 'owner'")
# ST_AsMVT skips rows whose geometry is NULL (outside the tile after clipping), so no filter
# on it: a WHERE on the clipped geometry would clip every cell twice. String properties are
# cast to text, which ST_AsMVT encodes directly (other types go through their output function).


def _select(grid: Clause, layer: str, ctes: str) -> str:
    """The statement: the grid's county (NULL when not visible) and the tile built from CTE ``f``."""
    return f"""WITH {grid.sql}, {ctes}
    SELECT (SELECT county_code FROM g), (SELECT ST_AsMVT(f, '{layer}', {EXTENT}, 'geom') FROM f)"""


def _owner_in_scope(scope: Scope, cell_alias: str) -> Clause:
    """Cells whose current owner RM is in the scope's ``rm`` scope."""
    rm = where(scope, "rm", "r_o")
    sql = (f"EXISTS (SELECT 1 FROM territory t_o JOIN rm r_o ON r_o.code = t_o.rm_code"
           f" WHERE t_o.grid_id = {cell_alias}.grid_id AND t_o.cell_id = {cell_alias}.cell_id"
           f" AND t_o.valid_to IS NULL AND t_o.role = 'owner' AND {rm.sql})")
    return Clause(sql, rm.params)


def _cells_sql(scope: Scope) -> str:
    cell, rm = where(scope, "cell", "c"), where(scope, "rm", "r")
    return _select(_grid_cte(scope), "cells", f"""{_BOUNDS},
    f AS (
    SELECT CAST(c.cell_id AS text) AS cell_id, cs.customers, CAST(round(cs.households) AS integer) AS households,
           cs.apportioned, CAST(r.code AS text) AS rm,
           s.score, CAST(s.gap_class AS text) AS gap_class, {_MVT_GEOM_SIMPLE.format(g="c.geom_3857")} AS geom
      FROM b, cell c
      LEFT JOIN cell_stat cs ON cs.grid_id = c.grid_id AND cs.cell_id = c.cell_id
      {_OWNER}
      LEFT JOIN rm r ON r.code = t.rm_code AND {rm.sql}
      LEFT JOIN gap_score s ON s.cell_id = c.cell_id
           AND s.gap_run_id = (SELECT max(id) FROM gap_run WHERE grid_id = :gid)
     WHERE c.grid_id = :gid AND {_GRID_SEEN} AND c.geom_3857 && b.wide AND {cell.sql})""")


def _territories_sql(scope: Scope, z: int, opts: TileOptions) -> str:
    cell, rm = where(scope, "cell", "c"), where(scope, "rm", "r")
    cells = f"""FROM b, cell c
      JOIN territory t ON t.grid_id = c.grid_id AND t.cell_id = c.cell_id
           AND t.valid_to IS NULL AND t.role = 'owner'
      JOIN rm r ON r.code = t.rm_code AND {rm.sql}
     WHERE c.grid_id = :gid AND {_GRID_SEEN} AND c.geom_3857 && b.wide AND {cell.sql}"""
    if z < opts.dissolve_min_zoom:
        return _select(_grid_cte(scope), "territories", f"""{_BOUNDS},
    f AS (SELECT CAST(r.code AS text) AS rm, 1 AS cells, {_MVT_GEOM_SIMPLE.format(g="c.geom_3857")} AS geom
      {cells})""")
    # Dissolve the clipped cells in tile space: integer vertices shared exactly by
    # neighbours, no more detail than the tile shows. MVT wants exterior rings with a
    # positive surveyor's area in y-down tile coordinates: counter-clockwise to PostGIS.
    return _select(_grid_cte(scope), "territories", f"""{_BOUNDS},
    f AS (SELECT CAST(r.code AS text) AS rm, count(*) AS cells,
                 ST_ForcePolygonCCW(ST_Union({_MVT_GEOM.format(g="c.geom_3857")})) AS geom
      {cells}
     GROUP BY r.code)""")


def _customer_filter(scope: Scope) -> tuple[str, dict]:
    """Customers of the grid the scope may see, as a condition on ``customer c`` (needs the grid CTE ``g``)."""
    cust = where(scope, "customer", "c")
    if scope.role in _LE_WIDE:
        return f"c.county_code = (SELECT county_code FROM g) AND {cust.sql}", cust.params
    # Driven from the user's own cells of this grid, so the per-customer ownership
    # check of where() only runs on customers that pass it anyway.
    owner = _owner_in_scope(scope, "k")
    placed = (f"{_GRID_SEEN} AND c.customer_id IN (SELECT cc.customer_id FROM customer_cell cc JOIN cell k"
              " ON k.grid_id = cc.grid_id AND k.cell_id = cc.cell_id"
              f" WHERE cc.grid_id = :gid AND {owner.sql})")
    return f"{placed} AND {cust.sql}", {**cust.params, **owner.params}


def _customers_sql(scope: Scope, z: int, opts: TileOptions) -> tuple[str, dict]:
    grid = _grid_cte(scope)
    if z <= opts.cell_max_zoom:
        cell = where(scope, "cell", "c")
        conds = [cell.sql]
        params = {**grid.params, **cell.params}
        if scope.role not in _LE_WIDE:
            owner = _owner_in_scope(scope, "c")
            conds.append(owner.sql)
            params.update(owner.params)
        # The stored point on each cell's surface, in the one tile its tile indices name.
        tx, ty = _TX3.format(g="c.point_3857"), _TY3.format(g="c.point_3857")
        return _select(grid, "customers", f"""{_BOUNDS},
        f AS (SELECT CAST(c.cell_id AS text) AS cell_id, cs.customers AS count,
                     ST_MakePoint(round(({tx} - :x) * {EXTENT}), round(({ty} - :y) * {EXTENT})) AS geom
                FROM b, cell c
                JOIN cell_stat cs ON cs.grid_id = c.grid_id AND cs.cell_id = c.cell_id
               WHERE c.grid_id = :gid AND {_GRID_SEEN} AND cs.customers > 0 AND c.geom_3857 && b.env
                 AND floor({tx}) = :x AND floor({ty}) = :y AND {' AND '.join(conds)})"""), params
    cond, params = _customer_filter(scope)
    params = {**grid.params, **params}
    in_tile = _IN_TILE.format(g="c.geom")
    if z < opts.detail_zoom:
        step = max(1, EXTENT * opts.cluster_px // 256)
        return _select(grid, "customers", f"""{_BOUNDS4},
        p AS (SELECT {_PX.format(g="c.geom")} AS px, {_PY.format(g="c.geom")} AS py
                FROM b, customer c WHERE {in_tile} AND {cond}),
        f AS (SELECT count(*) AS count, ST_MakePoint(round(avg(px)), round(avg(py))) AS geom
                FROM p GROUP BY floor(px / {step}), floor(py / {step}))"""), params
    # One point per occupied pixel: a customer alone in its pixel keeps its id; customers sharing a
    # pixel (same building) become a count. A tile thus holds at most 256 x 256 points and
    # nobody is dropped.
    px_step = max(1, EXTENT // 256)
    return _select(grid, "customers", f"""{_BOUNDS4},
    p AS (SELECT c.customer_id, {_PX.format(g="c.geom")} AS px, {_PY.format(g="c.geom")} AS py
            FROM b, customer c WHERE {in_tile} AND {cond}),
    f AS (SELECT CAST(CASE WHEN count(*) = 1 THEN min(customer_id) END AS text) AS customer_id,
                 count(*) AS count, ST_MakePoint(round(avg(px)), round(avg(py))) AS geom
            FROM p GROUP BY floor(px / {px_step}), floor(py / {px_step}))"""), params


def tile(conn: Connection, *, layer: str, z: int, x: int, y: int, grid_id: int, scope: Scope,
         options: TileOptions = DEFAULT_OPTIONS) -> bytes:
    """One Mapbox vector tile of ``layer`` for grid ``grid_id`` as ``scope`` may see it (b"" when empty).

    BadInput for a tile outside the pyramid; NotFound for an unknown layer or
    a grid outside the scope. One statement, one round trip.
    """
    check_tile(z, x, y)
    if layer not in LAYERS:
        raise NotFound(f"no tile layer {layer!r}; layers: {', '.join(LAYERS)}")
    if layer == "cells":
        sql, params = _cells_sql(scope), scope.params()
    elif layer == "territories":
        sql, params = _territories_sql(scope, z, options), scope.params()
    else:
        sql, params = _customers_sql(scope, z, options)
    county, body = conn.execute(text(sql), {**params, "z": z, "x": x, "y": y, "gid": grid_id}).one()
    if county is None:
        raise NotFound(f"grid {grid_id} does not exist")
    return bytes(body) if body is not None else b""
