"""The branch manager's visits page (拜访过程管理): per RM and week, the process report, flagged visits and
the visits map layer (where nobody goes).

Takes what it shows as arguments, already scoped and masked by the caller (``api.map_pages.visits_html``):
the week report (``/api/v1/visits/report``), the week's flagged visits (``/api/v1/visits/flagged``) and
the cells with their visit counts (``/api/v1/visits/coverage``). Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import folium
import geopandas as gpd
import pandas as pd
from branca.element import Element

from maps.base import (
    Background,
    GeoLayer,
    PageOptions,
    PointLayer,
    add_background,
    bounds_of,
    esc,
    feature_collection,
    new_map,
    point_rows,
    render,
)
from maps.classify import rm_colors
from maps.cover import LABELS as COVER_LABELS
from maps.cover import add_cover, window_label
from maps.dashboard import territories
from maps.visits_text import COMPONENTS, STYLE, TABLE_SCRIPT, explain_html, flagged_html

PATH = "/maps/visits"


def _pct(part: int, whole: int) -> str:
    """'8 / 10 · 80%' (a share with its numerator and denominator); '0 / 0' when there is nothing to count."""
    if not whole:
        return f"{part:,} / {whole:,}"
    return f"{part:,} / {whole:,} · {part / whole:.0%}"


def _points(row: Mapping, weights: Mapping[str, float]) -> str:
    """Points per part of the score out of that part's full points: '完成 20/40 · 覆盖 8/30 · ...'."""
    total = sum(weights.values()) or 1.0
    shares = row.get("process") or {}
    full = {c: 100 * weights.get(c, 0) / total for c in COMPONENTS}
    return " · ".join(f"{COMPONENTS[c][0]} {full[c] * float(shares.get(c, 0)):.0f}/{full[c]:.0f}" for c in COMPONENTS)


def _flags(row: Mapping) -> str:
    far, short = int(row.get("flag_far") or 0), int(row.get("flag_short") or 0)
    if not far and not short:
        return '<span class="gv-ok">无 none</span>'
    out = []
    if far:
        out.append(f'<span class="gv-flag">距离远 far {far}</span>')
    if short:
        out.append(f'<span class="gv-flag">时长短 short {short}</span>')
    return " ".join(out)


RM_COLUMNS = (("rm", "客户经理 RM"), ("planned", "计划完成 planned → done"), ("visits", "走访 visits (签到 check-ins)"),
              ("flags", "异常签到 flags"), ("gap", "空白/服务不足网格走访 visits in blank or under-served cells"),
              ("cover", "责任区客户覆盖 territory customers visited, 90 days"), ("score", "过程积分 process score"))


def _rm_cell(row: Mapping, links: Mapping[str, str]) -> str:
    code, name = str(row["rm_code"]), row.get("rm_name") or ""
    label = esc(f"{code} {name}".strip())
    link = links.get(code)
    shown = f'<a href="{esc(link)}">{label}</a>' if link else label
    return shown + (f'<div class="gv-sub">网点 outlet {esc(row["outlet_code"])}</div>' if row.get("outlet_code") else "")


def _td(label: str, html: str, key: str = "") -> str:
    # One value box per cell: on a phone the RM table is a card per RM, its name on top, then flags, coverage
    # and score side by side under short labels (data-short); the details (DETAIL columns) fold away until the
    # card is opened, each a row of label (::before) and value.
    cls = ' class="gv-detail"' if key in DETAIL else ""
    return (f'<td data-label="{esc(label)}" data-short="{esc(SHORT.get(key, label))}"{cls}>'
            f'<div class="gv-v">{html}</div></td>')


SHORT = {"flags": "异常 flags", "cover": "覆盖 90天 coverage", "score": "积分 score"}
# Columns a phone shows only on an opened card: what a manager acts on (RM, flags, coverage, score) stays.
DETAIL = ("planned", "visits", "gap")
PAGE_FROM = 10  # more RMs than this: find, sort and pages (the whole table without script)


def _share(r: Mapping) -> float | None:
    n = int(r["territory_customers"])
    return int(r["customers_visited"]) / n if n else None


def _flag_count(r: Mapping) -> int:
    return int(r.get("flag_far") or 0) + int(r.get("flag_short") or 0)


def action_order(items: Sequence[Mapping]) -> list[Mapping]:
    """RMs in the order a manager acts on them: most flags first, then lowest coverage (RMs without territory
    customers after those with), then lowest process score, then code."""
    def key(r: Mapping):
        share = _share(r)
        return (-_flag_count(r), 2.0 if share is None else share, float(r["process_score"]), str(r["rm_code"]))
    return sorted(items, key=key)


def _row_data(r: Mapping) -> str:
    share = _share(r)
    find = " ".join(str(x) for x in (r["rm_code"], r.get("rm_name"), r.get("outlet_code")) if x).lower()
    return (f' data-q="{esc(find)}" data-code="{esc(r["rm_code"])}" data-flags="{_flag_count(r)}"'
            f' data-cover="{2.0 if share is None else round(share, 6)}" data-score="{float(r["process_score"]):.3f}"')


def _tools(n: int) -> str:
    sorts = (("action", "异常优先 flags first"), ("cover", "覆盖最低 lowest coverage"),
             ("score", "积分最低 lowest score"), ("code", "编号 RM code"))
    opts = "".join(f'<option value="{k}">{esc(label)}</option>' for k, label in sorts)
    return ('<div class="gv-tools"><input type="search" class="gv-find" aria-label="查找客户经理 find an RM" '
            'placeholder="查找 find: 编号/姓名/网点 code, name, outlet">'
            f'<label>排序 sort <select class="gv-sort">{opts}</select></label>'
            f'<span class="gv-range" aria-live="polite">{n} 人 RMs</span></div>')


PAGER = ('<div class="gv-pager"><button type="button" class="gv-btn gv-prev">‹ 上一页 previous</button>'
         '<span class="gv-range"></span><button type="button" class="gv-btn gv-next">下一页 next ›</button></div>')


def rm_table(items: Sequence[Mapping], weights: Mapping[str, float], links: Mapping[str, str]) -> str:
    """One row per RM in :func:`action_order` (cards on a phone: each cell labelled, details folded), a total
    row over them; with more than :data:`PAGE_FROM` RMs, a search box, a sort and pages (``TABLE_SCRIPT``)."""
    if not items:
        return '<p class="gv-empty">没有可查看的客户经理 No RM to show</p>'
    head = "".join(f"<th>{esc(h)}</th>" for _, h in RM_COLUMNS)
    more = '<button type="button" class="gv-more" aria-expanded="false">详情 more</button>'
    body = []
    for r in action_order(items):
        cells = {
            "rm": more + _rm_cell(r, links),
            "planned": esc(_pct(int(r["planned_done"]), int(r["planned"]))) if r["planned"]
                       else '<span class="gv-sub">无计划 no plan</span>',
            "visits": esc(f"{int(r['visits']):,} ({int(r['checkins']):,})"),
            "flags": _flags(r),
            "gap": esc(_pct(int(r["gap_visits"]), int(r["visits"]))),
            "cover": esc(_pct(int(r["customers_visited"]), int(r["territory_customers"]))),
            "score": f'<b class="gv-score">{float(r["process_score"]):.1f}</b>'
                     f'<div class="gv-sub">{esc(_points(r, weights))}</div>',
        }
        body.append(f"<tr{_row_data(r)}>" + "".join(_td(h, cells[k], k) for k, h in RM_COLUMNS) + "</tr>")
    foot = ""
    if len(items) > 1:
        s = {k: sum(int(r[k]) for r in items) for k in ("planned", "planned_done", "visits", "checkins", "flag_far",
                                                       "flag_short", "gap_visits", "territory_customers",
                                                       "customers_visited")}
        total = {"rm": f'{more}<b>合计 total</b><div class="gv-sub">{len(items)} 人 RMs</div>',
                 "planned": esc(_pct(s["planned_done"], s["planned"])),
                 "visits": esc(f"{s['visits']:,} ({s['checkins']:,})"), "flags": _flags(s),
                 "gap": esc(_pct(s["gap_visits"], s["visits"])),
                 "cover": esc(_pct(s["customers_visited"], s["territory_customers"])), "score": "–"}
        foot = '<tfoot><tr class="gv-total">' + "".join(_td(h, total[k], k) for k, h in RM_COLUMNS) + "</tr></tfoot>"
    paged = len(items) > PAGE_FROM
    table = (f'<table class="gv-rms" data-rm-table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
             f'{foot}</table>')
    return (_tools(len(items)) if paged else "") + table + (PAGER if paged else "") + TABLE_SCRIPT


def week_form(week: str, weeks: Sequence[str], grid_id: int | None, grids: Sequence[tuple[int, str]]) -> str:
    """Previous/next week links and a week (and grid) selector that reloads the page (GET)."""
    def url(w: str) -> str:
        return PATH + "?" + urlencode({"week": w, **({"grid_id": grid_id} if grid_id else {})})

    i = weeks.index(week) if week in weeks else -1
    prev = f'<a class="gv-btn" href="{esc(url(weeks[i + 1]))}">‹ 上周 previous</a>' if 0 <= i < len(weeks) - 1 else ""
    nxt = f'<a class="gv-btn" href="{esc(url(weeks[i - 1]))}">下周 next ›</a>' if i > 0 else ""
    opts = "".join(f'<option value="{esc(w)}"{" selected" if w == week else ""}>{esc(w)}</option>' for w in weeks)
    grid_sel = ""
    if grids:
        g_opts = "".join(f'<option value="{g}"{" selected" if g == grid_id else ""}>{esc(label)}</option>'
                         for g, label in grids)
        grid_sel = f'<label>网格 grid <select name="grid_id" onchange="this.form.submit()">{g_opts}</select></label>'
    return (f'<form class="gv-week" method="get" action="{PATH}">{prev}<label>周 week <select name="week" '
            f'onchange="this.form.submit()">{opts}</select></label>{nxt}{grid_sel}'
            '<noscript><button class="gv-btn">查看 show</button></noscript></form>')


def visits_page(report: Mapping, *, flagged: Sequence[Mapping], weeks: Sequence[str], options: PageOptions,
                rm_links: Mapping[str, str] | None = None, cells: gpd.GeoDataFrame | None = None,
                cover: Mapping | None = None, grid_id: int | None = None, grids: Sequence[tuple[int, str]] = (),
                outlets: pd.DataFrame | None = None, background: Background | None = None,
                title: str = "拜访过程 Visits by RM") -> str:
    """The page: header with the week selector, the RM table, the visits map, flagged visits, the score explained.

    ``report``: week, from, to, weights, items (as ``api.operations.visits.week_report``); ``flagged``: the
    week's flagged visits; ``cells``: cell_id, geometry, places, owner_rm of the grid's cells the reader
    sees; ``cover``: window_days, customers, customers_visited, visits, items (``cell_cover``).
    """
    week, weights = report["week"], report.get("weights") or {}
    items = list(report.get("items") or [])
    have_map = cells is not None and not cells.empty
    geoms = cells.geometry.to_numpy() if have_map else None
    bounds = bounds_of(geoms, options) if have_map else [[35.0, 105.0], [39.5, 107.7]]
    m = new_map(bounds, options, link_labels=COVER_LABELS)
    days = int(cover.get("window_days", 90)) if cover else 90
    if have_map:
        add_background(m, background, options)
        add_cover(m, cells, cover, options)
        t_geoms, t_codes = territories(cells)
        colors = rm_colors(t_codes)
        if len(t_codes):
            GeoLayer(feature_collection(t_geoms, [{"oc": colors[c], "t": c} for c in t_codes], options),
                     "territory", "责任区 territories").add_to(m)
        if outlets is not None and len(outlets):
            PointLayer(point_rows(outlets, ["name", "code"], options), "outlet", "网点 outlets").add_to(m)
        folium.LayerControl(collapsed=True).add_to(m)

    header = (f'<header class="gv-head"><h1>{esc(title)} <small>{esc(week)} · {esc(report["from"])} – '
              f'{esc(report["to"])}</small></h1>{week_form(week, weeks, grid_id, grids)}'
              '<a class="gv-btn gv-home" href="/maps/">地图首页 maps home</a></header>')
    root = m.get_root()
    root.header.add_child(Element(STYLE), name="gv_style")
    root.html.add_child(Element(header + '<main class="gv-main"><section><h2>本周客户经理 RMs this week</h2>'
                                + rm_table(items, weights, rm_links or {}) + "</section>"
                                + _map_head(cover, have_map)), name="gv_top", index=0)
    # The map's div takes this place when the page renders (folium adds it under the map's own name).
    root.html.add_child(Element(""), name=m.get_name())
    root.html.add_child(Element("</section>" + flagged_html(flagged, week, {r["rm_code"]: r.get("rm_name") for r in items}) + explain_html(weights, days)
                                + "</main>"), name="gv_bottom")
    return render(m, options.__class__(**{**options.__dict__, "title": f"{title} · {week}"}))


def _map_head(cover: Mapping | None, have_map: bool) -> str:
    head = '<section class="gv-map"><h2>走访覆盖地图 Where visits go</h2>'
    if not have_map:
        return head + '<p class="gv-empty">没有可显示的网格 No grid to draw</p>'
    if cover:
        n, v = int(cover.get("customers") or 0), int(cover.get("customers_visited") or 0)
        head += (f'<p class="gv-meta">走访窗口 window {esc(window_label(cover))} · 已走访客户 customers '
                 f'visited: <b>{esc(_pct(v, n))}</b> · '
                 f'走访 visits {int(cover.get("visits") or 0):,}. 红色网格有客户却无人走访 red cells: customers, '
                 'and nobody went.</p>')
    return head
