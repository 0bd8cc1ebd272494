/* gridmkt: an RM's day on the phone (maps/day.py builds the page around window.gridmktDay).
 *
 * Today's plan from the API: the route with numbered stops and the start point on the map, the stops as a list
 * (tap a row: the map opens that customer's popup), navigate links, 签到 check-in with the phone's position and
 * 签退 check-out with a note and outcome. Every check-in/check-out first goes into an outbox in IndexedDB (its
 * own time, position and idempotency key) and is then sent, in order; an entry leaves the outbox only when the
 * server answers 2xx (a replay of the same key answers with the row already stored, so nothing is recorded
 * twice). Without signal the entries wait and are sent when `online` fires, or by a timer with back-off. A
 * service worker (gridmkt-day-sw.js) keeps the page, its assets and today's plan readable offline.
 */
(function () {
  "use strict";
  var C = window.gridmktDay, PLAN_URL = C.planUrl;
  var DB_NAME = "gridmkt-day", DATA_CACHE = "gridmkt-day-data";
  var RETRY_MIN_MS = C.retryMinMs || 5000, RETRY_MAX_MS = 5 * 60 * 1000;
  var state = { plan: null, markers: {}, visits: {}, outbox: [], retries: 0, timer: null, flushing: null, map: null };

  // ---------- small helpers ----------
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function $(id) { return document.getElementById(id); }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }
  // A timestamp (ISO, with its offset) as the phone's clock time; a bare 'HH:MM' (a task's window) as it is.
  function hhmm(v) {
    if (!v) return "";
    if (/^\d{2}:\d{2}/.test(String(v))) return String(v).slice(0, 5);
    var d = new Date(v);
    return isNaN(d) ? String(v) : clock(d);
  }
  function clock(d) { return d.toTimeString().slice(0, 5); }
  function metres(m) {
    if (m === null || m === undefined) return "–";
    return m >= 1000 ? (m / 1000).toFixed(1) + " km" : Math.round(m) + " m";
  }
  function localDate() {
    var d = new Date();
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  }
  function safeHref(u) {
    // Links come from the server; only the schemes a stop may carry (no javascript:).
    return /^(https?:|geo:|amapuri:|androidamap:|iosamap:|\/)/i.test(String(u || "")) ? String(u) : null;
  }
  function clearError() {
    if ($("gd-notice").classList.contains("gd-bad")) notice("");
  }
  function notice(text, kind) {
    var n = $("gd-notice");
    n.textContent = text || "";
    delete n.dataset.offline;
    n.className = "gd-notice" + (kind ? " gd-" + kind : "");
    n.hidden = !text;
  }

  // ---------- IndexedDB: outbox (in order) and kv (visits made on this phone) ----------
  var dbp = null;
  function db() {
    if (!dbp) {
      dbp = new Promise(function (resolve, reject) {
        var req = indexedDB.open(DB_NAME, 1);
        req.onupgradeneeded = function () {
          var d = req.result;
          d.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
          d.createObjectStore("kv", { keyPath: "k" });
        };
        req.onsuccess = function () { resolve(req.result); };
        req.onerror = function () { reject(req.error); };
      });
    }
    return dbp;
  }
  function tx(store, mode, fn) {
    return db().then(function (d) {
      return new Promise(function (resolve, reject) {
        var t = d.transaction(store, mode), s = t.objectStore(store), out;
        var r = fn(s);
        if (r) r.onsuccess = function () { out = r.result; };
        t.oncomplete = function () { resolve(out); };
        t.onerror = function () { reject(t.error); };
        t.onabort = function () { reject(t.error); };
      });
    });
  }
  var outbox = {
    all: function () { return tx("outbox", "readonly", function (s) { return s.getAll(); }); },
    add: function (e) { return tx("outbox", "readwrite", function (s) { return s.add(e); }); },
    put: function (e) { return tx("outbox", "readwrite", function (s) { return s.put(e); }); },
    del: function (seq) { return tx("outbox", "readwrite", function (s) { return s.delete(seq); }); }
  };
  function visitsKey() { return "visits:" + C.rmCode + ":" + (state.plan ? state.plan.plan_date : localDate()); }
  function loadVisits() {
    return tx("kv", "readonly", function (s) { return s.get(visitsKey()); })
      .then(function (r) { state.visits = (r && r.v) || {}; });
  }
  function saveVisits() {
    return tx("kv", "readwrite", function (s) { return s.put({ k: visitsKey(), v: state.visits }); });
  }

  // ---------- the plan ----------
  function loadPlan() {
    return fetch(PLAN_URL, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 404) return { missing: true };
        if (r.status === 401) return cachedPlan().then(function (p) { return { plan: p, signIn: true }; });
        if (!r.ok) throw new Error("HTTP " + r.status);
        var copy = r.clone();
        return r.json().then(function (p) {
          keepCopy(copy);
          return { plan: p, offline: r.headers.get("X-Gridmkt-Offline") };
        });
      })
      .catch(function () { return cachedPlan().then(function (p) { return { plan: p, offline: "cache" }; }); });
  }
  // The service worker keeps the plan when it controls the page; on the very first visit it does not yet. The
  // page itself is saved each time the plan comes from the network: the first visit, and a service worker that
  // arrived after it, never saw the page's own request.
  function keepCopy(response) {
    if (!window.caches) return;
    var controlled = navigator.serviceWorker && navigator.serviceWorker.controller;
    caches.open(DATA_CACHE).then(function (c) {
      if (!controlled) c.put(PLAN_URL, response);
      return c.add(location.pathname);
    }).catch(function () {});
  }
  function cachedPlan() {
    if (!window.caches) return Promise.resolve(null);
    return caches.match(PLAN_URL).then(function (r) { return r ? r.json() : null; }).catch(function () { return null; });
  }
  function makePlan(fromHere) {
    var go = function (pos) {
      var body = {};
      if (pos) { body.start_lon = pos.coords.longitude; body.start_lat = pos.coords.latitude; }
      notice("正在排计划… planning…");
      return fetch(PLAN_URL, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body)
      }).then(function (r) {
        if (!r.ok) return r.json().catch(function () { return {}; }).then(function (b) {
          throw new Error((b && b.detail ? (typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail)) : "HTTP " + r.status));
        });
        notice("");
        return start();
      }).catch(function (e) { notice("排计划失败 planning failed: " + e.message, "bad"); });
    };
    if (!navigator.onLine) { notice("排计划需要网络 planning needs the network", "bad"); return; }
    if (!fromHere) return go(null);
    position().then(go, function (e) { notice(e.message, "bad"); });
  }

  // ---------- map ----------
  var GCJ = C.tileCrs === "gcj02" && !!C.tileUrl;
  // WGS84 → GCJ-02 (the published approximation, as grid/chinacrs.py), only when the basemap is GCJ-02.
  function gcj(lat, lon) {
    if (!GCJ || lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271) return [lat, lon];
    var a = 6378245.0, ee = 0.00669342162296594323, x = lon - 105, y = lat - 35;
    var dLat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) +
      (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3 +
      (20 * Math.sin(y * Math.PI) + 40 * Math.sin(y / 3 * Math.PI)) * 2 / 3 +
      (160 * Math.sin(y / 12 * Math.PI) + 320 * Math.sin(y * Math.PI / 30)) * 2 / 3;
    var dLon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) +
      (20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2 / 3 +
      (20 * Math.sin(x * Math.PI) + 40 * Math.sin(x / 3 * Math.PI)) * 2 / 3 +
      (150 * Math.sin(x / 12 * Math.PI) + 300 * Math.sin(x / 30 * Math.PI)) * 2 / 3;
    var rad = lat / 180 * Math.PI, magic = 1 - ee * Math.sin(rad) * Math.sin(rad), sq = Math.sqrt(magic);
    dLat = (dLat * 180) / ((a * (1 - ee)) / (magic * sq) * Math.PI);
    dLon = (dLon * 180) / (a / sq * Math.cos(rad) * Math.PI);
    return [lat + dLat, lon + dLon];
  }
  function initMap() {
    var map = L.map("gd-map", { zoomControl: true, maxZoom: 19, attributionControl: !!C.tileUrl });
    if (C.tileUrl) L.tileLayer(C.tileUrl, { attribution: C.attribution || "basemap", maxZoom: 19 }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    map.setView([38.5, 106.3], 9);
    state.map = map;
  }
  function stopStatus(s) {
    var v = state.visits[s.customer_id];
    if (!v) return "planned";
    if (v.flag_far || v.flag_short) return "flagged";
    if (v.queued || v.out_queued) return "queued";
    return v.checkout_at ? "done" : "in";
  }
  function stopIcon(s) {
    return L.divIcon({ className: "gd-pin-icon", iconSize: [34, 34], iconAnchor: [17, 17], popupAnchor: [0, -14],
      html: "<div class=\"gd-pin gd-" + stopStatus(s) + "\">" + Number(s.seq) + "</div>" });
  }
  function popupOf(s) {
    var box = el("div", "gm-pop gd-pop");
    box.appendChild(el("div", "gm-title", s.seq + ". " + (s.name || s.customer_id)));
    box.appendChild(el("div", "gm-id", s.customer_id + " · " + placeLabel(s.place_source)));
    if (s.reason_zh || s.reason_en) box.appendChild(el("div", "gm-reason", [s.reason_zh, s.reason_en].filter(Boolean).join(" · ")));
    box.appendChild(el("div", "gd-times", "到达 arrive " + hhmm(s.arrive_at) + " · 离开 leave " + hhmm(s.depart_at) +
      (s.window_start ? " · 时段 window " + hhmm(s.window_start) + "–" + hhmm(s.window_end) : "")));
    var links = el("div", "gm-links");
    [["tag_url", "客户标签 tags", "gm-btn gm-tag"], ["lead_url", "营销线索 leads", "gm-btn gm-lead"]].forEach(function (x) {
      var href = safeHref(s[x[0]]);
      if (!href) return;
      var a = el("a", x[2], x[1]);
      a.href = href; a.target = "_blank"; a.rel = "noopener";
      links.appendChild(a);
    });
    box.appendChild(links);
    return box;
  }
  function placeLabel(src) {
    return { customer: "客户位置 customer's point", village: "村位置 village point" }[src] || "无位置 no place";
  }
  function drawPlan(plan) {
    var map = state.map, pts = [];
    if (state.layer) map.removeLayer(state.layer);
    var group = L.featureGroup();
    if (plan.route && plan.route.coordinates && plan.route.coordinates.length > 1) {
      var line = plan.route.coordinates.map(function (c) { return gcj(c[1], c[0]); });
      L.polyline(line, { color: "#2b6cb0", weight: 4, opacity: 0.85, className: "gd-route" }).addTo(group);
      pts = pts.concat(line);
    }
    if (plan.start && plan.start.lat !== null && plan.start.lat !== undefined) {
      var sp = gcj(plan.start.lat, plan.start.lon);
      // Up and left of its point: the outlet's own customers' stops sit on the same spot.
      L.marker(sp, { icon: L.divIcon({ className: "gd-pin-icon", iconSize: [34, 34], iconAnchor: [32, 32],
        html: "<div class=\"gd-pin gd-start\">起</div>" }), title: "起点 start", zIndexOffset: -100 })
        .bindTooltip("起点 start · " + ({ outlet: "网点 outlet", phone: "手机位置 phone" }[plan.start.source] || plan.start.source || ""))
        .addTo(group);
      pts.push(sp);
    }
    state.markers = {};
    (plan.stops || []).forEach(function (s) {
      if (s.lat === null || s.lat === undefined) return;
      var p = gcj(s.lat, s.lon);
      // Stops of one village overlap until zoomed in: the next ones to visit lie on top.
      var mk = L.marker(p, { icon: stopIcon(s), title: s.seq + ". " + (s.name || s.customer_id), riseOnHover: true,
        zIndexOffset: (state.visits[s.customer_id] ? 0 : 100000) + 1000 * (100 - Math.min(99, s.seq)) });
      mk.bindPopup(function () { return popupOf(s); }, { maxWidth: 300, minWidth: 220, autoPanPaddingTopLeft: [10, 60] });
      mk.on("click", function () { highlightRow(s.customer_id); });
      mk.addTo(group);
      state.markers[s.customer_id] = mk;
      pts.push(p);
    });
    group.addTo(map);
    state.layer = group;
    if (pts.length) map.fitBounds(L.latLngBounds(pts), { padding: [24, 24], maxZoom: 16 });
  }
  function refreshPin(s) {
    var mk = state.markers[s.customer_id];
    if (mk) mk.setIcon(stopIcon(s)).setZIndexOffset(1000 * (100 - Math.min(99, s.seq)));
  }
  function focusStop(s) {
    var mk = state.markers[s.customer_id];
    if (!mk) { notice("此客户无位置 this customer has no place on the map", "warn"); return; }
    state.map.setView(mk.getLatLng(), Math.max(state.map.getZoom(), 15));
    mk.openPopup();
    highlightRow(s.customer_id);
    $("gd-map").scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
  function highlightRow(cid) {
    Array.prototype.forEach.call(document.querySelectorAll(".gd-stop.gd-current"), function (r) { r.classList.remove("gd-current"); });
    var row = document.querySelector(".gd-stop[data-cid=\"" + CSS.escape(cid) + "\"]");
    if (row) row.classList.add("gd-current");
  }

  // ---------- the list ----------
  function renderHeader(plan, info) {
    $("gd-date").textContent = plan ? plan.plan_date : "";
    var s = $("gd-summary");
    s.textContent = "";
    if (!plan) return;
    var n = (plan.stops || []).length, done = (plan.stops || []).filter(function (x) { return state.visits[x.customer_id]; }).length;
    s.textContent = n + " 站 stops · " + metres(plan.length_m) + " · 已签到 checked in " + done + "/" + n;
    var warn = [];
    if (info.offline) warn.push("离线：显示缓存的计划 offline: showing the saved plan");
    if (plan.plan_date !== localDate()) warn.push("这不是今天的计划 this is not today's plan (" + plan.plan_date + ")");
    if (info.signIn) warn.push("登录已过期 session expired: ");
    if (warn.length) {
      notice(warn.join(" · "), "warn");
      if (info.offline) $("gd-notice").dataset.offline = "1";
      if (info.signIn) {
        var a = el("a", "", "重新登录 sign in again");
        a.href = "/maps/login?next=" + encodeURIComponent(location.pathname);
        $("gd-notice").appendChild(a);
      }
    }
  }
  // Why the route left a stop out (grid/visits/route.py).
  var DROPPED = { no_place: "无位置 no place on the map", window_closed: "时段内到不了 cannot be reached in its window",
    outside_hours: "工作时间内做不完 does not fit in working hours", no_time_left: "今天排满了 no time left today" };
  function renderList(plan) {
    var list = $("gd-stops");
    list.textContent = "";
    (plan.stops || []).forEach(function (s) { list.appendChild(stopRow(s)); });
    var dropped = $("gd-dropped");
    dropped.textContent = "";
    if (plan.dropped && plan.dropped.length) {
      dropped.appendChild(el("h3", "", "未排入今天 not in today's route (" + plan.dropped.length + ")"));
      var ul = el("ul");
      plan.dropped.forEach(function (d) {
        ul.appendChild(el("li", "", (d.name || d.customer_id) + " · " + (d.reason_zh && d.reason_en
          ? d.reason_zh + " " + d.reason_en : DROPPED[d.drop_reason] || d.drop_reason || "")));
      });
      dropped.appendChild(ul);
    }
  }
  function stopRow(s) {
    var li = el("li", "gd-stop");
    li.dataset.cid = s.customer_id;
    li.id = "gd-stop-" + s.seq;
    var head = el("button", "gd-head");
    head.type = "button";
    head.setAttribute("aria-label", "在地图上看 show on map: " + s.seq + ". " + (s.name || s.customer_id));
    head.appendChild(el("span", "gd-num gd-" + stopStatus(s), s.seq));
    var who = el("span", "gd-who");
    who.appendChild(el("span", "gd-name", s.name || s.customer_id));
    who.appendChild(el("span", "gd-meta", hhmm(s.arrive_at) + "–" + hhmm(s.depart_at) +
      (s.window_start ? " · 时段 window " + hhmm(s.window_start) + "–" + hhmm(s.window_end) : "") +
      (s.kind === "task" ? " · 任务 task" : "")));
    if (s.reason_zh || s.reason_en) who.appendChild(el("span", "gd-reason", s.reason_zh || s.reason_en));
    head.appendChild(who);
    head.addEventListener("click", function () { focusStop(s); });
    li.appendChild(head);

    var acts = el("div", "gd-actions");
    var geo = safeHref(s.geo_uri), amap = safeHref(s.amap_uri);
    if (geo) { var a1 = el("a", "gd-btn gd-nav", "导航 navigate"); a1.href = geo; acts.appendChild(a1); }
    if (amap) { var a2 = el("a", "gd-btn gd-amap", "高德 Amap"); a2.href = amap; acts.appendChild(a2); }
    li.appendChild(acts);
    li.appendChild(visitBox(s));
    return li;
  }
  function visitBox(s) {
    var box = el("div", "gd-visit"), v = state.visits[s.customer_id];
    if (!v) {
      var kinds = el("div", "gd-kind");
      kinds.setAttribute("role", "radiogroup");
      ["面访", "电访"].forEach(function (k, i) {
        var lab = el("label", "gd-kind-opt"), r = el("input");
        r.type = "radio"; r.name = "kind-" + s.seq; r.value = k; r.checked = i === 0;
        lab.appendChild(r);
        var t = el("span", "gd-kind-text", k);
        t.appendChild(el("small", "", k === "面访" ? "in person" : "by phone"));
        lab.appendChild(t);
        kinds.appendChild(lab);
      });
      box.appendChild(kinds);
      var btn = el("button", "gd-btn gd-checkin", "签到 check in");
      btn.type = "button";
      btn.addEventListener("click", function () {
        var k = box.querySelector("input:checked");
        checkIn(s, k ? k.value : "面访", btn);
      });
      box.appendChild(btn);
      return box;
    }
    var line = el("div", "gd-state");
    line.appendChild(el("span", "gd-ok", "已签到 checked in " + clock(new Date(v.at)) + " · " + v.kind));
    if (v.queued) line.appendChild(el("span", "gd-queued", "待发送 queued (offline)"));
    else line.appendChild(el("span", "gd-dist", v.distance_m === null || v.distance_m === undefined
      ? "无距离（无位置）no distance (no place)" : "距离 distance " + metres(v.distance_m)));
    if (v.flag_far) line.appendChild(el("span", "gd-flag", "⚠ 偏远 far from the stop"));
    box.appendChild(line);
    if (v.error) box.appendChild(el("div", "gd-error", v.error));
    if (v.checkout_at) {
      var out = el("div", "gd-state");
      out.appendChild(el("span", "gd-ok", "已签退 checked out " + clock(new Date(v.checkout_at)) + " · " + (v.outcome_label || v.outcome || "")));
      if (v.out_queued) out.appendChild(el("span", "gd-queued", "待发送 queued (offline)"));
      if (v.flag_short) out.appendChild(el("span", "gd-flag", "⚠ 过短 short visit"));
      box.appendChild(out);
      if (v.note) box.appendChild(el("div", "gd-note-text", v.note));
      return box;
    }
    var form = el("form", "gd-checkout");
    var note = el("textarea");
    note.name = "note"; note.maxLength = 500; note.rows = 2; note.placeholder = "备注 note (例如 e.g. 已介绍定期存款)";
    var outcome = el("select");
    outcome.name = "outcome";
    (C.outcomes || []).forEach(function (o) {
      var opt = el("option", "", o[1]);
      opt.value = o[0];
      outcome.appendChild(opt);
    });
    var go = el("button", "gd-btn gd-checkout-btn", "签退 check out");
    go.type = "submit";
    form.appendChild(note);
    var row = el("div", "gd-row");
    row.appendChild(outcome);
    row.appendChild(go);
    form.appendChild(row);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      checkOut(s, note.value.trim(), outcome.value, outcome.options[outcome.selectedIndex].textContent);
    });
    box.appendChild(form);
    return box;
  }
  function rerenderStop(s) {
    var row = document.querySelector(".gd-stop[data-cid=\"" + CSS.escape(s.customer_id) + "\"]");
    if (row) row.replaceWith(stopRow(s));
    refreshPin(s);
    renderHeader(state.plan, {});
  }
  function stopOf(cid) {
    return (state.plan.stops || []).filter(function (s) { return s.customer_id === cid; })[0];
  }

  // ---------- check-in / check-out ----------
  function position() {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("此浏览器不能定位 this browser cannot give a position")); return; }
      navigator.geolocation.getCurrentPosition(resolve, function (e) {
        reject(new Error(e.code === 1 ? "未允许定位 location permission denied: 请在设置中允许 allow it in settings"
          : "定位失败 no position yet (" + e.message + "): 请到室外重试 try again outdoors"));
      }, { enableHighAccuracy: true, timeout: 20000, maximumAge: 0 });
    });
  }
  function checkIn(s, kind, btn) {
    btn.disabled = true;
    btn.textContent = "定位中… locating…";
    var at = new Date();  // the moment the RM tapped, kept however late the entry is sent
    position().then(function (pos) {
      var key = uuid();
      var body = { idempotency_key: key, customer_id: s.customer_id, kind: kind, at: at.toISOString(),
        lon: pos.coords.longitude, lat: pos.coords.latitude, accuracy_m: Math.round(pos.coords.accuracy * 10) / 10,
        plan_id: state.plan.plan_id };
      state.visits[s.customer_id] = { key: key, kind: kind, at: body.at, accuracy_m: body.accuracy_m, queued: true };
      return saveVisits()
        .then(function () { return outbox.add({ type: "checkin", key: key, customer_id: s.customer_id, body: body, tries: 0 }); })
        .then(function () { clearError(); rerenderStop(s); return flush(); });
    }).catch(function (e) {
      btn.disabled = false;
      btn.textContent = "签到 check in";
      notice(e.message, "bad");
    });
  }
  function checkOut(s, note, outcome, label) {
    var v = state.visits[s.customer_id], key = uuid(), at = new Date().toISOString();
    var body = { idempotency_key: key, at: at, note: note, outcome: outcome };
    v.checkout_at = at; v.note = note; v.outcome = outcome; v.outcome_label = label; v.out_queued = true;
    return saveVisits()
      .then(function () {
        return outbox.add({ type: "checkout", key: key, ref: v.key, customer_id: s.customer_id, body: body, tries: 0 });
      })
      .then(function () { rerenderStop(s); return flush(); });
  }

  // ---------- sending the outbox ----------
  function renderOutbox() {
    return outbox.all().then(function (items) {
      state.outbox = items;
      var waiting = items.filter(function (e) { return !e.rejected; }).length, refused = items.length - waiting;
      var b = $("gd-outbox");
      b.textContent = waiting || refused ? "待发送 queued " + waiting + (refused ? " · 被拒 refused " + refused : "") : "已全部发送 all sent";
      b.className = "gd-outbox" + (waiting ? " gd-waiting" : "") + (refused ? " gd-refused" : "");
      b.dataset.count = String(waiting);
    });
  }
  function setNet() {
    var on = navigator.onLine, n = $("gd-net");
    n.textContent = on ? "在线 online" : "离线 offline";
    n.className = "gd-net " + (on ? "gd-on" : "gd-off");
  }
  function schedule() {
    clearTimeout(state.timer);
    var wait = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * Math.pow(2, state.retries));
    wait = wait * (0.8 + 0.4 * Math.random());  // a village of RMs regaining signal do not all retry at once
    state.retries += 1;
    state.timer = setTimeout(flush, wait);
  }
  // One sender at a time (the `online` event, the timer and a tap can all ask at once).
  function flush() {
    if (state.flushing) return state.flushing;
    clearTimeout(state.timer);
    state.flushing = send().catch(function () { schedule(); }).then(function () {
      state.flushing = null;
      return renderOutbox();
    });
    return state.flushing;
  }
  function detailOf(r) {
    return r.json().then(function (b) {
      var d = b && b.detail;
      return typeof d === "string" ? d : JSON.stringify(d || b);
    }).catch(function () { return "HTTP " + r.status; });
  }
  function send() {
    return outbox.all().then(function (items) {
      var e = items.filter(function (x) { return !x.rejected; })[0];
      if (!e) { state.retries = 0; return null; }
      if (!navigator.onLine) { schedule(); return null; }
      var url;
      if (e.type === "checkin") url = C.checkinUrl;
      else {
        var visit = visitByKey(e.ref);
        if (!visit || !visit.visit_id) return refuse(e, "签到未被记录 the check-in was not recorded").then(send);
        url = C.checkoutUrl.replace("{visit_id}", encodeURIComponent(visit.visit_id));
      }
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(e.body)
      }).then(function (r) {
        if (r.ok) return r.json().then(function (data) { return applied(e, data); }).then(send);
        if (r.status === 401) {
          notice("登录已过期，签到保存在手机上 session expired, your check-ins are kept on the phone: ", "warn");
          var a = el("a", "", "重新登录 sign in again");
          a.href = "/maps/login?next=" + encodeURIComponent(location.pathname);
          $("gd-notice").appendChild(a);
          schedule();
          return null;
        }
        if (r.status >= 500 || r.status === 408 || r.status === 429) { schedule(); return null; }
        // The server refuses this entry (it would refuse it again): it stays, marked, and the rest go on.
        return detailOf(r).then(function (why) { return refuse(e, why + " (HTTP " + r.status + ")"); }).then(send);
      }, function () { schedule(); return null; });  // no signal: try again later
    });
  }
  function visitByKey(key) {
    for (var cid in state.visits) if (state.visits[cid].key === key) return state.visits[cid];
    return null;
  }
  function applied(e, data) {
    var v = state.visits[e.customer_id];
    if (v) {
      if (e.type === "checkin") {
        v.queued = false;
        v.visit_id = data.visit_id; v.distance_m = data.distance_m; v.flag_far = !!data.flag_far;
      } else {
        v.out_queued = false;
        v.flag_short = !!data.flag_short;
      }
      delete v.error;
    }
    return saveVisits().then(function () { return outbox.del(e.seq); }).then(function () {
      var s = stopOf(e.customer_id);
      if (s) rerenderStop(s);
    });
  }
  function refuse(e, why) {
    e.rejected = why;
    var v = state.visits[e.customer_id];
    if (v) v.error = "服务器拒绝 refused by the server: " + why;
    return saveVisits().then(function () { return outbox.put(e); }).then(function () {
      var s = stopOf(e.customer_id);
      if (s) rerenderStop(s);
    });
  }

  // ---------- start ----------
  function showEmpty() {
    var list = $("gd-stops");
    list.textContent = "";
    var li = el("li", "gd-empty");
    li.appendChild(el("p", "", "今天还没有拜访计划 no visit plan for today yet"));
    var a = el("button", "gd-btn", "生成今日计划 make today's plan");
    a.type = "button";
    a.addEventListener("click", function () { makePlan(false); });
    var b = el("button", "gd-btn gd-alt", "从我的位置出发 start from where I am");
    b.type = "button";
    b.addEventListener("click", function () { makePlan(true); });
    li.appendChild(a);
    li.appendChild(b);
    list.appendChild(li);
  }
  function start() {
    return loadPlan().then(function (info) {
      if (info.missing || !info.plan) {
        if (!info.missing) notice("离线且没有保存的计划 offline, and no plan saved on this phone", "bad");
        showEmpty();
        return;
      }
      if (info.plan.rm_code && info.plan.rm_code !== C.rmCode) {
        notice("保存的计划属于另一位客户经理 the saved plan is another RM's", "bad");
        return;
      }
      state.plan = info.plan;
      return loadVisits().then(function () {
        document.body.dataset.planId = String(info.plan.plan_id);
        renderHeader(info.plan, info);
        drawPlan(info.plan);
        renderList(info.plan);
        document.body.classList.add("gd-ready");
      });
    }).then(renderOutbox).then(flush);
  }
  function registerWorker() {
    if (!("serviceWorker" in navigator) || !C.swUrl) return;
    navigator.serviceWorker.register(C.swUrl, { scope: C.swScope }).catch(function () {
      // Plain http off localhost: no service worker; the page still works while there is signal.
    });
  }

  function main() {
    setNet();
    window.addEventListener("online", function () {
      setNet();
      state.retries = 0;
      if ($("gd-notice").dataset.offline) notice("");
      flush();
    });
    window.addEventListener("offline", setNet);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) flush(); });
    initMap();
    registerWorker();
    $("gd-replan").addEventListener("click", function () {
      if (window.confirm("从当前位置重新排今天的路线？ Re-plan today's route from where you are?")) makePlan(true);
    });
    window.gridmktDayApp.ready = start();
  }
  window.gridmktDayApp = { state: state, flush: flush, outbox: outbox, ready: null };
  // The script sits in <head> (after its settings): start once the page's elements exist.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
