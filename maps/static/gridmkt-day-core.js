/* gridmkt: an RM's day on the phone, part 1 of 6: the shared namespace, state, small helpers and IndexedDB.
 *
 * The day page (maps/day.py) loads, in order: gridmkt-day-core.js (this), gridmkt-day-plan.js (map, route,
 * stop list), gridmkt-day-checkin.js (签到/签退 forms), gridmkt-day-outbox.js (sending, refusals),
 * gridmkt-day-offline.js (plan copy, service worker, map tiles kept offline) and gridmkt-day.js (start).
 * Each adds its functions to window.gridmktDayApp (D below); nothing runs before gridmkt-day.js.
 */
(function () {
  "use strict";
  var C = window.gridmktDay;
  var D = window.gridmktDayApp = {
    C: C, DB_NAME: "gridmkt-day", DATA_CACHE: "gridmkt-day-data", TILE_CACHE: "gridmkt-day-tiles",
    // plan: the day as the server answered; visits: customer_id -> what this phone knows of today's visit.
    state: { plan: null, fresh: false, markers: {}, visits: {}, outbox: [], retries: 0, timer: null, flushing: null,
             map: null, tiles: { loaded: 0, failed: 0 } },
    ready: null
  };

  D.el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  D.$ = function (id) { return document.getElementById(id); };
  D.uuid = function () {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  };
  // Clock times and "today" in the bank's zone (GRIDMKT_TIMEZONE, C.tz), as the server counts the plan's day,
  // whatever zone the phone is set to (the phone's own where the browser has no time zones).
  function zoned(opts) {
    try { return C.tz ? new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: C.tz }, opts)) : null; }
    catch (e) { return null; }
  }
  var clockFmt = zoned({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  var dateFmt = zoned({ year: "numeric", month: "2-digit", day: "2-digit" });
  D.clock = function (d) { return clockFmt ? clockFmt.format(d) : d.toTimeString().slice(0, 5); };
  // A timestamp (ISO, with its offset) as the phone's clock time; a bare 'HH:MM' (a task's window) as it is.
  D.hhmm = function (v) {
    if (!v) return "";
    if (/^\d{2}:\d{2}/.test(String(v))) return String(v).slice(0, 5);
    var d = new Date(v);
    return isNaN(d) ? String(v) : D.clock(d);
  };
  D.metres = function (m) {
    if (m === null || m === undefined) return "–";
    return m >= 1000 ? (m / 1000).toFixed(1) + " km" : Math.round(m) + " m";
  };
  // How long ago, in words a glance takes in: "5 分钟前 5 min ago".
  D.age = function (ms) {
    var min = Math.max(0, Math.round((Date.now() - ms) / 60000));
    if (min < 1) return "刚刚 just now";
    if (min < 60) return min + " 分钟前 " + min + " min ago";
    var h = Math.round(min / 60);
    return h < 48 ? h + " 小时前 " + h + " h ago" : Math.round(h / 24) + " 天前 " + Math.round(h / 24) + " days ago";
  };
  D.localDate = function () {
    var d = new Date();
    if (dateFmt) {
      var p = {};
      dateFmt.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
      return p.year + "-" + p.month + "-" + p.day;
    }
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  };
  D.safeHref = function (u) {
    // Links come from the server; only the schemes a stop may carry (no javascript:).
    return /^(https?:|geo:|amapuri:|androidamap:|iosamap:|\/)/i.test(String(u || "")) ? String(u) : null;
  };
  D.notice = function (text, kind) {
    var n = D.$("gd-notice");
    n.textContent = text || "";
    delete n.dataset.offline;
    n.className = "gd-notice" + (kind ? " gd-" + kind : "");
    n.hidden = !text;
  };
  D.clearError = function () {
    if (D.$("gd-notice").classList.contains("gd-bad")) D.notice("");
  };
  D.signInLink = function () {
    var a = D.el("a", "", "重新登录 sign in again");
    a.href = "/maps/login?next=" + encodeURIComponent(location.pathname);
    D.$("gd-notice").appendChild(a);
  };
  D.stopOf = function (cid) {
    return ((D.state.plan && D.state.plan.stops) || []).filter(function (s) { return s.customer_id === cid; })[0];
  };

  // ---------- IndexedDB: outbox (in order) and kv (the visits this phone knows of, per day) ----------
  var dbp = null;
  function db() {
    if (!dbp) {
      dbp = new Promise(function (resolve, reject) {
        var req = indexedDB.open(D.DB_NAME, 1);
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
  D.tx = function (store, mode, fn) {
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
  };
  D.outbox = {
    all: function () { return D.tx("outbox", "readonly", function (s) { return s.getAll(); }); },
    add: function (e) { return D.tx("outbox", "readwrite", function (s) { return s.add(e); }); },
    put: function (e) { return D.tx("outbox", "readwrite", function (s) { return s.put(e); }); },
    del: function (seq) { return D.tx("outbox", "readwrite", function (s) { return s.delete(seq); }); }
  };
  function visitsKey() { return "visits:" + C.rmCode + ":" + (D.state.plan ? D.state.plan.plan_date : D.localDate()); }
  D.loadVisits = function () {
    return D.tx("kv", "readonly", function (s) { return s.get(visitsKey()); })
      .then(function (r) { D.state.visits = (r && r.v) || {}; });
  };
  D.saveVisits = function () {
    return D.tx("kv", "readwrite", function (s) { return s.put({ k: visitsKey(), v: D.state.visits }); });
  };
  // A visit this phone still has to send (or the server refused): the phone's version wins over the plan's.
  D.pending = function (v) { return !!(v && (v.queued || v.out_queued || v.error || v.out_error)); };
})();
