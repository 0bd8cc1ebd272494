"""A province / legal-entity overview: the latest grid of each visible county and its figures.

The province map page draws every county's grid from vector tiles; what it embeds comes
from here, in three statements whatever the number of counties: :func:`province_grids`
(counties, their latest grid of a kind, simplified outlines, per-grid figures, and the box
of the cells the user may see; customers and the coverage ratio 入格率 from
:func:`geodata.reads.figures.grid_figures`, within the user's scope) and
:func:`score_quantiles` (the spread of gap scores for the legend). Both are
restricted by :func:`geodata.scope.where` only: counties and grids by the legal
entity, cells by the ``cell`` scope (a branch manager: cells of their outlets'
RMs), RMs by the ``rm`` scope.
"""

from __future__ import annotations

import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.errors import BadInput
from geodata.grids import KINDS
from geodata.reads.figures import grid_figures
from geodata.scope import Scope, where

# About 100 m: county outlines for a province-wide view stay a few KB each.
OUTLINE_TOLERANCE_DEG = 0.001


def province_grids(conn: Connection, *, scope: Scope, kind: str = "h3", resolution: int | None = None,
                   outline_tolerance: float = OUTLINE_TOLERANCE_DEG) -> list[dict]:
    """Every county ``scope`` may see with its latest grid of ``kind`` (and ``resolution``), in adcode order.

    Each row: ``county_code``, ``county_name``, ``outline`` (shapely, simplified),
    ``grid_id`` (None when the county has no such grid), ``resolution``,
    ``cells`` (cells the scope reaches), and as
    :func:`geodata.reads.figures.grid_figures` counts them within ``scope``
    (0 without a grid): ``customers`` (the scope's customers placed in those
    cells), ``unplaced``, ``scope_customers`` (the scope's customers of the
    county as the grid sees them) and ``coverage`` (入格率: ``customers /
    scope_customers``, None without a grid or customers; a branch manager's
    is that of their territory's customers, as on the dashboard), ``blank_cells``
    (latest gap run, None when the grid has no scores), ``rms`` (current
    owners of those cells within the ``rm`` scope) and ``bounds`` ((xmin, ymin,
    xmax, ymax) of those cells, None when there are none). Two statements.
    """
    if kind not in KINDS:
        raise BadInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    county, grid = where(scope, "county", "k"), where(scope, "grid", "g")
    cell, rm = where(scope, "cell", "c"), where(scope, "rm", "r")
    scored = where(scope, "cell", "sc")
    sql = f"""
    WITH k AS (SELECT k.adcode, k.name, k.geom FROM county k WHERE {county.sql}),
    lg AS (SELECT DISTINCT ON (g.county_code) g.id, g.county_code, g.resolution
             FROM grid g JOIN k ON k.adcode = g.county_code
            WHERE g.kind = :kind AND (CAST(:res AS integer) IS NULL OR g.resolution = :res) AND {grid.sql}
            ORDER BY g.county_code, g.id DESC),
    run AS (SELECT r.grid_id, max(r.id) AS run_id FROM gap_run r JOIN lg ON lg.id = r.grid_id GROUP BY r.grid_id),
    -- One aggregate per source over narrow rows. Cell statistics and scores are keyed by
    -- (grid_id, cell_id) like the cells themselves, so the ``cell`` scope applies to them
    -- directly, without joining the cells (and their geometry) again.
    box AS (SELECT c.grid_id, count(*) AS cells, ST_Extent(c.geom) AS box
              FROM lg JOIN cell c ON c.grid_id = lg.id WHERE {cell.sql} GROUP BY c.grid_id),
    blank AS (SELECT sc.grid_id, count(*) AS blank_cells
                FROM (SELECT run.grid_id, s.cell_id FROM run JOIN gap_score s
                         ON s.gap_run_id = run.run_id AND s.gap_class = 'blank') sc
               WHERE {scored.sql} GROUP BY sc.grid_id),
    own AS (SELECT c.grid_id, count(DISTINCT t.rm_code) AS rms
              FROM lg JOIN cell c ON c.grid_id = lg.id
              JOIN territory t ON t.grid_id = c.grid_id AND t.cell_id = c.cell_id
                   AND t.valid_to IS NULL AND t.role = 'owner'
              JOIN rm r ON r.code = t.rm_code
             WHERE {cell.sql} AND {rm.sql}
             GROUP BY c.grid_id)
    SELECT k.adcode AS county_code, k.name AS county_name,
           ST_AsBinary(ST_SimplifyPreserveTopology(k.geom, :tol)) AS wkb,
           lg.id AS grid_id, lg.resolution, COALESCE(box.cells, 0) AS cells,
           CASE WHEN run.run_id IS NULL THEN NULL ELSE COALESCE(blank.blank_cells, 0) END AS blank_cells,
           COALESCE(own.rms, 0) AS rms, ST_XMin(box.box) AS xmin, ST_YMin(box.box) AS ymin,
           ST_XMax(box.box) AS xmax, ST_YMax(box.box) AS ymax
      FROM k LEFT JOIN lg ON lg.county_code = k.adcode
      LEFT JOIN run ON run.grid_id = lg.id
      LEFT JOIN box ON box.grid_id = lg.id
      LEFT JOIN blank ON blank.grid_id = lg.id
      LEFT JOIN own ON own.grid_id = lg.id
     ORDER BY k.adcode"""
    params = {**county.params, **grid.params, **cell.params, **rm.params,
              "kind": kind, "res": resolution, "tol": outline_tolerance}
    out = []
    rows = [dict(r) for r in conn.execute(text(sql), params).mappings()]
    figures = grid_figures(conn, scope=scope, grid_ids=[r["grid_id"] for r in rows if r["grid_id"] is not None])
    for r in rows:
        row = dict(r)
        wkb = row.pop("wkb")
        row["outline"] = shapely.from_wkb(bytes(wkb)) if wkb is not None else None
        box = tuple(row.pop(k) for k in ("xmin", "ymin", "xmax", "ymax"))
        row["bounds"] = None if box[0] is None else tuple(float(v) for v in box)
        for k in ("cells", "rms"):
            row[k] = int(row[k])
        f = figures.get(row["grid_id"], {})
        row["customers"], row["unplaced"] = f.get("customers", 0), f.get("unplaced", 0)
        row["scope_customers"], row["coverage"] = f.get("scope_customers", 0), f.get("coverage")
        if row["blank_cells"] is not None:
            row["blank_cells"] = int(row["blank_cells"])
        out.append(row)
    return out


def score_quantiles(conn: Connection, *, scope: Scope, grid_ids: list[int], n: int = 200) -> list[float]:
    """``n + 1`` evenly spaced quantiles of the latest gap scores of the cells ``scope`` reaches in ``grid_ids``.

    Enough to draw class breaks for the legend without reading every cell's
    score ([] when no cell has a score). No-potential cells (score 0, drawn faint) are left out, as on the
    dashboard, so the colours spread over the cells worth acting on. One statement.
    """
    if not grid_ids:
        return []
    cell = where(scope, "cell", "sc")  # scores are keyed by (grid_id, cell_id) like their cells
    fractions = [i / n for i in range(n + 1)]
    row = conn.execute(text(f"""
        WITH run AS (SELECT grid_id, max(id) AS run_id FROM gap_run WHERE grid_id = ANY(:gids) GROUP BY grid_id)
        SELECT percentile_disc(CAST(:fr AS float8[])) WITHIN GROUP (ORDER BY sc.score)
          FROM (SELECT run.grid_id, s.cell_id, s.score FROM run JOIN gap_score s ON s.gap_run_id = run.run_id
                 WHERE s.gap_class <> 'no-potential') sc
         WHERE {cell.sql}"""),
        {**cell.params, "fr": fractions, "gids": list(grid_ids)}).scalar()
    return [float(v) for v in row] if row else []
