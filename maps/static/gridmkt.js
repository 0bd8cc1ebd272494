/* gridmkt map pages: styles, popups and panels shared by every page (no network, no framework). */
(function () {
  "use strict";
  var cfg = function () { return window.gridmktConfig || { labels: {} }; };

  // Popups above the panels. Leaflet puts popups in a pane inside the map pane, and every control (summary,
  // legend, tables) sits above the whole map pane, so a popup opened under a panel was hidden by it. Popups go
  // to a pane of their own in the map's container, above the controls (gridmkt.css), kept in step with the map
  // pane as the map moves.
  var POPUP_PANE = "gmPopup";
  L.Map.addInitHook(function () {
    var map = this, pane = map.createPane(POPUP_PANE, map.getContainer());
    function follow() { L.DomUtil.setPosition(pane, map._getMapPanePos()); }
    map.on("move moveend zoom zoomend viewreset resize", follow);
    follow();
  });
  L.Popup.mergeOptions({ pane: POPUP_PANE });
  // Zoomed in far enough, the container gets .gm-near and the village names show (gridmkt.css).
  var NEAR_ZOOM = 13;
  L.Map.addInitHook(function () {
    var map = this;
    function near() { if (map._loaded) L.DomUtil[map.getZoom() >= NEAR_ZOOM ? "addClass" : "removeClass"](map.getContainer(), "gm-near"); }
    map.on("zoomend load", near);
    near();
  });
  // Panels start collapsed on a phone: expanded they would hide the map an RM is out in the field with.
  var SMALL = "(max-width: 600px)";

  function esc(s) {
    return String(s === null || s === undefined ? "" : s)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  function num(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return esc(v);
    return Math.abs(v) >= 100 ? v.toLocaleString("zh-CN", { maximumFractionDigits: 0 })
      : v.toLocaleString("zh-CN", { maximumFractionDigits: 2 });
  }
  function label(key) { return esc((cfg().labels || {})[key] || key); }
  // str.replace keeps other braces in a template intact; ids are encoded one by one, commas kept.
  function fill(template, key, ids) {
    return template.replace("{" + key + "}", ids.map(encodeURIComponent).join(","));
  }
  function table(obj) {
    var keys = Object.keys(obj || {});
    if (!keys.length) return "";
    return "<table class=\"gm-table\">" + keys.map(function (k) {
      return "<tr><th>" + label(k) + "</th><td>" + num(obj[k]) + "</td></tr>";
    }).join("") + "</table>";
  }
  function cellLinks(p) {
    if (!p.ids || !p.ids.length) return "<div class=\"gm-note\">本格无客户 no customers in this cell</div>";
    var c = cfg(), more = p.n && p.n > p.ids.length ? " (" + p.ids.length + "/" + num(p.n) + ")" : "";
    return "<div class=\"gm-links\">" +
      "<a class=\"gm-btn gm-tag\" target=\"_blank\" rel=\"noopener\" href=\"" + esc(fill(c.tagCellUrl, "customer_ids", p.ids)) + "\">客户标签 tags" + more + "</a>" +
      "<a class=\"gm-btn gm-lead\" target=\"_blank\" rel=\"noopener\" href=\"" + esc(fill(c.leadCellUrl, "customer_ids", p.ids)) + "\">营销线索 leads</a></div>";
  }
  // Title by place, then township and a short id (the full id in the tooltip of that line).
  function head(p) {
    return "<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(p.t || p.id) + "</div><div class=\"gm-id\" title=\"" +
      esc(p.id) + "\">" + esc(p.sub || p.id) + "</div>";
  }
  function cellPopup(p) {
    var h = head(p);
    h += "<div>客户经理 RM: <b class=\"gm-owner\">" + esc(p.o || "无 none") + "</b></div>";
    if (p.s !== undefined && p.s !== null) h += "<div>缺口评分 gap score: <b>" + num(p.s) + "</b> " + esc(p.g || "") + "</div>";
    if (p.r) h += "<div class=\"gm-reason\">" + esc(p.r) + "</div>";
    h += table(p.m);
    if (p.k && Object.keys(p.k).length) h += "<div class=\"gm-sub\">评分构成 score components (分 points)</div>" + table(p.k);
    return h + cellLinks(p) + "</div>";
  }
  var CHANGE = { kept: "未变 kept", "in": "调入 moved in", out: "调出 moved out", none: "无人负责 unowned" };
  function rmName(code, name) { return code ? esc(code) + (name ? " " + esc(name) : "") : "–"; }
  function comparePopup(p) {
    return head(p) + "<div><b class=\"gm-ch gm-ch-" + esc(p.ch) + "\">" + esc(CHANGE[p.ch] || p.ch) + "</b></div>" +
      "<table class=\"gm-table\"><tr><th>方案前 before</th><td>" + rmName(p.a, p.an) + "</td></tr>" +
      "<tr><th>方案后 after</th><td>" + rmName(p.b, p.bn) + "</td></tr></table>" + table(p.m) + "</div>";
  }
  function previewPopup(p) {
    return "<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(p.t || p.id) + "</div><div class=\"gm-id\">" + esc(p.id) + "</div>" +
      (p.v ? "<div class=\"gm-sub\">村 villages (" + p.v.length + ")</div><div>" + p.v.map(esc).join("、") + "</div>" : "") + "</div>";
  }

  var STYLES = {
    neighbour: function () { return { color: "#9a9a9a", weight: 1.5, dashArray: "6 4", fill: false, interactive: false }; },
    township_area: function () { return { color: "#8c7b6b", weight: 1, dashArray: "2 4", fill: false, interactive: false }; },
    county: function (p, bg) { return { color: "#555", weight: 2, fill: !!bg, fillColor: "#fffdf6", fillOpacity: bg ? 0.9 : 0, interactive: false }; },
    // No potential (too few households, no customers): faint, so the cells worth acting on stand out; blank
    // cells (potential, but nobody owns or visits them) outlined (maps/panels.py gap_classes_html).
    cell: function (p) {
      if (p.gc === "no-potential") return { color: "#c8c8c8", weight: 0.5, fillColor: "#ececec", fillOpacity: 0.35 };
      return p.gc === "blank" ? { color: "#54278f", weight: 2.5, fillColor: p.c || "#ccc", fillOpacity: 0.8 }
        : { color: p.oc || "#666", weight: 1.2, fillColor: p.c || "#ccc", fillOpacity: 0.72 };
    },
    territory: function (p) { return { color: p.oc || "#333", weight: 3.5, opacity: 0.9, fill: false, interactive: false }; },
    // Filled by what changes (maps/compare.py CHANGE_COLORS); kept cells faintly in their territory's colour.
    compare: function (p) {
      var c = {
        kept: { color: "#999", weight: 0.5, fillColor: p.tc || "#f4f4f4", fillOpacity: 0.16 },
        "in": { color: "#b35806", weight: 1.2, fillColor: "#f1a340", fillOpacity: 0.85 },
        out: { color: "#542788", weight: 1.2, fillColor: "#998ec3", fillOpacity: 0.85 },
        none: { color: "#999", weight: 0.5, dashArray: "3 3", fillColor: "#d9d9d9", fillOpacity: 0.45 }
      };
      return c[p.ch] || c.none;
    },
    preview: function (p) { return { color: "#3b6ea8", weight: 1.2, fillColor: p.c || "#9ecae1", fillOpacity: 0.35 }; },
    // Visits per customer (maps/cover.py): a cell without customers is outlined only.
    cover: function (p) {
      // Nearly opaque: over the dashboard's gap-score cells its colours must read as they are, not blended.
      return p.c ? { color: "#555", weight: 0.7, fillColor: p.c, fillOpacity: 0.9 }
        : { color: "#999", weight: 0.7, dashArray: "3 3", fillColor: "#fff", fillOpacity: 0.05 };
    }
  };
  function coverPopup(p) {
    var h = head(p);
    h += p.v === null || p.v === undefined ? "<div class=\"gm-note\">本格无客户 no customers in this cell</div>"
      : "<div>走访/客户 visits per customer: <b>" + num(p.v) + "</b></div>";
    return h + table(p.m) + "</div>";
  }
  var POPUPS = { cell: cellPopup, compare: comparePopup, preview: previewPopup, cover: coverPopup };
  // A layer's legend panel (class gm-<kind>-panel) shows only while the layer is on the map.
  function legendFollows(layer, kind) {
    function set(on) {
      var els = document.querySelectorAll(".gm-" + kind + "-panel");
      for (var i = 0; i < els.length; i++) els[i].classList[on ? "remove" : "add"]("gm-off");
    }
    // Switched on later, its cells land on top of the territory outlines and outlets: those go back on top.
    layer.on("add", function () {
      set(true);
      if (this._map) this._map.eachLayer(function (l) { if (ABOVE[l.gmKind] && l.bringToFront) l.bringToFront(); });
    }).on("remove", function () { set(false); });
  }
  var ABOVE = { territory: 1, outlet: 1, service_point: 1 };
  var CONTEXT = { county: 1, neighbour: 1, township_area: 1 };

  function geoLayer(data, kind, extra) {
    var bg = cfg().background;
    var layer = L.geoJSON(data, {
      style: function (f) { return L.extend(STYLES[kind](f.properties, bg), extra || {}); },
      onEachFeature: function (f, layer) {
        var popup = POPUPS[kind];
        // A long popup scrolls inside itself rather than running off a phone's screen.
        if (popup) layer.bindPopup(function () { return popup(f.properties); },
          { maxWidth: 320, minWidth: 220, maxHeight: Math.max(240, Math.round(window.innerHeight * 0.6)) });
        if (f.properties && f.properties.t && !CONTEXT[kind]) layer.bindTooltip(esc(f.properties.t), { sticky: true });
      }
    });
    if (kind === "cover") legendFollows(layer, kind);
    layer.gmKind = kind;
    return layer;
  }

  var POINTS = {
    township: { radius: 5, color: "#444", weight: 1, fillColor: "#666", fillOpacity: 0.9 },
    village: { radius: 2.5, color: "#888", weight: 0.5, fillColor: "#aaa", fillOpacity: 0.9 },
    outlet: { radius: 9, color: "#fff", weight: 2, fillColor: "#08519c", fillOpacity: 1 },
    service_point: { radius: 6, color: "#fff", weight: 1.5, fillColor: "#31a354", fillOpacity: 1 },
    placed: { radius: 6, color: "#fff", weight: 1, fillColor: "#1a9641", fillOpacity: 0.95 },
    merged: { radius: 7, color: "#fff", weight: 1, fillColor: "#fdae61", fillOpacity: 0.95 }
  };
  // rows: [lat, lon, name, code?, detail?]
  function pointLayer(rows, kind, extra) {
    var group = L.featureGroup(), style = L.extend({}, POINTS[kind] || POINTS.village, extra || {});
    if (kind === "label" || kind === "county_label") {  // text only: an RM at a point inside their territory, a county
      var marks = rows.map(function (r) {
        return L.marker([r[0], r[1]], { interactive: false, keyboard: false, pane: kind === "label" ? "markerPane" : "overlayPane",
          icon: L.divIcon({ className: "gm-" + kind.replace("_", "-"), html: "<span>" + esc(r[2]) + "</span>", iconSize: null })
        }).addTo(group);
      });
      if (kind === "label") declutter(group, marks);
      return group;
    }
    rows.forEach(function (r) {
      var mk = L.circleMarker([r[0], r[1]], style);
      if (kind === "township") mk.bindTooltip(esc(r[2]), { permanent: !!cfg().background, direction: "right", className: "gm-town" });
      // Village names stay on the map but show only from zoom NEAR_ZOOM on (CSS: .gm-near), where they no longer pile up.
      else if (kind === "village") mk.bindTooltip(esc(r[2]), { permanent: true, direction: "right", offset: [3, 0], className: "gm-village" });
      else mk.bindTooltip(esc(r[2]));
      if (kind !== "village" && kind !== "township") {
        mk.bindPopup("<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(r[2]) + "</div><div class=\"gm-id\">" + esc(r[3] || "") +
          "</div>" + (r[4] ? "<div>" + esc(r[4]) + "</div>" : "") + "</div>");
      }
      mk.addTo(group);
    });
    group.gmKind = kind;
    return group;
  }

  // Labels that fit: after every zoom or pan, RM labels (most important first: the largest territory), then
  // township names, are each shown only if their box clears every label shown before, so 68 RMs and a
  // county's townships never pile up; zooming in makes room for more.
  function settle(map) {
    var view = map.getContainer().getBoundingClientRect(), shown = [], pad = 3;
    function place(el, box) {
      if (!el || !box) return;
      var r = box.getBoundingClientRect();  // measured whether visible or not (visibility keeps the layout)
      if (!r.width) return;
      var hit = r.right < view.left || r.left > view.right || r.bottom < view.top || r.top > view.bottom ||
        shown.some(function (s) {
          return r.left < s.right + pad && r.right > s.left - pad && r.top < s.bottom + pad && r.bottom > s.top - pad;
        });
      L.DomUtil[hit ? "addClass" : "removeClass"](el, "gm-label-hidden");
      if (!hit) shown.push(r);
    }
    (map._gmLabels || []).forEach(function (mk) { var el = mk.getElement(); place(el, el && el.firstChild); });
    Array.prototype.forEach.call(map.getContainer().querySelectorAll(".gm-town"), function (el) { place(el, el); });
  }
  // Measured once the view settles too: labels added while the page's first fitBounds still animates were
  // measured where they were about to leave (a phone showed 22 labels, piled up, until the first pan).
  L.Map.addInitHook(function () {
    var map = this;
    map._gmSettle = function () { settle(map); setTimeout(function () { settle(map); }, 350); };
    map.on("zoomend moveend resize viewreset", map._gmSettle);
    map.whenReady(map._gmSettle);
  });
  function declutter(group, marks) {
    group.on("add", function () { var map = group._map; map._gmLabels = (map._gmLabels || []).concat(marks); map._gmSettle(); });
    group.on("remove", function (e) {
      var map = e.target._map;
      if (map) map._gmLabels = (map._gmLabels || []).filter(function (mk) { return marks.indexOf(mk) < 0; });
    });
  }

  // FastMarkerCluster callback. row: [lat, lon, customer_id, masked name, open leads]
  function customerMarker(row) {
    var leads = row[4] || 0;
    var html = "<div class=\"gm-cust" + (leads ? " gm-has-lead" : "") + "\">" +
      (leads ? "<span class=\"gm-badge\">" + leads + "</span>" : "") + "</div>";
    var mk = L.marker([row[0], row[1]], {
      icon: L.divIcon({ className: "gm-cust-icon", html: html, iconSize: [34, 34], iconAnchor: [17, 17] }),
      title: row[3] || row[2]
    });
    mk.bindPopup(function () {
      var c = cfg(), id = String(row[2]), enc = encodeURIComponent(id);
      return "<div class=\"gm-pop\"><div class=\"gm-title gm-cname\">" + esc(row[3] || "") + "</div><div class=\"gm-id\">" + esc(id) + "</div>" +
        (leads ? "<div class=\"gm-leadnote\">待跟进线索 open leads: <b>" + leads + "</b></div>" : "") +
        "<div class=\"gm-links\"><a class=\"gm-btn gm-tag\" target=\"_blank\" rel=\"noopener\" href=\"" + esc(c.tagUrl.replace("{customer_id}", enc)) + "\">客户标签 tags</a>" +
        "<a class=\"gm-btn gm-lead\" target=\"_blank\" rel=\"noopener\" href=\"" + esc(c.leadUrl.replace("{customer_id}", enc)) + "\">营销线索 leads</a></div></div>";
    }, { maxWidth: 300, minWidth: 220 });
    return mk;
  }

  function panel(map, html, position, cls) {
    var Ctl = L.Control.extend({
      onAdd: function () {
        var div = L.DomUtil.create("div", "gm-panel leaflet-bar " + (cls || ""));
        div.innerHTML = html;
        L.DomEvent.disableClickPropagation(div);
        L.DomEvent.disableScrollPropagation(div);
        var toggle = div.querySelector(".gm-toggle"), wrap = div.querySelector(".gm-wrap");
        if (toggle && wrap) {
          if (window.matchMedia && window.matchMedia(SMALL).matches) wrap.classList.add("gm-collapsed");
          var sync = function () { toggle.setAttribute("aria-expanded", String(!wrap.classList.contains("gm-collapsed"))); };
          toggle.setAttribute("role", "button");
          toggle.setAttribute("tabindex", "0");
          L.DomEvent.on(toggle, "click", function () { wrap.classList.toggle("gm-collapsed"); sync(); });
          L.DomEvent.on(toggle, "keydown", function (e) {
            if (e.key === "Enter" || e.key === " ") { L.DomEvent.preventDefault(e); wrap.classList.toggle("gm-collapsed"); sync(); }
          });
          sync();
        }
        return div;
      }
    });
    new Ctl({ position: position || "bottomright" }).addTo(map);
  }

  // --- Vector tiles (province page): one Leaflet.VectorGrid per grid, grouped per layer. ---
  // o: {bins, colors, noData} class breaks of the gap score (as maps/classify.py), blank, rmColors, zIndex.
  function classColor(o, v) {
    if (v === null || v === undefined || isNaN(v)) return o.noData;
    for (var i = 0; i < o.bins.length; i++) if (v <= o.bins[i]) return o.colors[i];
    return o.colors[o.colors.length - 1];
  }
  function rmColor(o, code) {
    var h = 0, s = String(code || "");
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    return o.rmColors[h % o.rmColors.length];
  }
  var TILE_STYLES = {
    cells: function (o) {
      return function (p, z) {
        var blank = p.gap_class === "blank";
        if (p.gap_class === "no-potential") {  // nothing to win: faint, as on the dashboard
          return { fill: true, fillColor: "#ececec", fillOpacity: 0.35, stroke: z >= 12, color: "#c8c8c8", weight: 0.5 };
        }
        // Zoomed out a cell is a pixel or two: colour only, outlines would cover it.
        return { fill: true, fillColor: classColor(o, p.score), fillOpacity: 0.72, opacity: 0.9, stroke: z >= 10,
          color: blank ? o.blank : "#666", weight: blank ? (z >= 11 ? 2.5 : 1.2) : (z >= 11 ? 0.7 : 0.3) };
      };
    },
    // Below z12 a territory tile holds its cells one by one: zoomed out filled by RM (a map of who owns what),
    // then thin outlines; from z12 one dissolved outline per RM.
    territories: function (o) {
      return function (p, z) {
        var c = rmColor(o, p.rm);
        return z < 10 ? { stroke: false, fill: true, fillColor: c, fillOpacity: 0.6 }
          : { fill: false, color: c, weight: z >= 12 ? 3 : 1, opacity: 0.9 };
      };
    },
    customers: function () {
      return function (p) {
        var r = Math.max(3, Math.min(16, 3 + 2 * Math.log2(p.count || 1)));
        return { radius: r, fill: true, fillColor: "#1f6fb2", fillOpacity: 0.55, color: "#ffffff", weight: 1 };
      };
    }
  };
  function tileCellPopup(p, g) {
    var h = "<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(p.cell_id) + "</div><div class=\"gm-id\">" + esc(g.county) + " · #" + esc(g.grid) + "</div>";
    if (p.rm) h += "<div>客户经理 RM: <b class=\"gm-owner\">" + esc(p.rm) + "</b></div>";
    if (p.score !== undefined && p.score !== null) h += "<div>缺口评分 gap score: <b>" + num(p.score) + "</b> " + esc(p.gap_class || "") + "</div>";
    // households arrive rounded; "≈" where they are apportioned from a shared township/county point
    var hh = p.households === undefined || p.households === null ? null : (p.apportioned ? "≈" : "") + num(p.households);
    h += table({ customers: p.customers, households: hh });
    return h + "<div class=\"gm-links\"><a class=\"gm-btn\" href=\"" + esc(g.dashboard) + "\">看板 dashboard</a></div></div>";
  }
  // The cell of `group` (one VectorGrid per grid) under `latlng`, found in the drawn tiles: {vg, feature, id} or null.
  function cellAt(group, map, latlng) {
    var found = null;
    group.eachLayer(function (vg) {
      if (found || !vg._map || vg._tileZoom === undefined || !L.latLngBounds(vg.options.bounds).contains(latlng)) return;
      var size = vg.getTileSize(), px = map.project(latlng, vg._tileZoom), coords = px.unscaleBy(size).floor();
      coords.z = vg._tileZoom;
      var tile = vg._vectorTiles[vg._tileCoordsToKey(coords)], p = px.subtract(coords.scaleBy(size));
      var feats = (tile && tile._features) || {};
      for (var id in feats) {
        var f = feats[id].feature;
        if (f._containsPoint(p)) { found = { vg: vg, feature: f, id: id }; return; }
      }
    });
    return found;
  }
  // Interactive features (hit-test bounds kept, hover restyling) on a canvas that takes no pointer events.
  function quietCanvas(coords, size, opts) {
    var r = L.canvas.tile(coords, size, opts);
    r.getContainer().style.pointerEvents = "none";
    return r;
  }
  // One overlay of `layer` tiles: a Leaflet.VectorGrid per grid, each limited to its grid's box (GridLayer
  // `bounds`), so no tile of another county is requested. Canvas tiles (a province is ~100k cells; canvas draws
  // them several times faster than SVG nodes) take no pointer events: a tile of one grid would swallow clicks
  // meant for the neighbouring grid under it, so the map finds the cell under the mouse itself (cellAt).
  function tileGroup(grids, layer, o) {
    var group = L.layerGroup(), style = TILE_STYLES[layer](o), tip = L.tooltip({ direction: "top", offset: [0, -6] });
    var hovered = null;
    grids.forEach(function (g) {
      var styles = {};
      styles[layer] = style;
      var vg = L.vectorGrid.protobuf(g.url, {
        bounds: g.bounds, rendererFactory: quietCanvas, interactive: layer === "cells", maxNativeZoom: 17,
        zIndex: o.zIndex || 1, pane: layer === "customers" ? "shadowPane" : "tilePane",  // points above outlines
        getFeatureId: layer === "cells" ? function (f) { return f.properties.cell_id; } : undefined,
        vectorTileLayerStyles: styles
      });
      vg.gmGrid = g;
      group.addLayer(vg);
    });
    if (layer !== "cells") return group;
    function unhover(map) {
      if (hovered) hovered.vg.resetFeatureStyle(hovered.id);
      hovered = null;
      map.closeTooltip(tip);
      map.getContainer().style.cursor = "";
    }
    var handlers = {
      click: function (e) {
        var hit = cellAt(group, e.target, e.latlng);
        if (hit) L.popup({ maxWidth: 320, minWidth: 200 }).setLatLng(e.latlng)
          .setContent(tileCellPopup(hit.feature.properties || {}, hit.vg.gmGrid)).openOn(e.target);
      },
      mousemove: function (e) {
        var map = e.target;
        if (map.dragging && map.dragging.moving()) return;
        var hit = cellAt(group, map, e.latlng);
        if (!hit) { unhover(map); return; }
        if (!hovered || hovered.vg !== hit.vg || hovered.id !== hit.id) {
          unhover(map);
          var p = hit.feature.properties || {};
          hit.vg.setFeatureStyle(hit.id, L.extend(style(p, map.getZoom()), { weight: 3, color: "#111" }));
          tip.setContent(esc(p.cell_id) + (p.score !== undefined && p.score !== null ? " · " + num(p.score) : ""));
          hovered = hit;
        }
        map.openTooltip(tip, e.latlng);
        map.getContainer().style.cursor = "pointer";
      },
      mouseout: function (e) { unhover(e.target); }
    };
    group.on("add", function () { this._map.on(handlers); })
      .on("remove", function () { unhover(this._map); this._map.off(handlers); });
    return group;
  }

  window.gridmkt = { geoLayer: geoLayer, pointLayer: pointLayer, customerMarker: customerMarker, panel: panel,
    cellPopup: cellPopup, esc: esc, tileGroup: tileGroup };
})();
