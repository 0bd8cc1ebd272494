/* gridmkt: the service worker of the RM's day page (served at /maps/rm/sw.js, scope /maps/rm/).
 *
 * self.GRIDMKT_SW (written above this file by maps/day.py): {version, assets: [URL...], pages and plan: RegExp
 * sources of the day pages' paths and of their plan's, tiles: RegExp source of the cell tiles' paths, basemap:
 * RegExp source of the basemap tiles' URLs (or null), maxTiles}.
 * - Assets are cached at install (cache-first, one cache per version, older versions dropped).
 * - The day page and today's plan are network-first with a short wait, then the saved copy (so a weak signal
 *   does not hang the page), stamped with when it was saved (X-Gridmkt-Cached-At).
 * - Map tiles (the RM's cells from /tiles, the basemap's) are stale-while-revalidate in their own cache, at
 *   most maxTiles entries (the oldest go first); the page asks for its territory's tiles ahead ("warm").
 * Posts are never touched: check-ins go through the page's own outbox (gridmkt-day-outbox.js).
 */
"use strict";
var CFG = self.GRIDMKT_SW, ASSETS = "gridmkt-day-" + CFG.version, DATA = "gridmkt-day-data", TILES = "gridmkt-day-tiles";
var PAGES = new RegExp(CFG.pages), PLAN = new RegExp(CFG.plan), WAIT_MS = CFG.waitMs || 4000;
var TILE_PATH = new RegExp(CFG.tiles), BASEMAP = CFG.basemap ? new RegExp(CFG.basemap) : null;
var MAX_TILES = CFG.maxTiles || 1000, STAMP = "X-Gridmkt-Cached-At";
var KEEP = [ASSETS, DATA, TILES];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(ASSETS).then(function (c) { return c.addAll(CFG.assets); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k.indexOf("gridmkt-day-") === 0 && KEEP.indexOf(k) < 0; })
      .map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

// A copy to keep, stamped with the time it was saved (an opaque cross-site tile cannot be read: kept as it is).
function stamped(r) {
  if (r.type === "opaque") return Promise.resolve(r);
  var h = new Headers(r.headers);
  h.set(STAMP, String(Date.now()));
  var nobody = r.status === 204 || r.status === 304;
  return (nobody ? Promise.resolve(null) : r.blob()).then(function (b) {
    return new Response(b, { status: r.status, statusText: r.statusText, headers: h });
  });
}

function saved(request, why) {
  return caches.match(request, { ignoreSearch: true, cacheName: DATA }).then(function (r) {
    if (!r) throw why;
    // Say it is the saved copy (the page shows "offline: showing the saved plan" and its age).
    var h = new Headers(r.headers);
    h.set("X-Gridmkt-Offline", "cache");
    return r.blob().then(function (b) { return new Response(b, { status: r.status, statusText: r.statusText, headers: h }); });
  });
}

// Network first; after WAIT_MS without an answer (or on an error) the saved copy, while a late answer still
// refreshes the copy for next time.
function networkFirst(event) {
  var request = event.request;
  var fromNet = fetch(request).then(function (r) {
    // Keep only real answers: not a redirect to the sign-in page, not an error.
    if (r.ok && !r.redirected) {
      var copy = r.clone();
      event.waitUntil(Promise.all([caches.open(DATA), stamped(copy)])
        .then(function (x) { return x[0].put(request.url.split("?")[0], x[1]); }));
    }
    return r;
  });
  return new Promise(function (resolve, reject) {
    var done = false;
    var timer = setTimeout(function () {
      saved(request, "timeout").then(function (r) { if (!done) { done = true; resolve(r); } }, function () {});
    }, WAIT_MS);
    fromNet.then(function (r) {
      clearTimeout(timer);
      if (!done) { done = true; resolve(r); }
    }, function (err) {
      clearTimeout(timer);
      if (done) return;
      saved(request, err).then(function (r) { done = true; resolve(r); }, function () { done = true; reject(err); });
    });
  });
}

// ---------- tiles ----------
var puts = 0;
function keepTile(cache, url, r) {
  // 204: nothing of the RM's in that tile, worth knowing offline too. Opaque: a basemap without CORS headers.
  if (!(r.ok || r.type === "opaque") || r.redirected) return Promise.resolve();
  return stamped(r).then(function (s) { return cache.put(url, s); }).then(function () {
    puts += 1;
    if (puts % 50 === 0) return trim(cache);
  });
}
// At most MAX_TILES entries: the oldest saved go first (keys come in the order they were put).
function trim(cache) {
  return cache.keys().then(function (keys) {
    var extra = keys.length - MAX_TILES;
    return extra > 0 ? Promise.all(keys.slice(0, extra).map(function (k) { return cache.delete(k); })) : null;
  });
}
function tileRequest(url) {
  return new Request(url, url.indexOf(self.location.origin) === 0 ? { credentials: "same-origin" } : { mode: "no-cors" });
}
// The saved tile at once (if any) while the network refreshes it; no saved tile: the network, kept.
function staleWhileRevalidate(event) {
  var request = event.request;
  return caches.open(TILES).then(function (cache) {
    return cache.match(request.url).then(function (hit) {
      var net = fetch(request).then(function (r) {
        return keepTile(cache, request.url, r.clone()).then(function () { return r; });
      });
      if (hit) { event.waitUntil(net.catch(function () {})); return hit; }
      return net;
    });
  });
}
// The page's list of its territory's tiles: fetch those not saved yet, four at a time, then trim.
function warm(urls, client) {
  return caches.open(TILES).then(function (cache) {
    var queue = urls.slice(0, MAX_TILES), fetched = 0, failed = 0;
    function worker() {
      var url = queue.shift();
      if (!url) return Promise.resolve();
      return cache.match(url).then(function (hit) {
        if (hit) return null;
        return fetch(tileRequest(url)).then(function (r) { fetched += 1; return keepTile(cache, url, r); },
          function () { failed += 1; });
      }).then(worker);
    }
    return Promise.all([worker(), worker(), worker(), worker()]).then(function () { return trim(cache); })
      .then(function () { return cache.keys(); }).then(function (keys) {
        if (client) client.postMessage({ type: "warmed", asked: urls.length, fetched: fetched, failed: failed,
          cached: keys.length });
      });
  });
}

self.addEventListener("message", function (event) {
  var m = event.data || {};
  if (m.type === "warm" && Array.isArray(m.urls)) event.waitUntil(warm(m.urls.filter(isTile), event.source));
});

function isTile(href) {
  var url = new URL(href);
  return (url.origin === self.location.origin && TILE_PATH.test(url.pathname)) || (!!BASEMAP && BASEMAP.test(url.href));
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  if (isTile(request.url)) { event.respondWith(staleWhileRevalidate(event)); return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (CFG.assets.indexOf(url.pathname) >= 0) {
    event.respondWith(caches.match(url.pathname, { cacheName: ASSETS }).then(function (r) { return r || fetch(request); }));
  } else if (PLAN.test(url.pathname) || (request.mode === "navigate" && PAGES.test(url.pathname))) {
    event.respondWith(networkFirst(event));
  }
});
