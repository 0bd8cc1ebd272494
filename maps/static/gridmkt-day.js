/* gridmkt: an RM's day on the phone, part 6 of 6: start (maps/day.py builds the page around window.gridmktDay).
 *
 * Loads today's plan (network, else the saved copy), merges the server's state of today's visits with what this
 * phone has not sent yet, draws map and list, sends the outbox, and asks the service worker to keep the map of
 * the RM's territory. The parts: gridmkt-day-core.js, -plan.js, -checkin.js, -outbox.js, -offline.js.
 */
(function () {
  "use strict";
  var D = window.gridmktDayApp, C = D.C, state = D.state, el = D.el, $ = D.$;

  function makePlan(fromHere) {
    var go = function (pos) {
      var body = {};
      if (pos) { body.start_lon = pos.coords.longitude; body.start_lat = pos.coords.latitude; }
      D.notice("正在排计划… planning…");
      return fetch(C.planUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body)
      }).then(function (r) {
        if (!r.ok) return r.json().catch(function () { return {}; }).then(function (b) {
          throw new Error((b && b.detail ? (typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail)) : "HTTP " + r.status));
        });
        D.notice("");
        if (state.layer) { state.map.removeLayer(state.layer); state.layer = null; }  // a new plan: fit the map again
        return start();
      }).catch(function (e) { D.notice("排计划失败 planning failed: " + e.message, "bad"); });
    };
    if (!navigator.onLine) { D.notice("排计划需要网络 planning needs the network", "bad"); return; }
    if (!fromHere) return go(null);
    D.position().then(go, function (e) { D.notice(e.message, "bad"); });
  }

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

  // The notice under the bar: saved data and its age, not today's plan, session expired.
  function warn(plan, info) {
    var other = plan.plan_date !== D.localDate() ? "这不是今天的计划 this is not today's plan (" + plan.plan_date + ")" : "";
    var text = info.offline ? D.cachedText(info.cachedAt) : Promise.resolve("");
    return text.then(function (t) {
      var parts = [t, other, info.signIn ? "登录已过期 session expired: " : ""].filter(Boolean);
      if (!parts.length) return;
      D.notice(parts.join(" · "), "warn");
      if (info.offline) $("gd-notice").dataset.offline = "1";
      if (info.signIn) D.signInLink();
    });
  }

  function start() {
    return D.loadPlan().then(function (info) {
      if (info.missing || !info.plan) {
        if (!info.missing) D.notice("离线且没有保存的计划 offline, and no plan saved on this phone", "bad");
        showEmpty();
        return;
      }
      if (info.plan.rm_code && info.plan.rm_code !== C.rmCode) {
        D.notice("保存的计划属于另一位客户经理 the saved plan is another RM's", "bad");
        return;
      }
      state.plan = info.plan;
      state.fresh = !info.offline;
      return D.loadVisits().then(function () {
        D.mergeServer(info.plan, state.fresh);
        return D.saveVisits();
      }).then(function () {
        document.body.dataset.planId = String(info.plan.plan_id);
        document.body.dataset.source = info.offline ? "cache" : "network";
        D.renderSummary(info.plan);
        D.drawCells(info.plan);
        D.drawPlan(info.plan);
        D.renderList(info.plan);
        if (state.fresh) D.warmTiles(info.plan);
        // Ready once the notice (offline, saved data's age) is written too: it is part of what the RM reads.
        return warn(info.plan, info).then(function () { document.body.classList.add("gd-ready"); });
      });
    }).then(D.renderOutbox).then(D.flush);
  }

  function main() {
    D.setNet();
    window.addEventListener("online", function () {
      D.setNet();
      state.retries = 0;
      if ($("gd-notice").dataset.offline) D.notice("");
      D.flush();
    });
    window.addEventListener("offline", function () {
      D.setNet();
      D.cachedText(null).then(function (t) { D.notice(t, "warn"); $("gd-notice").dataset.offline = "1"; });
    });
    document.addEventListener("visibilitychange", function () { if (!document.hidden) D.flush(); });
    D.initMap();
    D.registerWorker();
    $("gd-replan").addEventListener("click", function () {
      if (window.confirm("从当前位置重新排今天的路线？ Re-plan today's route from where you are?")) makePlan(true);
    });
    D.ready = start();
  }
  // The scripts sit in <head> (after their settings): start once the page's elements exist.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
