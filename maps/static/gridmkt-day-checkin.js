/* gridmkt: an RM's day on the phone, part 3 of 6: 签到 check-in and 签退 check-out at a stop.
 *
 * A tap takes the phone's position (navigator.geolocation, with its accuracy) and the moment of the tap, and
 * puts the check-in into the outbox with a new idempotency key (gridmkt-day-outbox.js sends it); the row shows
 * what this phone knows: queued, checked in with the server's distance and far flag, refused, or done.
 */
(function () {
  "use strict";
  var D = window.gridmktDayApp, C = D.C, state = D.state, el = D.el;

  D.position = function () {
    return new Promise(function (resolve, reject) {
      if (!navigator.geolocation) { reject(new Error("此浏览器不能定位 this browser cannot give a position")); return; }
      navigator.geolocation.getCurrentPosition(resolve, function (e) {
        reject(new Error(e.code === 1 ? "未允许定位 location permission denied: 请在设置中允许 allow it in settings"
          : "定位失败 no position yet (" + e.message + "): 请到室外重试 try again outdoors"));
      }, { enableHighAccuracy: true, timeout: 20000, maximumAge: 0 });
    });
  };

  function checkIn(s, kind, btn) {
    btn.disabled = true;
    btn.textContent = "定位中… locating…";
    var at = new Date();  // the moment the RM tapped, kept however late the entry is sent
    D.position().then(function (pos) {
      var key = D.uuid();
      var body = { idempotency_key: key, customer_id: s.customer_id, kind: kind, at: at.toISOString(),
        lon: pos.coords.longitude, lat: pos.coords.latitude, accuracy_m: Math.round(pos.coords.accuracy * 10) / 10,
        plan_id: state.plan.plan_id };
      state.visits[s.customer_id] = { key: key, kind: kind, at: body.at, accuracy_m: body.accuracy_m, queued: true };
      return D.saveVisits()
        .then(function () { return D.outbox.add({ type: "checkin", key: key, customer_id: s.customer_id, body: body }); })
        .then(function () { D.clearError(); D.rerenderStop(s); return D.flush(); });
    }).catch(function (e) {
      btn.disabled = false;
      btn.textContent = "签到 check in";
      D.notice(e.message, "bad");
    });
  }
  function checkOut(s, note, outcome, label) {
    var v = state.visits[s.customer_id], key = D.uuid(), at = new Date().toISOString();
    var body = { idempotency_key: key, at: at, note: note, outcome: outcome };
    v.checkout_at = at; v.note = note; v.outcome = outcome; v.outcome_label = label; v.out_queued = true;
    // The visit's id when the server already has the check-in; else the check-in's key (sent first, in order).
    var entry = { type: "checkout", key: key, ref: v.key, visit_id: v.visit_id || null, customer_id: s.customer_id,
      body: body };
    return D.saveVisits().then(function () { return D.outbox.add(entry); })
      .then(function () { D.rerenderStop(s); return D.flush(); });
  }

  function kindPicker(s) {
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
    return kinds;
  }
  function checkoutForm(s) {
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
      go.disabled = true;
      checkOut(s, note.value.trim(), outcome.value, outcome.options[outcome.selectedIndex].textContent);
    });
    return form;
  }
  // The lower part of a stop's row: the check-in form, or what happened and the check-out form, or the result.
  D.visitBox = function (s) {
    var box = el("div", "gd-visit"), v = state.visits[s.customer_id];
    if (!v) {
      box.appendChild(kindPicker(s));
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
    line.appendChild(el("span", "gd-ok", "已签到 checked in " + D.hhmm(v.at) + (v.kind ? " · " + v.kind : "")));
    if (v.queued) line.appendChild(el("span", "gd-queued", "待发送 queued (offline)"));
    else if (!v.error) line.appendChild(el("span", "gd-dist", v.distance_m === null || v.distance_m === undefined
      ? "无距离（无位置）no distance (no place)" : "距离 distance " + D.metres(v.distance_m)));
    if (v.flag_far) line.appendChild(el("span", "gd-flag", "⚠ 偏远 far from the stop"));
    box.appendChild(line);
    if (v.error) box.appendChild(el("div", "gd-error", v.error));
    if (v.checkout_at) {
      var out = el("div", "gd-state");
      out.appendChild(el("span", "gd-ok", "已签退 checked out " + D.hhmm(v.checkout_at) +
        (v.outcome_label || v.outcome ? " · " + (v.outcome_label || v.outcome) : "")));
      if (v.out_queued) out.appendChild(el("span", "gd-queued", "待发送 queued (offline)"));
      if (v.flag_short) out.appendChild(el("span", "gd-flag", "⚠ 过短 short visit"));
      box.appendChild(out);
      if (v.out_error) box.appendChild(el("div", "gd-error", v.out_error));
      if (v.note) box.appendChild(el("div", "gd-note-text", v.note));
      return box;
    }
    if (!v.error) box.appendChild(checkoutForm(s));
    return box;
  };
})();
