"""Texts and sections of the visits page (``maps.visits``): the process score explained, flagged visits, style."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from maps.base import esc

# Process score components (grid/visits/process.py): short name, name, what the share counts.
COMPONENTS: dict[str, tuple[str, str, str]] = {
    "completion": ("完成", "计划完成 plan followed",
                   "计划拜访当天走访到的 / 计划拜访 planned stops visited on their day / planned stops"),
    "coverage": ("覆盖", "客户覆盖 customers covered",
                 "近90天走访过的责任区客户 / 责任区客户 territory customers visited in 90 days / territory customers"),
    "gap_cells": ("空白", "空白区走访 visits where gaps are",
                  "空白或服务不足网格的走访 / 走访 visits in blank or under-served cells / visits"),
    "clean": ("规范", "签到规范 clean check-ins",
              "无异常标记的签到 / 签到 check-ins flagged neither far nor short / check-ins"),
}


def explain_html(weights: Mapping[str, float], window_days: int = 90) -> str:
    """How the process score (过程积分) is counted: each component, its share and its weight."""
    total = sum(weights.values()) or 1.0
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{esc(what.replace('90', str(window_days)))}</td>"
        f"<td class='gv-num'>{100 * weights.get(c, 0) / total:.0f}</td></tr>"
        for c, (_, name, what) in COMPONENTS.items())
    return ("<section><h2>过程积分怎么算 How the process score is counted</h2>"
            "<p class='gv-meta'>每项是一个比例（0–1），乘以它的满分后相加，满分100；本周没有可计的（无计划、无走访、无签到）"
            "得0分。Each part is a share (0–1) times its full points; the parts add up to at most 100. A part with "
            "nothing to count (no plan, no visit, no check-in) scores 0. 表中每人的分项见积分下方。</p>"
            "<table class='gv-explain'><thead><tr><th>分项 part</th><th>比例 share</th><th>满分 full points</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></section>")


def _time(value) -> str:
    t = pd.Timestamp(value)
    return (t if t.tzinfo else t.tz_localize("UTC")).tz_convert("Asia/Shanghai").strftime("%m-%d %H:%M")


def flagged_html(flagged: Sequence[Mapping], week: str, rm_names: Mapping[str, str] | None = None) -> str:
    """The week's flagged visits (far check-in, short visit), newest first: each one, never summed away."""
    if not flagged:
        return (f"<section><h2>异常签到 Flagged visits · {esc(week)}</h2>"
                "<p class='gv-empty'>本周没有异常签到 No flagged visit this week</p></section>")
    rows = []
    for f in flagged:
        why = []
        if f.get("flag_far"):
            d = f.get("distance_m")
            why.append("距离远 far" + (f" {d:,.0f} m" if d is not None else ""))
        if f.get("flag_short"):
            d = f.get("duration_min")
            why.append("时长短 short" + (f" {d:g} min" if d is not None else ""))
        who = " ".join(str(x) for x in (f.get("customer_id"), f.get("customer_name")) if x) or "–"
        rm = f"{f['rm_code']} {(rm_names or {}).get(f['rm_code']) or ''}".strip()
        rows.append(f"<tr><td data-label='时间 time'>{esc(_time(f['visited_at']))}</td>"
                    f"<td data-label='客户经理 RM'>{esc(rm)}</td><td data-label='客户 customer'>{esc(who)}</td>"
                    f"<td data-label='方式 kind'>{esc(f.get('kind') or '')}</td>"
                    f"<td data-label='标记 flag'><span class='gv-flag'>{esc(' · '.join(why))}</span></td></tr>")
    return (f"<section><h2>异常签到 Flagged visits · {esc(week)} ({len(flagged)})</h2>"
            "<table class='gv-rms gv-flagged'><thead><tr><th>时间 time</th><th>客户经理 RM</th><th>客户 customer</th>"
            f"<th>方式 kind</th><th>标记 flag</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


# The RM table's find, sort and pages (maps.visits.rm_table), and the phone's folded cards. Without script every
# row shows, in the server's order. ``data-shown`` on the table says what is drawn ("from-to/matching/all").
TABLE_SCRIPT = """<script>(function () {
  var t = document.querySelector('table.gv-rms[data-rm-table]');
  if (!t) return;
  [].forEach.call(t.querySelectorAll('.gv-more'), function (b) {
    b.addEventListener('click', function () {
      var tr = b.closest('tr'), open = tr.classList.toggle('gv-open');
      b.setAttribute('aria-expanded', String(open));
      b.textContent = open ? '收起 less' : '详情 more';
    });
  });
  var find = document.querySelector('.gv-find'), sort = document.querySelector('.gv-sort');
  var pagers = [].slice.call(document.querySelectorAll('.gv-pager'));
  if (!find || !sort) { t.setAttribute('data-shown', 'all'); return; }
  var body = t.tBodies[0], rows = [].slice.call(body.rows), page = 0;
  var phone = window.matchMedia('(max-width: 700px)');
  var d = function (r, k) { return r.getAttribute('data-' + k); };
  var keys = {
    action: function (r) { return [-d(r, 'flags'), +d(r, 'cover'), +d(r, 'score'), d(r, 'code')]; },
    cover: function (r) { return [+d(r, 'cover'), -d(r, 'flags'), +d(r, 'score'), d(r, 'code')]; },
    score: function (r) { return [+d(r, 'score'), -d(r, 'flags'), +d(r, 'cover'), d(r, 'code')]; },
    code: function (r) { return [d(r, 'code')]; }
  };
  function cmp(a, b) {
    for (var i = 0; i < a.length; i++) { if (a[i] < b[i]) return -1; if (a[i] > b[i]) return 1; }
    return 0;
  }
  function draw() {
    var q = find.value.trim().toLowerCase(), key = keys[sort.value] || keys.action;
    var shown = rows.filter(function (r) { return !q || d(r, 'q').indexOf(q) >= 0; });
    shown.sort(function (a, b) { return cmp(key(a), key(b)); });
    var n = phone.matches ? 10 : 25, pages = Math.max(1, Math.ceil(shown.length / n));
    page = Math.max(0, Math.min(page, pages - 1));
    rows.forEach(function (r) { r.hidden = true; });
    shown.forEach(function (r, i) { body.appendChild(r); r.hidden = i < page * n || i >= (page + 1) * n; });
    var from = shown.length ? page * n + 1 : 0, to = Math.min(shown.length, (page + 1) * n);
    var text = shown.length ? from + '–' + to + ' / ' + shown.length + ' 人 RMs' : '没有匹配的客户经理 no RM matches';
    if (shown.length < rows.length) text += ' (共 of ' + rows.length + ')';
    [].forEach.call(document.querySelectorAll('.gv-range'), function (s) { s.textContent = text; });
    pagers.forEach(function (p) {
      p.querySelector('.gv-prev').disabled = page === 0;
      p.querySelector('.gv-next').disabled = page >= pages - 1;
    });
    t.setAttribute('data-shown', from + '-' + to + '/' + shown.length + '/' + rows.length);
  }
  function go(step) { page += step; draw(); t.scrollIntoView({block: 'start'}); }
  find.addEventListener('input', function () { page = 0; draw(); });
  sort.addEventListener('change', function () { page = 0; draw(); });
  pagers.forEach(function (p) {
    p.querySelector('.gv-prev').addEventListener('click', function () { go(-1); });
    p.querySelector('.gv-next').addEventListener('click', function () { go(1); });
  });
  (phone.addEventListener ? phone.addEventListener('change', draw) : phone.addListener(draw));
  draw();
})();</script>"""

STYLE = """<style>
html,body{height:auto !important;overflow:auto !important}
body{background:#f6f5f1;color:#222;font:15px/1.45 -apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif}
.gv-head{background:#1f4e79;color:#fff;padding:8px 16px;display:flex;flex-wrap:wrap;align-items:center;gap:6px 14px}
.gv-head h1{font-size:19px;margin:0;flex:1 1 auto}.gv-head h1 small{font-size:14px;font-weight:normal;opacity:.9}
.gv-week{display:flex;flex-wrap:wrap;align-items:center;gap:6px;margin:0}
.gv-week label{display:flex;align-items:center;gap:4px;font-size:14px}
.gv-week select{min-height:36px;font:inherit;border-radius:6px;max-width:60vw}
.gv-btn{display:inline-flex;align-items:center;min-height:36px;padding:4px 12px;border-radius:6px;background:#fff;
color:#1f4e79;text-decoration:none;border:1px solid #fff;font:inherit;font-size:14px}
.gv-main{max-width:1320px;margin:0 auto;padding:2px 12px 24px}
.gv-main section{background:#fff;border:1px solid #e2e0d8;border-radius:8px;padding:8px 14px 12px;margin:10px 0}
.gv-main h2{font-size:17px;margin:2px 0 6px}.gv-meta{color:#555;font-size:13px;margin:0 0 6px}
.gv-empty{color:#666}
table.gv-rms,table.gv-explain{border-collapse:collapse;width:100%;font-size:14px}
.gv-rms th,.gv-explain th{text-align:left;font-weight:normal;color:#555;font-size:13px;border-bottom:2px solid #ddd;
padding:4px 8px;vertical-align:bottom}
.gv-rms td,.gv-explain td{padding:6px 8px;border-bottom:1px solid #eee;vertical-align:top}
.gv-rms a{color:#2b6cb0;font-weight:bold;white-space:nowrap}.gv-sub{color:#666;font-size:12px}
.gv-score{font-size:18px}.gv-num{text-align:right}
.gv-flag{display:inline-block;white-space:nowrap;background:#fde2e1;color:#a61b1b;border-radius:10px;padding:0 8px;font-weight:bold;
font-size:13px;margin:1px 0}
.gv-ok{color:#2f7d32}.gv-total td{border-top:2px solid #bbb;font-weight:bold}
.gv-map .folium-map{height:64vh !important;min-height:320px;border-radius:6px}
table.gv-rms tr[hidden]{display:none !important}.gv-more{display:none}
.gv-tools,.gv-pager{display:flex;flex-wrap:wrap;align-items:center;gap:6px 12px;margin:4px 0 8px}
.gv-find{flex:1 1 220px;min-height:36px;font:inherit;padding:2px 8px;border:1px solid #bbb;border-radius:6px}
.gv-tools select{min-height:36px;font:inherit;border-radius:6px;max-width:70vw}.gv-tools label{font-size:14px}
.gv-range{color:#555;font-size:14px}.gv-pager .gv-btn{border-color:#1f4e79}.gv-pager .gv-btn:disabled{opacity:.4}
@media (max-width:700px){
table.gv-rms[data-rm-table] tr{display:grid;grid-template-columns:1fr 1.3fr 1fr;gap:0 8px;padding:6px 10px}
table.gv-rms[data-rm-table] td{display:block;order:1;text-align:left;padding:2px 0}
table.gv-rms[data-rm-table] td::before{content:attr(data-short);display:block}
table.gv-rms[data-rm-table] td:first-child{grid-column:1/-1;order:0;padding-bottom:4px}
table.gv-rms[data-rm-table] td:first-child::before{content:none}
table.gv-rms[data-rm-table] td.gv-detail{grid-column:1/-1;order:2;display:flex;text-align:right;border-top:1px solid #eee}
table.gv-rms[data-rm-table] td.gv-detail::before{content:attr(data-label)}
table.gv-rms[data-rm-table] tr:not(.gv-open) td.gv-detail,table.gv-rms[data-rm-table] tr:not(.gv-open) .gv-score+.gv-sub{display:none}
.gv-more{display:inline-block;float:right;min-height:32px;margin:0 0 0 8px;padding:2px 10px;font:inherit;font-size:13px;
color:#1f4e79;background:#eef3f8;border:1px solid #c9d6e4;border-radius:6px}
.gv-pager{justify-content:space-between}
.gv-head h1{font-size:17px}
table.gv-rms thead{display:none}
table.gv-rms tr{display:block;border:1px solid #e2e0d8;border-radius:6px;margin:8px 0;padding:4px 8px}
table.gv-rms td{display:flex;justify-content:space-between;gap:10px;border:0;padding:3px 0;text-align:right}
table.gv-rms td::before{content:attr(data-label);color:#666;font-size:12px;text-align:left;flex:0 1 45%}
table.gv-rms td .gv-v{flex:1 1 55%}
table.gv-rms td:first-child{font-size:16px}
.gv-main{padding:2px 6px 16px}.gv-main section{padding:8px 10px}
.gv-map .folium-map{height:58vh !important}
}
</style>"""
