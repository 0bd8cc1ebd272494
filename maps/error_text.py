"""The detail of an error page in Chinese beside the English the API answers with.

The API's JSON keeps its English ``detail``; a browser's error page (``maps.site.error_page``) shows each
line Chinese first, then English. Details a browser user meets on the map pages are translated here:
not signed in, not allowed, not found, a bad address parameter. Anything else keeps its English, under a
Chinese line saying so.
"""

from __future__ import annotations

import re

ROLES = {"rm": "客户经理", "branch_manager": "支行行长", "planner": "规划人员", "analyst": "分析人员",
         "admin": "管理员"}
# Things named in "X 'id' not found" / "X id does not exist", longest first.
THINGS = {"import run": "导入批次", "legal entity id": "法人机构编号", "legal entity": "法人机构",
          "visit plan": "走访计划", "visit task": "走访任务", "collection": "数据集", "customer": "客户",
          "scenario": "方案", "county": "区县", "outlet": "网点", "grid": "网格版本", "visit": "走访",
          "user": "用户", "cell": "网格", "job": "任务", "RM": "客户经理"}
FIXED = {
    "not signed in": "尚未登录：请先登录",
    "unknown user": "用户不存在",
    "user disabled": "此用户已停用",
    "token expired": "登录已过期：请重新登录",
    "invalid token": "登录凭证无效：请重新登录",
    "Not Found": "没有这个页面",
    "no such asset": "没有这个文件",
    "no outlets are assigned to you": "您名下没有网点",
    "this page is for managers and planners; RMs open /maps/rm": "此页面供支行行长和规划人员使用；客户经理请打开 /maps/rm",
    "the preview is for planners": "预览页面仅供规划人员使用",
    "scenarios are for planners": "方案对比仅供规划人员使用",
    "the day page is an RM's own; managers read the visits report": "今日路线页面仅限客户经理本人；管理人员请查看走访报告",
    "cross-site request refused": "拒绝来自其他网站的请求",
    "rm_code is required (only RMs have a map of their own)": "缺少参数 rm_code（只有客户经理有自己的地图）",
    "give grid_id or import_run": "缺少参数：请给出 grid_id 或 import_run",
}
_THING = "|".join(re.escape(t) for t in sorted(THINGS, key=len, reverse=True))
PATTERNS: list[tuple[re.Pattern[str], object]] = [
    (re.compile(rf"^({_THING}) '?([^']*?)'? (?:not found|does not exist)$"),
     lambda m: f"未找到{THINGS[m[1]]} {m[2]}（或无权查看）"),
    (re.compile(r"^no scenario named '?([^']*?)'?(?: for grid (\d+))?$"),
     lambda m: f"未找到方案 {m[1]}" + (f"（网格版本 {m[2]}）" if m[2] else "")),
    (re.compile(r"^grid (\d+) has no cell '?([^']*?)'?$"), lambda m: f"网格版本 {m[1]} 中没有网格 {m[2]}"),
    (re.compile(r"^grid (\d+) has no scenario '?([^']*?)'?$"), lambda m: f"网格版本 {m[1]} 中没有方案 {m[2]}"),
    (re.compile(r"^RM '?([^']*?)'? owns no cells of grid (\d+)$"),
     lambda m: f"客户经理 {m[1]} 在网格版本 {m[2]} 中没有网格"),
    (re.compile(r"^role '(\w+)' may not (?:see|open) (.+)$"),
     lambda m: f"{ROLES.get(m[1], m[1])}角色无权查看此内容（{m[2]}）"),
    (re.compile(r"^role '(\w+)' may not (.+)$"), lambda m: f"{ROLES.get(m[1], m[1])}角色无权执行此操作（{m[2]}）"),
]
# FastAPI/pydantic validation error types → what is wrong with the parameter.
INVALID = {"missing": "缺少参数", "int_parsing": "应为整数", "int_type": "应为整数", "float_parsing": "应为数字",
           "float_type": "应为数字", "bool_parsing": "应为 true 或 false", "date_parsing": "应为日期（YYYY-MM-DD）",
           "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）", "greater_than": "太小", "greater_than_equal": "太小",
           "less_than": "太大", "less_than_equal": "太大", "literal_error": "不是允许的取值",
           "enum": "不是允许的取值", "string_too_long": "太长", "string_too_short": "太短",
           "string_pattern_mismatch": "格式不对"}


def detail_zh(detail: str) -> str:
    """One English detail in Chinese (a Chinese line saying the detail is in English when it is not known)."""
    text = detail.strip()
    if text in FIXED:
        return FIXED[text]
    for pattern, make in PATTERNS:
        m = pattern.match(text)
        if m:
            return make(m)  # type: ignore[operator]
    return "详细说明见下方英文"


def _invalid_zh(error: dict) -> str:
    name = ".".join(str(x) for x in error.get("loc", ())[1:]) or "?"
    kind = error.get("type", "")
    if kind == "missing":
        return f"缺少参数 {name}"
    return f"参数 {name} {INVALID.get(kind, '取值有误')}"


def bilingual(detail: object) -> list[tuple[str, str]]:
    """(中文, English) lines for an error page: one per validation error, else one for the detail."""
    if isinstance(detail, list):  # FastAPI's validation errors: name each parameter
        return [(_invalid_zh(e) if isinstance(e, dict) else "参数有误",
                 f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or '?'}: {e.get('msg', '')}"
                 if isinstance(e, dict) else str(e)) for e in detail]
    if not detail:
        return []
    return [(detail_zh(str(detail)), str(detail))]
