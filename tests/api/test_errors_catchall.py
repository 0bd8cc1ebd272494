"""Unhandled exceptions: a logged 500 JSON answer, and the keep-alive connection stays usable.
Masking copes with missing values, so the workbook of a customer without a phone is not such a 500."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time

import openpyxl
import pandas as pd
import pytest
import uvicorn
from sqlalchemy import text

from api.app import create_app
from api.masking import mask_id_number, mask_name, mask_phone, mask_record
from geodata.scope import Scope


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, pd.NaT])
def test_masks_keep_missing_values_missing(missing):
    """NaN (an empty cell of a pandas frame), NA and NaT are no value: masked to None, never an error."""
    for fn in (mask_name, mask_phone, mask_id_number):
        assert fn(missing) is None
    out = mask_record({"name": missing, "phone": missing, "id_number": missing},
                      Scope(role="planner", legal_entity_id=1))
    assert out == {"name": None, "phone": None, "id_number": None}


def test_masks_take_numbers_typed_as_numbers():
    """A phone read as a number is masked as its digits."""
    assert mask_phone(13812341234) == "138****1234"
    assert mask_name("") == "" and mask_phone("") == ""


def test_frame_masking_of_missing_phones():
    """The export's frame masking over a column with NaN, as pandas builds it for customers without a phone."""
    from api.operations.exports import mask_frame

    df = pd.DataFrame({"name": ["张三", float("nan")], "phone": [float("nan"), "13812341234"],
                       "id_number": [None, float("nan")]})
    out = mask_frame(df, Scope(role="analyst", legal_entity_id=1))
    assert out["name"].tolist()[0] == "张*" and out["phone"].tolist()[1] == "138****1234"
    assert pd.isna(out["phone"].tolist()[0]) and pd.isna(out["id_number"].tolist()[1])


def test_workbook_of_customers_without_phone_for_a_planner(client, auth, data, engine):
    """Customers without phone or ID number: the planner's workbook is a 200 with those cells empty."""
    with engine.begin() as c:
        c.execute(text("UPDATE customer SET phone = NULL, id_number = NULL WHERE customer_id = 'CA1'"))
    try:
        for who in ("planner_a", "analyst_a"):
            r = client.get(f"/api/v1/grids/{data['grid_a']}/export", params={"format": "xlsx"}, headers=auth(who))
            assert r.status_code == 200, r.text
            wb = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)
            values = {v for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row}
            assert "CA1" in values and "张*" in values and "张三" not in values
            assert not any(isinstance(v, str) and v.lower() == "nan" for v in values)
    finally:
        with engine.begin() as c:
            c.execute(text("UPDATE customer SET phone = '13812341234', id_number = '110101199001011234'"
                           " WHERE customer_id = 'CA1'"))


def _app_with_a_bug(settings):
    app = create_app(settings)

    def boom() -> dict:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom, methods=["GET"])
    return app


def test_unhandled_exception_is_a_json_500(settings, data):
    """An exception no handler knows: 500 with the documented ``error`` key, no traceback text."""
    from fastapi.testclient import TestClient

    with TestClient(_app_with_a_bug(settings), raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "InternalError", "detail": "internal error"}


def test_keep_alive_connection_survives_an_unhandled_exception(settings, data):
    """Over a real uvicorn server: after the 500, the next request on the same connection is answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_app_with_a_bug(settings), host="127.0.0.1", port=port,
                                           log_level="critical", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/boom")
        r = conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 500 and body["error"] == "InternalError"
        assert r.getheader("connection", "").lower() != "close"
        sock = conn.sock
        for _ in range(2):  # the same socket answers again: it was not closed under the client
            conn.request("GET", "/health")
            r = conn.getresponse()
            r.read()
            assert r.status in (200, 503)
            assert conn.sock is sock
        conn.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
