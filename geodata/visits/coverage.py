"""Where visits go: per cell of a grid, its customers and the visits they had in a window (issue 16, §4).

What the branch manager's visit map colours (visits per customer) and its popups show. Counted in SQL
within the reader's scope, numerator and denominator alike: the cells ``scope`` may see
(``geodata.scope`` rule ``cell``), the customers placed in them that it may see (rule ``customer``),
and every visit to those customers in ``[until - window_days, until)``, whoever made it (a cell
nobody went to is what the map is for, not who went).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geodata.scope import Scope, where

WINDOW_DAYS = 90

_COVER = """
WITH cells AS (SELECT c.cell_id FROM cell c WHERE c.grid_id = :g AND {cells}),
cust AS (SELECT cc.cell_id, cc.customer_id FROM customer_cell cc JOIN customer cu ON cu.customer_id = cc.customer_id
          WHERE cc.grid_id = :g AND cc.cell_id IN (SELECT cell_id FROM cells) AND {customers}),
vis AS (SELECT v.customer_id, count(*) AS n, max(v.visited_at) AS last_at FROM visit v
         WHERE v.customer_id IN (SELECT customer_id FROM cust)
           AND v.visited_at >= CAST(:until AS timestamptz) - CAST(:win AS interval) AND v.visited_at < :until
         GROUP BY v.customer_id)
SELECT cells.cell_id, count(cust.customer_id) AS customers, coalesce(sum(vis.n), 0)::int AS visits,
       count(vis.customer_id) AS customers_visited, max(vis.last_at) AS last_visit_at
  FROM cells LEFT JOIN cust ON cust.cell_id = cells.cell_id LEFT JOIN vis ON vis.customer_id = cust.customer_id
 GROUP BY cells.cell_id ORDER BY cells.cell_id
"""


def window_dates(until: dt.datetime, tz: str, *, window_days: int = WINDOW_DAYS,
                 now: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
    """The local dates the window ``[until - window_days, until)`` covers: its first day, and its last day so
    far (today while the window is still open: no visit is dated later), for a label that says what is counted.

    >>> z = dt.timezone(dt.timedelta(hours=8))
    >>> window_dates(dt.datetime(2026, 12, 14, tzinfo=z), "Asia/Shanghai", now=dt.datetime(2027, 1, 1, tzinfo=z))
    (datetime.date(2026, 9, 15), datetime.date(2026, 12, 13))
    >>> window_dates(dt.datetime(2026, 12, 14, tzinfo=z), "Asia/Shanghai", now=dt.datetime(2026, 12, 7, 9, tzinfo=z))
    (datetime.date(2026, 9, 15), datetime.date(2026, 12, 7))
    """
    z = ZoneInfo(tz)
    last = min(until, now or dt.datetime.now(dt.UTC)) - dt.timedelta(microseconds=1)
    return (until - dt.timedelta(days=window_days)).astimezone(z).date(), last.astimezone(z).date()


def cell_cover(conn: Connection, *, scope: Scope | None, grid_id: int, until: dt.datetime,
               window_days: int = WINDOW_DAYS) -> list[dict[str, Any]]:
    """Per cell of ``grid_id`` that ``scope`` may see (None: every cell): cell_id, customers, visits,
    customers_visited and last_visit_at, visits counted in the ``window_days`` before ``until``."""
    cells = where(scope, "cell", "c") if scope is not None else None
    custs = where(scope, "customer", "cu") if scope is not None else None
    sql = _COVER.format(cells=cells.sql if cells else "TRUE", customers=custs.sql if custs else "TRUE")
    params = {**(cells.params if cells else {}), "g": grid_id, "until": until, "win": dt.timedelta(days=window_days)}
    return [dict(r) for r in conn.execute(text(sql), params).mappings()]
