"""The RM's day on the phone: a page shell and its service worker (the data comes from the visits operations).

The page holds no customer data: its script (``gridmkt-day-*.js``, six parts
listed in ``maps.assets.BUNDLES``) reads today's plan from
``GET /maps/rm/{rm_code}/day/plan`` (the page's door to the visits operations,
``api/routes/day.py``), draws the RM's cells from the vector tiles and sends
check-ins through an outbox; the context layer (``day_context``: the RM's counties'
outlines, townships and villages) comes in the page's config; a service worker
(``gridmkt-day-sw.js``) keeps the page, its assets, the plan and the map tiles of the RM's territory readable
offline. So the same page works with or without signal, and nothing personal is
baked into a file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from maps.assets import BUNDLES, STATIC_DIR, asset_tags
from maps.base import (
    BACKGROUND_COLOR,
    Background,
    PageOptions,
    background_layers,
    esc,
    js,
)

DAY_BUNDLES = ("leaflet", "vectorgrid", "gridmkt", "gridmkt-day")
# What a check-out may say came of the visit (code, label); the API stores the code.
OUTCOMES = (("contacted", "已沟通 talked"), ("interested", "有意向 interested"), ("deal", "已成交 deal"),
            ("not_home", "不在家 not at home"), ("declined", "无需求 declined"), ("follow_up", "需再访 visit again"))
SW_SCOPE = "/maps/rm/"
SW_URL = SW_SCOPE + "sw.js"
RM_CODE = r"[A-Za-z0-9_\-]+"
DAY_PATH = rf"^/maps/rm/{RM_CODE}/day$"
PLAN_PATH = rf"^/maps/rm/{RM_CODE}/day/plan$"  # the page's door to today's plan (api/routes/day.py)
CELL_TILES_URL = "/tiles/cells/{z}/{x}/{y}.pbf?grid_id={grid_id}"  # the RM's own cells (api/routes/tiles.py)
CELL_TILES_PATH = r"^/tiles/cells/\d+/\d+/\d+\.pbf$"
TILE_BUDGET = 600  # tiles the page asks the service worker to keep ahead (basemap and cells together)
MAX_TILES = 1500  # tiles the service worker keeps at most (oldest dropped first)
_TOKEN = re.compile(r"(\{[a-z_]+\})")


def day_context(backgrounds: Iterable[Background], opts: PageOptions) -> list[dict]:
    """The context layer of the day page, as ``add_background`` draws it on the other pages but for the RM's
    own counties only (no neighbours): per county its outline, township boundaries where known, township seats
    and village points (named from zoom 13, gridmkt.js; not over a tile server's basemap). ``[{kind, geo | rows}]``,
    drawn by ``gridmkt.geoLayer`` / ``gridmkt.pointLayer`` under the route; it travels in the page's config, so
    the service worker's copy of the page has it offline.
    """
    # A part that starts hidden on the other pages (village points over tiles) is left out: the page has
    # no layer control to show it.
    return [{k: part[k] for k in ("kind", "geo", "rows") if k in part}
            for bg in backgrounds for part in background_layers(bg, opts, neighbours=False) if part.get("show", True)]


def day_page(*, rm_code: str, options: PageOptions, outcomes: tuple[tuple[str, str], ...] = OUTCOMES,
             tz: str = "Asia/Shanghai", context: list[dict] | None = None) -> str:
    """The HTML shell of ``rm_code``'s day: bar, map, stop list; served pages only (assets linked, not inline).

    >>> html = day_page(rm_code="R1", options=PageOptions(inline=False))
    >>> '"rmCode":"R1"' in html and "/maps/static/gridmkt-day.js" in html
    True
    """
    base = f"/maps/rm/{rm_code}/day"
    config = {"rmCode": rm_code, "planUrl": f"{base}/plan", "checkinUrl": f"{base}/checkins",
              "checkoutUrl": f"{base}/visits/{{visit_id}}/checkout", "swUrl": SW_URL, "swScope": SW_SCOPE,
              "tileUrl": options.tile_url, "tileCrs": options.tile_crs, "attribution": options.attribution,
              "cellTilesUrl": CELL_TILES_URL, "tileBudget": TILE_BUDGET, "outcomes": [list(o) for o in outcomes],
              "tz": tz,  # times and "today" as the server counts them, whatever zone the phone is set to
              "context": context or []}
    # gridmkt.js (which draws the context layer) names township seats permanently on the paper background.
    shared = {"labels": {}, "background": None if options.tile_url else BACKGROUND_COLOR}
    title = f"今日拜访 Today's visits · {rm_code}"
    head = asset_tags(DAY_BUNDLES, inline=False, prefix=options.static_prefix)
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="theme-color" content="#1f3b57">
<link rel="icon" href="data:,">
<title>{esc(title)}</title>
<script>window.gridmktDay = {js(config)}; window.gridmktConfig = {js(shared)};</script>
{head}
</head>
<body class="gd-body">
<header class="gd-bar">
  <h1>今日拜访 Today's visits <small>· {esc(rm_code)} · <span id="gd-date"></span></small></h1>
  <div class="gd-badges"><span id="gd-net" class="gd-net">在线 online</span>
    <span id="gd-outbox" class="gd-outbox" data-count="0"></span>
    <button type="button" id="gd-replan">重排 re-plan</button></div>
</header>
<p id="gd-notice" class="gd-notice" role="status" hidden></p>
<main class="gd-main">
  <div id="gd-map" style="background:{BACKGROUND_COLOR}" aria-label="路线地图 route map"></div>
  <section class="gd-side" aria-label="拜访列表 stops"><div id="gd-summary" class="gd-summary">载入中… loading…</div>
    <section id="gd-refused" class="gd-refused" role="alert" hidden></section>
    <ol id="gd-stops" class="gd-stops"></ol>
    <div id="gd-dropped" class="gd-dropped"></div></section>
</main>
</body></html>
"""


def sw_assets(prefix: str) -> list[str]:
    """URLs the service worker keeps: the page's scripts and styles and the images its styles use."""
    urls = [f"{prefix}/{rel}" for name in DAY_BUNDLES for rel in BUNDLES[name]]
    urls += [f"{prefix}/{p.relative_to(STATIC_DIR).as_posix()}"
             for p in sorted((STATIC_DIR / "node_modules/leaflet/dist/images").glob("*.png"))]
    return urls


def tile_pattern(template: str | None) -> str | None:
    """A RegExp source matching the URLs of a Leaflet tile template (``{z}/{x}/{y}``, ``{s}``, ``{r}``).

    >>> bool(re.match(tile_pattern("https://{s}.tile.example/{z}/{x}/{y}.png"), "https://a.tile.example/9/4/5.png"))
    True
    """
    if not template:
        return None
    tokens = {"{z}": r"\d+", "{x}": r"\d+", "{y}": r"\d+", "{s}": r"[a-z0-9\-]+", "{r}": r"(@2x)?"}
    body = "".join(tokens.get(p, r"[^/?&]*") if _TOKEN.fullmatch(p) else re.escape(p) for p in _TOKEN.split(template))
    return ("^https?://[^/]+" if template.startswith("/") else "^") + body + "$"


def service_worker(*, prefix: str = "/maps/static", tile_url: str | None = None) -> str:
    """The service worker's script: its settings, then ``gridmkt-day-sw.js``.

    Its version is a hash of the assets it caches (and of itself), so a new
    release replaces the cached files and a phone never mixes old and new.
    ``tile_url`` is the basemap's template: its tiles are kept like the cells'.
    """
    assets = sw_assets(prefix)
    digest = hashlib.sha256()
    body = (STATIC_DIR / "gridmkt-day-sw.js").read_text(encoding="utf-8")
    digest.update(body.encode())
    for url in assets:
        digest.update(url.encode())
        digest.update((STATIC_DIR / url[len(prefix) + 1:]).read_bytes())
    cfg = {"version": digest.hexdigest()[:16], "assets": assets, "pages": DAY_PATH, "plan": PLAN_PATH,
           "tiles": CELL_TILES_PATH, "basemap": tile_pattern(tile_url), "maxTiles": MAX_TILES}
    return f"self.GRIDMKT_SW = {js(cfg)};\n{body}"

