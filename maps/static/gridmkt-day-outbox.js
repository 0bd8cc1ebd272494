/* gridmkt: an RM's day on the phone, part 4 of 6: sending the outbox.
 *
 * Entries (IndexedDB store "outbox") are sent in order, one sender at a time. An entry leaves the outbox only
 * when the server answers 2xx (a replay of its idempotency key answers with the row already stored, so a resend
 * never records a visit twice). No signal, a 5xx, 408 or 429: it stays and is sent again with back-off (and on
 * `online`, or when the page comes back). 401: it stays and the page asks to sign in again. Any other 4xx (a
 * refusal the server would repeat, say 404 or 403 when the customer is no longer the RM's, or 422): the entry
 * stays, marked refused with the server's reason, listed above the stops with 重试 retry (same key, so still
 * at most one visit) and 放弃 discard (the stop goes back to what the server has); the entries behind go on.
 * A check-out waits for its check-in (it needs the visit's id).
 */
(function () {
  "use strict";
  var D = window.gridmktDayApp, C = D.C, state = D.state, el = D.el, $ = D.$;
  var RETRY_MIN_MS = C.retryMinMs || 5000, RETRY_MAX_MS = 5 * 60 * 1000;
  var LABEL = { checkin: "签到 check-in", checkout: "签退 check-out" };

  D.setNet = function () {
    var on = navigator.onLine, n = $("gd-net");
    n.textContent = on ? "在线 online" : "离线 offline";
    n.className = "gd-net " + (on ? "gd-on" : "gd-off");
  };

  function stopLabel(cid) {
    var s = D.stopOf(cid);
    return s ? s.seq + ". " + (s.name || cid) : cid + " (不在今天的计划 not in today's plan)";
  }
  function refusedItem(e, items) {
    var li = el("li", "gd-refused-item");
    li.dataset.key = e.key;
    li.appendChild(el("div", "gd-refused-what", LABEL[e.type] + " · " + stopLabel(e.customer_id) + " · " +
      D.hhmm(e.body.at)));
    var behind = items.filter(function (x) { return x.type === "checkout" && x.ref === e.key; }).length;
    li.appendChild(el("div", "gd-refused-why", "服务器拒绝 refused by the server: " + e.rejected +
      (behind ? " · 其签退也在等待 its check-out waits too" : "")));
    var row = el("div", "gd-row");
    var retry = el("button", "gd-btn gd-retry", "重试 retry"), drop = el("button", "gd-btn gd-discard", "放弃 discard");
    retry.type = drop.type = "button";
    retry.addEventListener("click", function () { retry.disabled = true; D.retry(e.seq); });
    drop.addEventListener("click", function () { drop.disabled = true; D.discard(e.seq); });
    row.appendChild(retry);
    row.appendChild(drop);
    li.appendChild(row);
    return li;
  }
  D.renderOutbox = function () {
    return D.outbox.all().then(function (items) {
      state.outbox = items;
      var refused = items.filter(function (e) { return e.rejected; }), waiting = items.length - refused.length;
      var b = $("gd-outbox");
      var parts = (waiting ? ["待发送 queued " + waiting] : []).concat(refused.length ? ["被拒 refused " + refused.length] : []);
      b.textContent = parts.length ? parts.join(" · ") : "已全部发送 all sent";
      b.className = "gd-outbox" + (waiting ? " gd-waiting" : "") + (refused.length ? " gd-refused" : "");
      b.dataset.count = String(waiting);
      b.dataset.refused = String(refused.length);
      var box = $("gd-refused");
      box.textContent = "";
      box.hidden = !refused.length;
      if (!refused.length) return;
      box.appendChild(el("h2", "", "被拒的记录 refused by the server (" + refused.length + ")"));
      var ul = el("ul");
      refused.forEach(function (e) { ul.appendChild(refusedItem(e, items)); });
      box.appendChild(ul);
    });
  };

  function schedule() {
    clearTimeout(state.timer);
    var wait = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * Math.pow(2, state.retries));
    wait = wait * (0.8 + 0.4 * Math.random());  // a village of RMs regaining signal do not all retry at once
    state.retries += 1;
    state.timer = setTimeout(D.flush, wait);
  }
  // One sender at a time (the `online` event, the timer and a tap can all ask at once).
  D.flush = function () {
    if (state.flushing) return state.flushing;
    clearTimeout(state.timer);
    var sent = { n: 0 };
    state.flushing = send(sent).catch(function () { schedule(); }).then(function () {
      state.flushing = null;
      // The saved plan (offline copy) learns what the server now has.
      if (sent.n && D.refreshPlanCopy) D.refreshPlanCopy();
      return D.renderOutbox();
    });
    return state.flushing;
  };
  function detailOf(r) {
    return r.json().then(function (b) {
      var d = b && b.detail;
      if (Array.isArray(d)) return d.map(function (x) { return (x.loc || []).slice(1).join(".") + ": " + x.msg; }).join("; ");
      return typeof d === "string" ? d : JSON.stringify(d || b);
    }).catch(function () { return "HTTP " + r.status; });
  }
  function visitByKey(key) {
    for (var cid in state.visits) if (key && state.visits[cid].key === key) return state.visits[cid];
    return null;
  }
  // The first entry that can go now: not refused, and a check-out only once its check-in is on the server.
  function next(items) {
    for (var i = 0; i < items.length; i++) {
      var e = items[i];
      if (e.rejected) continue;
      if (e.type === "checkout" && !e.visit_id) {
        var waiting = items.some(function (x) { return x.type === "checkin" && x.key === e.ref; });
        if (waiting) continue;
        var v = visitByKey(e.ref);
        if (v && v.visit_id) e.visit_id = v.visit_id;
      }
      return e;
    }
    return null;
  }
  function send(sent) {
    return D.outbox.all().then(function (items) {
      var e = next(items);
      if (!e) { state.retries = 0; return null; }
      if (!navigator.onLine) { schedule(); return null; }
      if (e.type === "checkout" && !e.visit_id) {
        return refuse(e, "签到未被记录 the check-in was not recorded").then(function () { return send(sent); });
      }
      var url = e.type === "checkin" ? C.checkinUrl : C.checkoutUrl.replace("{visit_id}", encodeURIComponent(e.visit_id));
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(e.body)
      }).then(function (r) {
        if (r.ok) {
          sent.n += 1;
          return r.json().then(function (data) { return applied(e, data); }).then(function () { return send(sent); });
        }
        if (r.status === 401) {
          D.notice("登录已过期，签到保存在手机上 session expired, your check-ins are kept on the phone: ", "warn");
          D.signInLink();
          schedule();
          return null;
        }
        if (r.status >= 500 || r.status === 408 || r.status === 429) { schedule(); return null; }
        // The server refuses this entry (it would refuse it again): it stays, marked, and the rest go on.
        return detailOf(r).then(function (why) { return refuse(e, why + " (HTTP " + r.status + ")"); })
          .then(function () { return send(sent); });
      }, function () { schedule(); return null; });  // no signal: try again later
    });
  }
  function rerender(cid) {
    var s = D.stopOf(cid);
    if (s) D.rerenderStop(s);
  }
  function applied(e, data) {
    var v = state.visits[e.customer_id];
    if (v && e.type === "checkin" && v.key === e.key) {
      v.queued = false;
      v.visit_id = data.visit_id; v.distance_m = data.distance_m; v.flag_far = !!data.flag_far;
      delete v.error;
    } else if (v && e.type === "checkout") {
      v.out_queued = false;
      v.flag_short = !!data.flag_short;
      delete v.out_error;
    }
    return D.saveVisits().then(function () { return D.outbox.del(e.seq); }).then(function () { rerender(e.customer_id); });
  }
  function refuse(e, why) {
    e.rejected = why;
    var v = state.visits[e.customer_id];
    if (v) v[e.type === "checkin" ? "error" : "out_error"] = "服务器拒绝 refused by the server: " + why;
    return D.saveVisits().then(function () { return D.outbox.put(e); }).then(function () { rerender(e.customer_id); });
  }
  function entry(seq) {
    return D.outbox.all().then(function (items) { return items.filter(function (x) { return x.seq === seq; })[0]; });
  }

  // 重试: the same entry, same key, sent again (the server records it at most once).
  D.retry = function (seq) {
    return entry(seq).then(function (e) {
      if (!e) return D.renderOutbox();
      delete e.rejected;
      if (/^已放弃/.test($("gd-notice").textContent)) D.notice("");
      var v = state.visits[e.customer_id];
      if (v) delete v[e.type === "checkin" ? "error" : "out_error"];
      state.retries = 0;
      return D.saveVisits().then(function () { return D.outbox.put(e); })
        .then(function () { rerender(e.customer_id); return D.renderOutbox(); }).then(D.flush);
    });
  };
  // 放弃: the entry (and a check-out waiting behind a check-in) leaves the phone; the stop shows what the server has.
  D.discard = function (seq) {
    return D.outbox.all().then(function (items) {
      var e = items.filter(function (x) { return x.seq === seq; })[0];
      if (!e) return D.renderOutbox();
      var gone = items.filter(function (x) { return x === e || (e.type === "checkin" && x.ref === e.key); });
      var v = state.visits[e.customer_id];
      if (v && e.type === "checkin" && v.key === e.key) delete state.visits[e.customer_id];
      else if (v && e.type === "checkout") {
        ["checkout_at", "note", "outcome", "outcome_label", "out_queued", "out_error"].forEach(function (k) { delete v[k]; });
      }
      return gone.reduce(function (p, x) { return p.then(function () { return D.outbox.del(x.seq); }); }, D.saveVisits())
        .then(function () {
          var said = "已放弃 discarded: " + LABEL[e.type] + " · " + stopLabel(e.customer_id);
          D.notice(said, "warn");
          setTimeout(function () { if ($("gd-notice").textContent === said) D.notice(""); }, 8000);
          rerender(e.customer_id);
          return D.renderOutbox();
        });
    });
  };
})();
