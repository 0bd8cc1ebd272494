/* gridmkt map pages: styles, popups and panels shared by every page (no network, no framework). */
(function () {
  "use strict";
  var cfg = function () { return window.gridmktConfig || { labels: {} }; };

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
  function cellPopup(p) {
    var h = "<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(p.t || p.id) + "</div><div class=\"gm-id\">" + esc(p.id) + "</div>";
    h += "<div>客户经理 RM: <b class=\"gm-owner\">" + esc(p.o || "无 none") + "</b></div>";
    if (p.s !== undefined && p.s !== null) h += "<div>缺口评分 gap score: <b>" + num(p.s) + "</b> " + esc(p.g || "") + "</div>";
    if (p.r) h += "<div class=\"gm-reason\">" + esc(p.r) + "</div>";
    h += table(p.m);
    if (p.k && Object.keys(p.k).length) h += "<div class=\"gm-sub\">评分构成 score components</div>" + table(p.k);
    return h + cellLinks(p) + "</div>";
  }
  function comparePopup(p) {
    return "<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(p.t || p.id) + "</div><div class=\"gm-id\">" + esc(p.id) + "</div>" +
      "<div>" + (p.moved ? "<b class=\"gm-moved\">调整 moved</b>" : "未变 unchanged") + "</div>" +
      "<table class=\"gm-table\"><tr><th>方案前 before</th><td>" + esc(p.a || "–") + "</td></tr>" +
      "<tr><th>方案后 after</th><td>" + esc(p.b || "–") + "</td></tr></table>" + table(p.m) + "</div>";
  }
  function previewPopup(p) {
    return "<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(p.t || p.id) + "</div><div class=\"gm-id\">" + esc(p.id) + "</div>" +
      (p.v ? "<div class=\"gm-sub\">村 villages (" + p.v.length + ")</div><div>" + p.v.map(esc).join("、") + "</div>" : "") + "</div>";
  }

  var STYLES = {
    county: function (p, bg) { return { color: "#555", weight: 2, fill: !!bg, fillColor: "#fffdf6", fillOpacity: bg ? 0.9 : 0, interactive: false }; },
    cell: function (p) { return { color: p.oc || "#666", weight: 1.2, fillColor: p.c || "#ccc", fillOpacity: 0.72 }; },
    territory: function (p) { return { color: p.oc || "#333", weight: 3.5, fill: false, interactive: false }; },
    compare: function (p) {
      return p.moved ? { color: "#d7191c", weight: 3.5, dashArray: "6 4", fillColor: p.c || "#ccc", fillOpacity: 0.85 }
        : { color: "#777", weight: 1, fillColor: p.c || "#ccc", fillOpacity: 0.4 };
    },
    preview: function (p) { return { color: "#3b6ea8", weight: 1.2, fillColor: p.c || "#9ecae1", fillOpacity: 0.35 }; }
  };
  var POPUPS = { cell: cellPopup, compare: comparePopup, preview: previewPopup };

  function geoLayer(data, kind, extra) {
    var bg = cfg().background;
    return L.geoJSON(data, {
      style: function (f) { return L.extend(STYLES[kind](f.properties, bg), extra || {}); },
      onEachFeature: function (f, layer) {
        var popup = POPUPS[kind];
        if (popup) layer.bindPopup(function () { return popup(f.properties); }, { maxWidth: 320, minWidth: 220 });
        if (f.properties && f.properties.t && kind !== "county") layer.bindTooltip(esc(f.properties.t), { sticky: true });
      }
    });
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
    rows.forEach(function (r) {
      var mk = L.circleMarker([r[0], r[1]], style);
      if (kind === "township") mk.bindTooltip(esc(r[2]), { permanent: !cfg().background ? false : true, direction: "right", className: "gm-town" });
      else mk.bindTooltip(esc(r[2]));
      if (kind !== "village" && kind !== "township") {
        mk.bindPopup("<div class=\"gm-pop\"><div class=\"gm-title\">" + esc(r[2]) + "</div><div class=\"gm-id\">" + esc(r[3] || "") +
          "</div>" + (r[4] ? "<div>" + esc(r[4]) + "</div>" : "") + "</div>");
      }
      mk.addTo(group);
    });
    return group;
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
        var toggle = div.querySelector(".gm-toggle");
        if (toggle) L.DomEvent.on(toggle, "click", function () { div.classList.toggle("gm-collapsed"); });
        return div;
      }
    });
    new Ctl({ position: position || "bottomright" }).addTo(map);
  }

  window.gridmkt = { geoLayer: geoLayer, pointLayer: pointLayer, customerMarker: customerMarker, panel: panel,
    cellPopup: cellPopup, esc: esc };
})();
