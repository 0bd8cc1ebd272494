/* gridmkt: an RM's day on the phone, part 2 of 6: the map (basemap, the RM's cells, route, numbered pins) and
 * the stop list. Where each stop stands comes from the plan (the server's state of today's visits) merged with
 * what this phone knows and has not sent yet (mergeServer); done stops are greyed and the route is drawn over
 * the stops still ahead, the planned route faint beneath it.
 */
(function () {
  "use strict";
  var D = window.gridmktDayApp, C = D.C, state = D.state, el = D.el, $ = D.$;
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
  D.gcj = gcj;

  D.initMap = function () {
    var map = L.map("gd-map", { zoomControl: true, maxZoom: 19, attributionControl: !!C.tileUrl });
    if (C.tileUrl) L.tileLayer(C.tileUrl, { attribution: C.attribution || "basemap", maxZoom: 19 }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    map.setView([38.5, 106.3], 9);
    state.map = map;
    drawContext(map);
  };

  // The context layer from the project's own data (maps/day.py day_context, in the page's config, so it is there
  // offline too): the RM's counties' outlines, township boundaries and seats, village names from zoom 13; drawn
  // as on the other pages (gridmkt.js), under the route. The county is not filled: the cells lie beneath it.
  function drawContext(map) {
    var G = window.gridmkt, group = L.featureGroup();
    if (!G) return;
    (C.context || []).forEach(function (c) {
      if (c.geo) G.geoLayer(c.geo, c.kind, { fill: false, interactive: false }).addTo(group);
      else if (c.rows) G.pointLayer(c.rows, c.kind).addTo(group);
    });
    group.addTo(map);
    state.context = group;
    if (group.getLayers().length) {
      var b = group.getBounds();
      if (b.isValid()) map.fitBounds(b);  // until the plan comes: the RM's county, not an empty map
    }
  }

  // The RM's own cells (the /tiles route answers only theirs), blank cells tinted: where to go next.
  D.drawCells = function (plan) {
    var t = plan.territory;
    if (!t || !C.cellTilesUrl || !L.vectorGrid) return;
    if (state.cells) {  // a new plan on another grid: that grid's cells
      if (state.cellsGrid === t.grid_id) return;
      state.map.removeLayer(state.cells);
      state.cells = null;
    }
    state.cellsGrid = t.grid_id;
    var b = t.bbox, sw = gcj(b[1], b[0]), ne = gcj(b[3], b[2]);
    var vg = L.vectorGrid.protobuf(C.cellTilesUrl.replace("{grid_id}", encodeURIComponent(t.grid_id)), {
      bounds: L.latLngBounds(sw, ne), interactive: false, maxNativeZoom: 17, zIndex: 2,
      rendererFactory: L.canvas.tile,
      vectorTileLayerStyles: { cells: function (p, z) {
        var blank = p.gap_class === "blank";
        return { fill: true, fillColor: blank ? "#dd6b20" : "#2b6cb0", fillOpacity: blank ? 0.18 : 0.06,
          color: blank ? "#c05621" : "#2b6cb0", weight: z >= 12 ? 1.2 : 0.6, opacity: 0.55 };
      } }
    });
    vg.on("tileload", function () { state.tiles.loaded += 1; });
    vg.on("tileerror", function () { state.tiles.failed += 1; });
    vg.addTo(state.map);
    state.cells = vg;
  };

  // What the phone shows for a stop: planned, queued (not sent yet), refused, in (checked in) or done.
  D.stopStatus = function (s) {
    var v = state.visits[s.customer_id];
    if (!v) return "planned";
    if (v.error || v.out_error) return "refused";
    if (v.queued || v.out_queued) return "queued";
    return v.checkout_at ? "done" : "in";
  };
  function flagged(s) {
    var v = state.visits[s.customer_id];
    return !!(v && (v.flag_far || v.flag_short));
  }
  function visited(s) { var v = state.visits[s.customer_id]; return !!(v && !v.error); }
  function outcomeLabel(code) {
    var o = (C.outcomes || []).filter(function (x) { return x[0] === code; })[0];
    return o ? o[1] : code;
  }

  // The server's state of today's visits into state.visits. A fresh plan is the truth for every stop this phone
  // has nothing unsent for; a saved copy (offline) may predate this phone's own check-ins, so they stay.
  D.mergeServer = function (plan, fresh) {
    (plan.stops || []).forEach(function (s) {
      var local = state.visits[s.customer_id];
      if (D.pending(local) || (!fresh && local)) return;
      if (!s.state || s.state === "planned") { if (fresh) delete state.visits[s.customer_id]; return; }
      state.visits[s.customer_id] = {
        key: local ? local.key : null, visit_id: s.visit_id, kind: s.visit_kind || (local && local.kind) || "",
        at: s.checkin_at || s.visited_at, distance_m: s.distance_m, flag_far: !!s.flag_far, flag_short: !!s.flag_short,
        checkout_at: s.checkout_at || (s.state === "done" && !s.checkin_at ? s.visited_at : null),
        outcome: s.outcome, outcome_label: s.outcome ? outcomeLabel(s.outcome) : "", note: local ? local.note : null
      };
    });
  };

  function stopIcon(s) {
    var st = D.stopStatus(s);
    return L.divIcon({ className: "gd-pin-icon", iconSize: [34, 34], iconAnchor: [17, 17], popupAnchor: [0, -14],
      html: "<div class=\"gd-pin gd-" + st + (flagged(s) ? " gd-flagged" : "") + "\">" +
        (st === "done" ? "✓" : Number(s.seq)) + "</div>" });
  }
  function placeLabel(src) {
    return { customer: "客户位置 customer's point", village: "村位置 village point" }[src] || "无位置 no place";
  }
  function popupOf(s) {
    var box = el("div", "gm-pop gd-pop");
    box.appendChild(el("div", "gm-title", s.seq + ". " + (s.name || s.customer_id)));
    box.appendChild(el("div", "gm-id", s.customer_id + " · " + placeLabel(s.place_source)));
    if (s.reason_zh || s.reason_en) box.appendChild(el("div", "gm-reason", [s.reason_zh, s.reason_en].filter(Boolean).join(" · ")));
    box.appendChild(el("div", "gd-times", "到达 arrive " + D.hhmm(s.arrive_at) + " · 离开 leave " + D.hhmm(s.depart_at) +
      (s.window_start ? " · 时段 window " + D.hhmm(s.window_start) + "–" + D.hhmm(s.window_end) : "")));
    box.appendChild(el("div", "gd-times", D.stateText(s)));
    var links = el("div", "gm-links");
    [["tag_url", "客户标签 tags", "gm-btn gm-tag"], ["lead_url", "营销线索 leads", "gm-btn gm-lead"]].forEach(function (x) {
      var href = D.safeHref(s[x[0]]);
      if (!href) return;
      var a = el("a", x[2], x[1]);
      a.href = href; a.target = "_blank"; a.rel = "noopener";
      links.appendChild(a);
    });
    box.appendChild(links);
    return box;
  }
  // One line: 计划 planned / 已签到 checked in 09:12 / 已完成 done 10:05 · outcome.
  D.stateText = function (s) {
    var v = state.visits[s.customer_id], st = D.stopStatus(s);
    if (st === "planned") return "计划中 planned";
    if (st === "refused") return "被拒 refused by the server";
    var t = v.checkout_at ? "已完成 done " + D.hhmm(v.checkout_at) + (v.outcome_label ? " · " + v.outcome_label : "")
      : "已签到 checked in " + D.hhmm(v.at);
    return t + (st === "queued" ? " · 待发送 queued" : "");
  };

  // From the stop checked in last (else the start) through the stops not visited yet, back to the start.
  function remaining(plan, start) {
    var placed = (plan.stops || []).filter(function (s) { return s.lat !== null && s.lat !== undefined; });
    var ahead = placed.filter(function (s) { return !visited(s); });
    if (!ahead.length) return [];
    var last = null;
    placed.filter(visited).forEach(function (s) {
      var at = state.visits[s.customer_id].at;
      if (!last || at > state.visits[last.customer_id].at) last = s;
    });
    var line = [last ? gcj(last.lat, last.lon) : start];
    ahead.forEach(function (s) { line.push(gcj(s.lat, s.lon)); });
    line.push(start);
    return line;
  }
  D.drawPlan = function (plan) {
    var map = state.map, pts = [], first = !state.layer;
    if (state.layer) map.removeLayer(state.layer);
    var group = L.featureGroup(), hasStart = plan.start && plan.start.lat !== null && plan.start.lat !== undefined;
    var sp = hasStart ? gcj(plan.start.lat, plan.start.lon) : null;
    if (plan.route && plan.route.coordinates && plan.route.coordinates.length > 1) {
      var line = plan.route.coordinates.map(function (c) { return gcj(c[1], c[0]); });
      // The day as planned, faint: the legs already driven stay readable under the pins.
      L.polyline(line, { color: "#718096", weight: 3, opacity: 0.55, dashArray: "4 6", className: "gd-route-all" })
        .addTo(group);
      pts = pts.concat(line);
      var ahead = sp ? remaining(plan, sp) : [];
      if (ahead.length > 1) {
        L.polyline(ahead, { color: "#2b6cb0", weight: 4, opacity: 0.9, className: "gd-route" }).addTo(group);
      }
    }
    if (sp) {
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
      var mk = L.marker(p, { icon: stopIcon(s), title: s.seq + ". " + (s.name || s.customer_id), riseOnHover: true,
        zIndexOffset: pinZ(s) });
      mk.bindPopup(function () { return popupOf(s); }, { maxWidth: 300, minWidth: 220, autoPanPaddingTopLeft: [10, 60] });
      mk.on("click", function () { highlightRow(s.customer_id); });
      mk.addTo(group);
      state.markers[s.customer_id] = mk;
      pts.push(p);
    });
    group.addTo(map);
    state.layer = group;
    if (first && pts.length) map.fitBounds(L.latLngBounds(pts), { padding: [24, 24], maxZoom: 16 });
  };
  // Stops of one village overlap until zoomed in: the stop the RM is at lies on top, then the next ones to
  // visit, done ones beneath.
  function pinZ(s) {
    var st = D.stopStatus(s), layer = st === "in" || st === "queued" || st === "refused" ? 200000 : visited(s) ? 0 : 100000;
    return layer + 1000 * (100 - Math.min(99, s.seq));
  }
  D.refreshPin = function (s) {
    var mk = state.markers[s.customer_id];
    if (mk) mk.setIcon(stopIcon(s)).setZIndexOffset(pinZ(s));
  };
  function focusStop(s) {
    var mk = state.markers[s.customer_id];
    if (!mk) { D.notice("此客户无位置 this customer has no place on the map", "warn"); return; }
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
  D.renderSummary = function (plan) {
    $("gd-date").textContent = plan ? plan.plan_date : "";
    var s = $("gd-summary");
    s.textContent = "";
    if (!plan) return;
    var stops = plan.stops || [], n = stops.length;
    var seen = stops.filter(visited).length, done = stops.filter(function (x) { return D.stopStatus(x) === "done"; }).length;
    s.appendChild(el("span", "gd-sum-main", n + " 站 stops · " + D.metres(plan.length_m)));
    s.appendChild(el("span", "gd-sum-done", "已签到 checked in " + seen + "/" + n + " · 完成 done " + done));
  };
  // Why the route left a stop out (grid/visits/route.py).
  var DROPPED = { no_place: "无位置 no place on the map", window_closed: "时段内到不了 cannot be reached in its window",
    outside_hours: "工作时间内做不完 does not fit in working hours", no_time_left: "今天排满了 no time left today" };
  D.renderList = function (plan) {
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
          ? d.reason_zh + " " + d.reason_en : DROPPED[d.drop_reason] || d.drop_reason || "") +
          (d.state === "done" ? " · 今天已拜访 visited today" : d.state === "checked_in" ? " · 已签到 checked in" : "")));
      });
      dropped.appendChild(ul);
    }
  };
  function stopRow(s) {
    var st = D.stopStatus(s), li = el("li", "gd-stop gd-s-" + st);
    li.dataset.cid = s.customer_id;
    li.dataset.state = st;
    li.id = "gd-stop-" + s.seq;
    var head = el("button", "gd-head");
    head.type = "button";
    head.setAttribute("aria-label", "在地图上看 show on map: " + s.seq + ". " + (s.name || s.customer_id));
    head.appendChild(el("span", "gd-num gd-" + st + (flagged(s) ? " gd-flagged" : ""), st === "done" ? "✓" : s.seq));
    var who = el("span", "gd-who");
    who.appendChild(el("span", "gd-name", (st === "done" ? s.seq + ". " : "") + (s.name || s.customer_id)));
    who.appendChild(el("span", "gd-meta", D.hhmm(s.arrive_at) + "–" + D.hhmm(s.depart_at) +
      (s.window_start ? " · 时段 window " + D.hhmm(s.window_start) + "–" + D.hhmm(s.window_end) : "") +
      (s.kind === "task" ? " · 任务 task" : "")));
    if (st !== "done" && (s.reason_zh || s.reason_en)) who.appendChild(el("span", "gd-reason", s.reason_zh || s.reason_en));
    head.appendChild(who);
    head.addEventListener("click", function () { focusStop(s); });
    li.appendChild(head);
    if (st !== "done") {
      var acts = el("div", "gd-actions");
      var geo = D.safeHref(s.geo_uri), amap = D.safeHref(s.amap_uri);
      if (geo) { var a1 = el("a", "gd-btn gd-nav", "导航 navigate"); a1.href = geo; acts.appendChild(a1); }
      if (amap) { var a2 = el("a", "gd-btn gd-amap", "高德 Amap"); a2.href = amap; acts.appendChild(a2); }
      li.appendChild(acts);
    }
    li.appendChild(D.visitBox(s));
    return li;
  }
  // After a change to one stop: its row, its pin, the route still ahead and the counts.
  D.rerenderStop = function (s) {
    var row = document.querySelector(".gd-stop[data-cid=\"" + CSS.escape(s.customer_id) + "\"]");
    if (row) row.replaceWith(stopRow(s));
    D.drawPlan(state.plan);
    D.renderSummary(state.plan);
  };
})();
