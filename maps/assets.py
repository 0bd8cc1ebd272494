"""Front-end assets of the map pages: which files, inlined for exports or linked when served.

Third-party files come from ``maps/static/node_modules`` (installed from the npm
registry with ``npm ci``, pinned by ``maps/static/package-lock.json``; never
committed, never loaded from a CDN). Our own ``gridmkt.js``/``gridmkt.css`` sit
next to ``package.json``. Served pages reference every file as
``/maps/static/<relative path>``; exported pages carry them inline so one
``.html`` file opens with no network at all.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from functools import lru_cache
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
NODE_MODULES = STATIC_DIR / "node_modules"
STATIC_PREFIX = "/maps/static"

# bundle name -> files (paths relative to STATIC_DIR), in load order.
BUNDLES: dict[str, tuple[str, ...]] = {
    "leaflet": ("node_modules/leaflet/dist/leaflet.css", "node_modules/leaflet/dist/leaflet.js"),
    "markercluster": (
        "node_modules/leaflet.markercluster/dist/MarkerCluster.css",
        "node_modules/leaflet.markercluster/dist/MarkerCluster.Default.css",
        "node_modules/leaflet.markercluster/dist/leaflet.markercluster.js",
    ),
    "locate": (
        "node_modules/leaflet.locatecontrol/dist/L.Control.Locate.min.css",
        "node_modules/leaflet.locatecontrol/dist/L.Control.Locate.min.js",
    ),
    "vectorgrid": ("node_modules/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js",),
    "gridmkt": ("gridmkt.css", "gridmkt.js"),
    # The RM's day on the phone (maps/day.py); its service worker is served by the API at /maps/rm/sw.js.
    # Its script in six parts, loaded in this order (each adds to window.gridmktDayApp; gridmkt-day.js starts).
    "gridmkt-day": ("gridmkt-day.css", "gridmkt-day-core.js", "gridmkt-day-plan.js", "gridmkt-day-checkin.js",
                    "gridmkt-day-outbox.js", "gridmkt-day-offline.js", "gridmkt-day.js"),
    # The API's own documentation pages (/docs, /redoc), served like the map pages' files.
    "swagger": ("node_modules/swagger-ui-dist/swagger-ui.css", "node_modules/swagger-ui-dist/swagger-ui-bundle.js",
                "node_modules/swagger-ui-dist/favicon-32x32.png"),
    "redoc": ("node_modules/redoc/bundles/redoc.standalone.js",),
}
# Images the stylesheets point at with relative url(...); served next to them.
_CSS_IMAGES = ("node_modules/leaflet/dist/images",)

_URL = re.compile(r"url\((['\"]?)(?!data:)([^'\")]+)\1\)")
_SOURCE_MAP = re.compile(r"^\s*//# sourceMappingURL=.*$|/\*# sourceMappingURL=.*?\*/", re.MULTILINE)


class AssetsMissing(RuntimeError):
    """The npm packages are not installed (run ``npm ci`` in maps/static, or ``./run``)."""


def _path(rel: str) -> Path:
    p = STATIC_DIR / rel
    if not p.is_file():
        raise AssetsMissing(f"{p} is missing: run `cd maps/static && npm ci` (./run does it)")
    return p


def asset_files() -> dict[str, Path]:
    """Every file the pages may request, as ``relative URL path -> file`` (serve under /maps/static/)."""
    out = {rel: _path(rel) for files in BUNDLES.values() for rel in files}
    for folder in _CSS_IMAGES:
        for p in sorted((STATIC_DIR / folder).glob("*.png")):
            out[p.relative_to(STATIC_DIR).as_posix()] = p
    return out


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


@lru_cache(maxsize=32)
def _inline_text(rel: str) -> str:
    """A file's text ready to sit inside <script>/<style>: images as data URIs, no source maps."""
    path = _path(rel)
    text = _SOURCE_MAP.sub("", path.read_text(encoding="utf-8"))
    if rel.endswith(".css"):
        def repl(m: re.Match) -> str:
            target = (path.parent / m.group(2)).resolve()
            return f"url({_data_uri(target)})" if target.is_file() else m.group(0)
        return _URL.sub(repl, text)
    # A literal "</script" inside a string would close the inline element early.
    return text.replace("</script", "<\\/script")


def asset_tags(bundles: tuple[str, ...] | list[str], *, inline: bool, prefix: str = STATIC_PREFIX) -> str:
    """HTML for the <head>: inline <style>/<script> (exports) or links under ``prefix`` (served)."""
    parts: list[str] = []
    for name in bundles:
        for rel in BUNDLES[name]:
            if not rel.endswith((".css", ".js")):
                continue
            if inline:
                tag = "style" if rel.endswith(".css") else "script"
                parts.append(f"<{tag} data-asset=\"{rel}\">\n{_inline_text(rel)}\n</{tag}>")
            elif rel.endswith(".css"):
                parts.append(f'<link rel="stylesheet" href="{prefix}/{rel}"/>')
            else:
                parts.append(f'<script src="{prefix}/{rel}"></script>')
    return "\n".join(parts)
