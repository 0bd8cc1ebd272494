"""The plain pages around the maps: the per-role index /maps/ and the bilingual error page.

Both take what they show as arguments (already scoped by the caller) and return
HTML; every value is escaped. No script, no external file: a small inline style.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode

from maps.base import esc
from maps.error_text import bilingual

_STYLE = """<style>
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 -apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;color:#222;
background:#f6f5f1}
header{background:#1f4e79;color:#fff;padding:10px 16px;display:flex;flex-wrap:wrap;align-items:center;gap:6px 16px}
header h1{font-size:19px;margin:0;flex:1 1 auto}
header .user{display:flex;align-items:center;gap:10px;font-size:14px}header form{margin:0}
main{max-width:920px;margin:0 auto;padding:4px 12px 32px}
section{background:#fff;border:1px solid #e2e0d8;border-radius:8px;padding:10px 14px 12px;margin:12px 0}
h2{font-size:17px;margin:2px 0 0}.meta{color:#666;font-size:13px;margin:0 0 6px}.empty{color:#666;margin:4px 0}
.row{display:flex;flex-wrap:wrap;align-items:center;gap:4px 10px;padding:6px 0;border-top:1px solid #f0eee8}
.row .what{flex:0 0 10em;color:#555;font-size:13px}
ul.links{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:8px;flex:1 1 300px}
.btn,ul.links a,button{display:inline-flex;align-items:center;min-height:40px;padding:6px 14px;border-radius:6px;
background:#2b6cb0;color:#fff;text-decoration:none;border:1px solid #2b6cb0;font:inherit;line-height:1.3;cursor:pointer}
ul.links a.alt,.btn.alt{background:#e8eef6;color:#1f4e79;border-color:#c9d6e8}
ul.links a.rm{background:#eef5ec;color:#276221;border-color:#cfe3ca}
.btn:hover,ul.links a:hover{filter:brightness(.95)}.btn:focus-visible,ul.links a:focus-visible,button:focus-visible{outline:3px solid #f0b429;outline-offset:1px}
header button{background:#fff;color:#1f4e79;border-color:#fff;min-height:34px;padding:4px 12px}
details summary{cursor:pointer;color:#1f4e79;min-height:32px;padding-top:4px}details ul.links{margin-top:6px}
.err{max-width:560px;margin:10vh auto;background:#fff;border:1px solid #e2e0d8;border-radius:8px;padding:20px 24px}
.err .code{font-size:40px;font-weight:bold;color:#b03a2e;margin:0;line-height:1.1}
.err h1{font-size:24px;margin:8px 0 4px}.err h1 small{display:block;font-size:17px;font-weight:normal;color:#444}
.err .detail .en{color:#777}.err .detail{color:#333;font-size:14px;white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f5f1;border-radius:4px;padding:6px 10px}
.err .back{display:flex;flex-wrap:wrap;gap:8px;margin:16px 0 0}
@media (max-width:600px){.err{margin:24px 12px;padding:16px}.row .what{flex-basis:100%}}
</style>"""

ROLE_NAMES = {"admin": "管理员 admin", "planner": "规划人员 planner", "analyst": "分析人员 analyst",
              "branch_manager": "网点负责人 branch manager", "rm": "客户经理 RM"}
KIND_NAMES = {"h3": "H3 六边形网格 hexagon grid", "village": "村网格 village grid"}
ERRORS = {
    401: ("请先登录", "Please sign in"),
    403: ("无权查看此页", "You may not open this page"),
    404: ("未找到", "Not found (or not yours to see)"),
    422: ("网址参数有误", "Something in the address is wrong"),
    503: ("数据库暂不可用", "The database is unavailable; try again shortly"),
}


def _doc(title: str, body: str) -> str:
    return ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title>{_STYLE}</head><body>{body}</body></html>")


def _link(href: str, text: str, cls: str = "") -> str:
    return f'<li><a class="{cls}" href="{esc(href)}">{esc(text)}</a></li>'


def _grid_name(g: Mapping) -> str:
    res = "" if g.get("resolution") is None else f" r{g['resolution']}"
    return f"{g['county_name']} · {KIND_NAMES.get(g['kind'], g['kind'])}{res} · #{g['id']}"


def _row(what: str, links: Sequence[str]) -> str:
    return f"<div class='row'><span class='what'>{esc(what)}</span><ul class='links'>{''.join(links)}</ul></div>"


def index_page(*, username: str, role: str, grids: Sequence[Mapping], rms: Sequence[Mapping] = (),
               scenarios: Sequence[Mapping] = (), own_rm: str | None = None) -> str:
    """The pages a signed-in user may open, per grid: what their role has (the caller scoped every list).

    ``grids``: id, county_name, kind, resolution, cells (cells the user sees), scored; ``rms``:
    grid_id, code, name of the RMs owning cells of a grid; ``scenarios``: id, grid_id, name, status.
    """
    planner = role in ("admin", "planner", "analyst")
    sections = []
    if role == "rm" and own_rm:
        day = _link(f"/maps/rm/{quote(own_rm, safe='')}/day", "今日路线与签到 route & check‑in")
        sections.append("<section><h2>今日拜访 Today's visits</h2><div class='meta'>手机上用，离线也能签到 "
                        f"for the phone, check-in works offline</div><ul class='links'>{day}</ul></section>")
    shown = [g for g in grids if g.get("cells")]
    kinds = {g["kind"] for g in shown}
    week = _link("/maps/visits", "我的本周拜访 my week" if role == "rm" else "客户经理本周拜访 RMs' week")
    sections.append("<section><h2>拜访过程 Visits by RM</h2><div class='meta'>计划完成、异常签到、过程积分、走访覆盖地图 "
                    f"planned vs done, flagged check-ins, process score, where visits go</div><ul class='links'>{week}"
                    "</ul></section>")
    if role != "rm" and kinds:
        sections.append("<section><h2>全域概览 Province overview</h2><div class='meta'>所有可见网格 every grid you may see</div>"
                        "<ul class='links'>"
                        + ("" if "h3" not in kinds else _link("/maps/province", "H3 六边形网格 hexagon grids"))
                        + ("" if "village" not in kinds else
                           _link("/maps/province?kind=village", "村网格 village grids", "" if "h3" not in kinds else "alt"))
                        + "</ul></section>")
    for g in shown:
        gid = g["id"]
        scored = g.get("scored", True)
        meta = f"{g['cells']:,} 个网格 cells" + ("" if scored or role == "rm" else " · 尚未评分 not scored yet")
        body = f"<h2>{esc(_grid_name(g))}</h2><div class='meta'>{esc(meta)}</div>"
        if role == "rm":
            body += _row("我的地图 my map", [_link(f"/maps/rm?{urlencode({'grid_id': gid, 'rm_code': own_rm or ''})}",
                                                 "我的手机地图 my phone map")])
        else:
            links = [_link(f"/maps/dashboard?grid_id={gid}", "缺口 gaps")] if scored else []
            for measure, name in (("customers", "客户数 customers"), ("days_since_visit", "走访 visits")):
                links.append(_link(f"/maps/dashboard?grid_id={gid}&measure={measure}", name,
                                   "" if not scored and measure == "customers" else "alt"))
            body += _row("看板 dashboard", links)
        if planner:
            links = [_link(f"/maps/compare?{urlencode({'grid_id': gid, 'b': s['name']})}",
                           f"现状 current → {s['name']} ({'已发布 published' if s['status'] == 'published' else '草稿 draft'})",
                           "alt") for s in scenarios if s["grid_id"] == gid]
            if links:
                body += _row("方案对比 compare", links)
            if g["kind"] == "village":
                body += _row("导入预览 preview", [_link(f"/maps/preview?grid_id={gid}", "村网格预览 village grid preview", "alt")])
        owners = [r for r in rms if r["grid_id"] == gid]
        if role != "rm" and owners:
            rm_links = [_link(f"/maps/rm?{urlencode({'grid_id': gid, 'rm_code': r['code']})}",
                              f"{r['code']} {r.get('name') or ''}".strip(), "rm") for r in owners]
            what = f"客户经理 RMs ({len(owners)})"
            body += (_row(what, rm_links) if role == "branch_manager" else
                     f"<div class='row'><span class='what'>{esc(what)}</span><details><summary>显示 show RM maps"
                     f"</summary><ul class='links'>{''.join(rm_links)}</ul></details></div>")
        sections.append(f"<section>{body}</section>")
    if not shown:
        sections.append("<section><p class='empty'>还没有可查看的网格 No grid to show yet"
                        + (": gridmkt grid build --county C --kind h3" if planner else "") + "</p></section>")
    head = (f"<header><h1>gridmkt 营销沙盘 maps</h1><div class='user'><span>{esc(username)} · {esc(ROLE_NAMES.get(role, role))}"
            "</span><form method='post' action='/api/v1/auth/logout'><button>退出 sign out</button></form></div></header>")
    return _doc("gridmkt 营销沙盘 maps", head + "<main>" + "".join(sections) + "</main>")


def error_page(status: int, detail: object, *, path: str = "") -> str:
    """A small bilingual error page with a way back (the map index, or signing in again)."""
    zh, en = ERRORS.get(status, ("出错了", "Something went wrong"))
    back = "<a class='btn' href='/maps/'>← 地图首页 maps home</a>"
    if status in (401, 403):
        back += f"<a class='btn alt' href='/maps/login?next={quote(path or '/maps/', safe='')}'>换个账号登录 sign in as someone else</a>"
    # The detail Chinese first, then the English the API answers with (maps.error_text).
    shown = "".join(f"<p class='detail'><span lang='zh-CN'>{esc(zh)}</span>\n<span lang='en' class='en'>{esc(en)}</span></p>"
                    for zh, en in bilingual(detail))
    body = (f"<main class='err'><p class='code'>{status}</p><h1>{esc(zh)}<small>{esc(en)}</small></h1>"
            f"{shown}<p class='back'>{back}</p></main>")
    return _doc(f"{status} {zh} {en}", body)
