"""The binary COPY encoder against PostgreSQL itself: whatever goes in comes back out, NULLs included."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from geodata.importers import load

COLUMNS = {"code": "text", "name": "text", "amount": "numeric:2", "n": "int4", "flag": "bool", "day": "date",
           "geom": "geometry"}
DDL = ("CREATE TEMP TABLE copy_rt (code text, name text, amount numeric(18, 2), n int4, flag bool, day date,"
       " geom geometry(Point, 4326))")


def _frame(rows: list[tuple]) -> tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray]]:
    code, name, amount, n, flag, day, lon, lat = (list(c) for c in zip(*rows, strict=True)) if rows else [[]] * 8
    frame = pd.DataFrame({
        "code": pd.Series(code, dtype="str"), "name": pd.Series(name, dtype="str"),
        "amount": pd.Series(amount, dtype=float), "n": pd.Series(n, dtype="Int64"),
        "flag": pd.Series(flag, dtype=object), "day": pd.Series(day, dtype=object), "geom": None,
    })
    lon, lat = np.array(lon, dtype=float), np.array(lat, dtype=float)
    return frame, (load.ewkb(lon, lat), np.isnan(lon))


def _round_trip(engine, rows: list[tuple]) -> list[tuple]:
    frame, points = _frame(rows)
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            cur.execute(DDL)
            load.copy_binary(cur, "copy_rt", frame, list(COLUMNS.values()), ewkb=points)
            cur.execute("SELECT code, name, amount::float8, n, flag, day, ST_X(geom), ST_Y(geom) FROM copy_rt")
            return cur.fetchall()
        finally:
            raw.rollback()


def _expected(rows: list[tuple]) -> list[tuple]:
    out = []
    for code, name, amount, n, flag, day, lon, lat in rows:
        nan = lon != lon
        out.append((code, name, None if amount != amount else round(amount, 2), n, flag, day,
                    None if nan else lon, None if nan else lat))
    return out


codes = st.one_of(st.none(), st.sampled_from(["640121100001", "640104001002", "640522200214"]))
# Any text PostgreSQL can hold (no NUL: the importer rejects those rows before COPY).
names = st.one_of(st.none(), st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
                                     max_size=6), st.sampled_from(["客户", "王小明", ""]))
row = st.tuples(
    codes, names,
    st.one_of(st.just(float("nan")), st.floats(0, 1e9).map(lambda x: round(x, 2))),
    st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.dates(dt.date(1950, 1, 1), dt.date(2099, 12, 31))),
    st.one_of(st.just(float("nan")), st.floats(73.5, 135.0)),
    st.floats(18.0, 53.5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(row, min_size=1, max_size=30))
@example([("640121100001", "客户", 1.5, 7, True, dt.date(2020, 1, 2), 106.2, 38.3)] * 3)  # no NULL anywhere
@example([(None, "客户", 1.5, 7, True, dt.date(2020, 1, 2), 106.2, 38.3),
          ("640121100001", "", 2.0, None, None, None, float("nan"), 38.0)])  # NULLs and an empty text
def test_binary_copy_round_trips_through_postgresql(engine, rows):
    rows = [r if r[6] == r[6] else (*r[:7], float("nan")) for r in rows]
    got = _round_trip(engine, rows)
    want = _expected(rows)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g[:2] == w[:2] and g[3:6] == w[3:6]
        assert (g[2] is None) == (w[2] is None) and (g[2] is None or g[2] == pytest.approx(w[2], abs=0.005))
        assert (g[6] is None) == (w[6] is None) and (g[6] is None or (g[6], g[7]) == (w[6], w[7]))

