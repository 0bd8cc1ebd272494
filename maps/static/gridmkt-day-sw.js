/* gridmkt: the service worker of the RM's day page (served at /maps/rm/sw.js, scope /maps/rm/).
 *
 * self.GRIDMKT_SW (written above this file by maps/day.py): {version, assets: [URL...], pages and plan:
 * RegExp sources of the day pages' paths and of their plan's}. Assets are cached at install (cache-first, one cache per
 * version, older versions dropped); the day page and today's plan are network-first with a short wait, then the
 * saved copy (so a weak signal does not hang the page). Posts are never touched: check-ins go through the
 * page's own outbox (gridmkt-day.js), which knows when the server has them.
 */
"use strict";
var CFG = self.GRIDMKT_SW, ASSETS = "gridmkt-day-" + CFG.version, DATA = "gridmkt-day-data";
var PAGES = new RegExp(CFG.pages), PLAN = new RegExp(CFG.plan), WAIT_MS = CFG.waitMs || 4000;

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(ASSETS).then(function (c) { return c.addAll(CFG.assets); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k.indexOf("gridmkt-day-") === 0 && k !== ASSETS && k !== DATA; })
      .map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

function saved(request, why) {
  return caches.match(request, { ignoreSearch: true, cacheName: DATA }).then(function (r) {
    if (!r) throw why;
    // Say it is the saved copy (the page shows "offline: showing the saved plan").
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
      event.waitUntil(caches.open(DATA).then(function (c) { return c.put(request.url.split("?")[0], copy); }));
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

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (CFG.assets.indexOf(url.pathname) >= 0) {
    event.respondWith(caches.match(url.pathname, { cacheName: ASSETS }).then(function (r) { return r || fetch(request); }));
  } else if (PLAN.test(url.pathname) || (request.mode === "navigate" && PAGES.test(url.pathname))) {
    event.respondWith(networkFirst(event));
  }
});
