"""Error pages' details, Chinese first then the API's English (maps.error_text, maps.site.error_page)."""

from __future__ import annotations

import pytest

from maps.error_text import bilingual, detail_zh
from maps.site import error_page


@pytest.mark.parametrize(("en", "zh"), [
    ("not signed in", "尚未登录：请先登录"),
    ("token expired", "登录已过期：请重新登录"),
    ("this page is for managers and planners; RMs open /maps/rm", "此页面供支行行长和规划人员使用；客户经理请打开 /maps/rm"),
    ("role 'rm' may not see the county's territories", "客户经理角色无权查看此内容（the county's territories）"),
    ("RM 'R3' not found", "未找到客户经理 R3（或无权查看）"),
    ("grid 999999 does not exist", "未找到网格版本 999999（或无权查看）"),
    ("import run 12 not found", "未找到导入批次 12（或无权查看）"),
    ("no scenario named 'plan-b' for grid 3", "未找到方案 plan-b（网格版本 3）"),
    ("Not Found", "没有这个页面"),
    ("something new went wrong", "详细说明见下方英文"),
])
def test_details_in_chinese(en, zh):
    assert detail_zh(en) == zh


def test_validation_errors_name_each_parameter_in_both_languages():
    errors = [{"type": "int_parsing", "loc": ["query", "grid_id"], "msg": "Input should be a valid integer"},
              {"type": "missing", "loc": ["query", "rm_code"], "msg": "Field required"},
              {"type": "something_else", "loc": ["query", "b"], "msg": "odd"}]
    assert bilingual(errors) == [("参数 grid_id 应为整数", "grid_id: Input should be a valid integer"),
                                 ("缺少参数 rm_code", "rm_code: Field required"),
                                 ("参数 b 取值有误", "b: odd")]
    assert bilingual(None) == [] and bilingual("") == []


def test_page_shows_chinese_before_english_escaped():
    page = error_page(404, "RM '<b>' not found", path="/maps/rm")
    zh, en = page.index("未找到客户经理 &lt;b&gt;"), page.index("RM '&lt;b&gt;' not found")
    assert 0 < zh < en and "<b>" not in page
