"""Masking of names, phones and ID numbers, and the role rule deciding when it applies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from api.masking import mask_id_number, mask_name, mask_phone, mask_record
from geodata.scope import Scope


def test_names_keep_the_first_character():
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("李") == "李"
    assert mask_name(None) is None and mask_name("") == ""


def test_phones_keep_first_three_and_last_four():
    assert mask_phone("13812341234") == "138****1234"
    assert mask_phone("09518123456") == "095****3456"
    assert mask_phone("12345") == "1****"
    assert mask_phone("81234567") == "81****67"


def test_id_numbers_keep_region_and_last_four():
    assert mask_id_number("110101199001011234") == "110101********1234"
    assert mask_id_number("11010119900101123X") == "110101********123X"
    assert mask_id_number("1234567") == "12***67"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=8, max_size=30, alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc"))))
def test_masks_hide_the_middle_and_keep_the_length(s):
    for fn in (mask_name, mask_phone, mask_id_number):
        out = fn(s)
        assert len(out) == len(s)
        assert out.count("*") >= len(s) // 3


def test_record_masked_by_role():
    row = {"customer_id": "C1", "name": "张三", "phone": "13812341234", "id_number": "110101199001011234"}
    for role, masked in (("admin", False), ("rm", False), ("branch_manager", False),
                         ("planner", True), ("analyst", True)):
        scope = Scope(role=role, legal_entity_id=1, rm_code="R1", outlet_codes=("O1",))
        out = mask_record(row, scope)
        assert (out["name"] == "张*") is masked, role
        assert (out["phone"] == "138****1234") is masked, role
        assert (out["id_number"] == "110101********1234") is masked, role
        assert out["customer_id"] == "C1"
    assert row["name"] == "张三"  # the input is not changed
