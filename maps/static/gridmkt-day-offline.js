/* gridmkt: an RM's day on the phone, part 5 of 6: working without signal.
 *
 * - Today's plan: from the network when it answers; else the copy the service worker (gridmkt-day-sw.js) or this
 *   page saved, stamped with when it was saved (X-Gridmkt-Cached-At), and the page says so and how old it is.
 * - Map tiles: once the plan is known, the page asks the service worker to keep the basemap and cell tiles of
 *   the RM's territory at the zooms this page shows (the territory box from the fit zoom up, and each stop up
 *   close), at most C.tileBudget of them; the worker serves tiles stale-while-revalidate from a bounded cache.
 */
(function () {
  "use strict";
  var D = window.gridmktDayApp, C = D.C, state = D.state, PLAN_URL = C.planUrl;
  var STAMP = "X-Gridmkt-Cached-At", BUDGET = C.tileBudget || 600;

  function stamped(response) {
    var h = new Headers(response.headers);
    h.set(STAMP, String(Date.now()));
    return response.blob().then(function (b) { return new Response(b, { status: response.status, headers: h }); });
  }
  function savedAt(response) {
    var t = Number(response.headers.get(STAMP));
    return t > 0 ? t : null;
  }

  D.loadPlan = function () {
    return fetch(PLAN_URL, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 404) return { missing: true };
        if (r.status === 401) return cachedPlan().then(function (c) { return { plan: c.plan, cachedAt: c.at, signIn: true }; });
        if (!r.ok) throw new Error("HTTP " + r.status);
        var offline = r.headers.get("X-Gridmkt-Offline"), at = savedAt(r);
        if (!offline) keepCopy(r.clone());
        return r.json().then(function (p) { return { plan: p, offline: offline, cachedAt: offline ? at : null }; });
      })
      .catch(function () {
        return cachedPlan().then(function (c) { return { plan: c.plan, offline: "cache", cachedAt: c.at }; });
      });
  };
  // The service worker keeps the plan when it controls the page; on the very first visit it does not yet. The
  // page itself is saved each time the plan comes from the network: the first visit, and a service worker that
  // arrived after it, never saw the page's own request.
  function keepCopy(response) {
    if (!window.caches) return;
    var controlled = navigator.serviceWorker && navigator.serviceWorker.controller;
    caches.open(D.DATA_CACHE).then(function (c) {
      var plan = controlled ? null : stamped(response).then(function (r) { return c.put(PLAN_URL, r); });
      return Promise.all([plan, c.add(location.pathname)]);
    }).catch(function () {});
  }
  function cachedPlan() {
    if (!window.caches) return Promise.resolve({ plan: null, at: null });
    return caches.match(PLAN_URL).then(function (r) {
      if (!r) return { plan: null, at: null };
      return r.json().then(function (p) { return { plan: p, at: savedAt(r) }; });
    }).catch(function () { return { plan: null, at: null }; });
  }
  // After the outbox sent something: fetch the plan again so the saved copy has the stops' new state.
  D.refreshPlanCopy = function () {
    if (!navigator.onLine) return;
    fetch(PLAN_URL, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (r.ok && !r.headers.get("X-Gridmkt-Offline")) keepCopy(r); }).catch(function () {});
  };

  // "离线 offline · 保存的计划 saved plan 14:02（35 分钟前 35 min ago）· 地图 212 块 map tiles": what is cached, how old.
  D.cachedText = function (planAt) {
    var parts = ["离线 offline"];
    if (planAt) parts.push("保存的计划 saved plan " + D.clock(new Date(planAt)) + "（" + D.age(planAt) + "）");
    return tileAge().then(function (t) {
      parts.push(t.count ? "地图 " + t.count + " 块 map tiles" + (t.at && (!planAt || Math.abs(t.at - planAt) > 600000)
        ? "（" + D.age(t.at) + "）" : "") : "地图未保存 no map saved");
      return parts.join(" · ");
    });
  };
  function tileAge() {
    if (!window.caches) return Promise.resolve({ count: 0, at: null });
    return caches.open(D.TILE_CACHE).then(function (c) {
      return c.keys().then(function (keys) {
        if (!keys.length) return { count: 0, at: null };
        return c.match(keys[0]).then(function (r) { return { count: keys.length, at: r ? savedAt(r) : null }; });
      });
    }).catch(function () { return { count: 0, at: null }; });
  }

  D.registerWorker = function () {
    if (!("serviceWorker" in navigator) || !C.swUrl) return;
    navigator.serviceWorker.addEventListener("message", function (ev) {
      if (ev.data && ev.data.type === "warmed") state.warmed = ev.data;
    });
    navigator.serviceWorker.register(C.swUrl, { scope: C.swScope }).catch(function () {
      // Plain http off localhost: no service worker; the page still works while there is signal.
    });
  };

  // ---------- tiles of the RM's territory ----------
  function tileXY(lat, lon, z) {
    var n = Math.pow(2, z), r = lat * Math.PI / 180;
    var x = Math.floor((lon + 180) / 360 * n), y = Math.floor((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2 * n);
    return [Math.min(n - 1, Math.max(0, x)), Math.min(n - 1, Math.max(0, y))];
  }
  function fill(template, z, x, y, extra) {
    var subs = "abc";
    return template.replace("{s}", subs[Math.abs(x + y) % subs.length]).replace("{r}", "")
      .replace("{z}", z).replace("{x}", x).replace("{y}", y).replace("{grid_id}", extra);
  }
  // Tile URLs to keep: each stop up close (z15, z16), then the territory box zoom by zoom from the fit zoom,
  // until the budget is spent (a zoom level that does not fit whole is left out).
  D.tileUrls = function (plan) {
    var t = plan.territory, templates = [];
    if (C.tileUrl) templates.push([C.tileUrl, ""]);
    if (t && C.cellTilesUrl) templates.push([C.cellTilesUrl, encodeURIComponent(t.grid_id)]);
    if (!templates.length) return [];
    var urls = [], seen = {};
    function add(z, x, y) {
      templates.forEach(function (tp) {
        var u = new URL(fill(tp[0], z, x, y, tp[1]), location.href).href;
        if (!seen[u]) { seen[u] = 1; urls.push(u); }
      });
    }
    (plan.stops || []).forEach(function (s) {
      if (s.lat === null || s.lat === undefined) return;
      var p = D.gcj(s.lat, s.lon);
      [15, 16].forEach(function (z) { var xy = tileXY(p[0], p[1], z); add(z, xy[0], xy[1]); });
    });
    if (!t) return urls;
    var sw = D.gcj(t.bbox[1], t.bbox[0]), ne = D.gcj(t.bbox[3], t.bbox[2]);
    var z0 = Math.max(6, state.map.getBoundsZoom(L.latLngBounds(sw, ne)) - 1);
    for (var z = z0; z <= 16; z++) {
      var a = tileXY(ne[0], sw[1], z), b = tileXY(sw[0], ne[1], z);
      var n = (b[0] - a[0] + 1) * (b[1] - a[1] + 1) * templates.length;
      if (urls.length + n > BUDGET) break;
      for (var x = a[0]; x <= b[0]; x++) for (var y = a[1]; y <= b[1]; y++) add(z, x, y);
    }
    return urls;
  };
  D.warmTiles = function (plan) {
    if (!("serviceWorker" in navigator) || !navigator.onLine) return;
    var urls = D.tileUrls(plan);
    if (!urls.length) return;
    navigator.serviceWorker.ready.then(function (reg) {
      if (reg.active) reg.active.postMessage({ type: "warm", urls: urls });
    }).catch(function () {});
  };
})();
