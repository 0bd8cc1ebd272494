"""Tests for grid.chinacrs: known values, round trips, out-of-China, raw-input problems."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.chinacrs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    coordinate_problems,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from grid.projection import haversine_km


def _ref_wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Scalar transcription of the standard published algorithm, as an independent reference."""
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    pi = math.pi
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * pi) + 40.0 * math.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * pi) + 320 * math.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * pi) + 40.0 * math.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * pi) + 300.0 * math.sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * pi
    magic = 1 - ee * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((a * (1 - ee)) / (magic * sqrtmagic) * pi)
    dlon = (dlon * 180.0) / (a / sqrtmagic * math.cos(radlat) * pi)
    return lon + dlon, lat + dlat


def _china_grid() -> tuple[np.ndarray, np.ndarray]:
    """A 0.5-degree grid over mainland China's box (about 15,000 points)."""
    lon, lat = np.meshgrid(np.arange(73.5, 135.01, 0.5), np.arange(18.0, 53.51, 0.5))
    return lon.ravel(), lat.ravel()


def _err_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    return haversine_km(lon1, lat1, lon2, lat2) * 1000.0


# Published vectors from the README of wandergis/coordtransform (the common JS/Python port).
def test_published_vectors_beijing():
    lon, lat = wgs84_to_gcj02(116.404, 39.915)
    assert float(lon) == pytest.approx(116.41024449916938, abs=1e-9)
    assert float(lat) == pytest.approx(39.91640428150164, abs=1e-9)
    lon, lat = gcj02_to_bd09(116.404, 39.915)
    assert float(lon) == pytest.approx(116.41036949371029, abs=1e-9)
    assert float(lat) == pytest.approx(39.92133699351021, abs=1e-9)
    lon, lat = wgs84_to_bd09(116.404, 39.915)
    assert float(lon) == pytest.approx(116.41662724378733, abs=1e-9)
    assert float(lat) == pytest.approx(39.922699552216216, abs=1e-9)


def test_tiananmen_known_pair():
    lon, lat = wgs84_to_gcj02(116.397128, 39.916527)
    # The commonly quoted GCJ-02 pair is rounded to 6 decimals; it agrees within ~0.4 m.
    assert float(lon) == pytest.approx(116.403371, abs=5e-6)
    assert float(lat) == pytest.approx(39.917928, abs=5e-6)


def test_forward_matches_scalar_reference_over_china():
    lon, lat = _china_grid()
    glon, glat = wgs84_to_gcj02(lon, lat)
    ref = np.array([_ref_wgs84_to_gcj02(x, y) for x, y in zip(lon, lat, strict=True)])
    np.testing.assert_allclose(glon, ref[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(glat, ref[:, 1], rtol=0, atol=1e-9)
    # The offset is real: hundreds of metres, not a no-op.
    assert np.median(_err_m(lon, lat, glon, glat)) > 100


def test_gcj02_round_trips_below_5cm_over_china():
    lon, lat = _china_grid()
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert _err_m(lon, lat, back_lon, back_lat).max() < 0.05
    # And the other way: treat the grid as GCJ-02 input.
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    again_lon, again_lat = wgs84_to_gcj02(wlon, wlat)
    assert _err_m(lon, lat, again_lon, again_lat).max() < 0.05


def test_one_gcj02_step_shrinks_the_error_by_the_documented_bound():
    """GCJ02_CONTRACTION lets the inverse stop after two evaluations: check it on a fine grid over China."""
    import grid.chinacrs as crs

    lon, lat = np.meshgrid(np.arange(73.5, 135.01, 0.05), np.arange(18.0, 53.51, 0.05))
    lon, lat = lon.ravel(), lat.ravel()
    glon, glat = wgs84_to_gcj02(lon, lat)
    x, y = glon.copy(), glat.copy()
    for _ in range(2):
        fx, fy = wgs84_to_gcj02(x, y)
        step = _err_m(x, y, x - (fx - glon), y - (fy - glat))
        x, y = x - (fx - glon), y - (fy - glat)
        left = _err_m(lon, lat, x, y)
        assert (left <= 0.9 * crs.GCJ02_CONTRACTION * step + 1e-6).all()
    assert left.max() < 0.05


def test_gcj02_inverse_takes_two_forward_evaluations(monkeypatch):
    import grid.chinacrs as crs

    calls = []
    real = crs.wgs84_to_gcj02
    monkeypatch.setattr(crs, "wgs84_to_gcj02", lambda x, y: calls.append(len(x)) or real(x, y))
    lon, lat = np.meshgrid(np.linspace(104.2, 107.7, 80), np.linspace(35.2, 39.4, 80))
    glon, glat = real(lon.ravel(), lat.ravel())
    back = crs.gcj02_to_wgs84(glon, glat)
    assert calls == [glon.size, glon.size]
    assert _err_m(lon.ravel(), lat.ravel(), *back).max() < 0.05


def test_one_step_inverse_is_not_good_enough_in_ningxia():
    lon, lat = np.meshgrid(np.linspace(104.2, 107.7, 60), np.linspace(35.2, 39.4, 60))
    lon, lat = lon.ravel(), lat.ravel()
    glon, glat = wgs84_to_gcj02(lon, lat)
    one_lon, one_lat = gcj02_to_wgs84(glon, glat, max_iter=1)
    it_lon, it_lat = gcj02_to_wgs84(glon, glat)
    assert _err_m(lon, lat, one_lon, one_lat).max() > 1.0
    assert _err_m(lon, lat, it_lon, it_lat).max() < 0.05


def test_bd09_round_trips_below_5cm_over_china():
    lon, lat = _china_grid()
    back_lon, back_lat = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert _err_m(lon, lat, back_lon, back_lat).max() < 0.05
    back_lon, back_lat = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert _err_m(lon, lat, back_lon, back_lat).max() < 0.05
    # The usual closed-form inverse alone (zero iterations beyond the start) is worse.
    one_lon, one_lat = bd09_to_gcj02(*gcj02_to_bd09(lon, lat), max_iter=0)
    assert _err_m(lon, lat, one_lon, one_lat).max() > 0.05


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=73.5, max_value=135.0),
    st.floats(min_value=18.0, max_value=53.5),
    st.sampled_from(["gcj02", "bd09"]),
)
def test_to_wgs84_inverts_forward_everywhere_in_china(lon, lat, crs):
    forward = wgs84_to_gcj02 if crs == "gcj02" else wgs84_to_bd09
    back = to_wgs84(*forward(lon, lat), crs)
    assert float(_err_m(lon, lat, *back)) < 0.05


def test_vectorised_equals_scalar():
    lon = np.array([106.2, 105.7, 116.404, 2.35])
    lat = np.array([38.5, 36.0, 39.915, 48.85])
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, bd09_to_wgs84):
        vx, vy = fn(lon, lat)
        for i in range(len(lon)):
            sx, sy = fn(float(lon[i]), float(lat[i]))
            assert np.ndim(sx) == 0
            assert float(sx) == pytest.approx(vx[i], abs=1e-12)
            assert float(sy) == pytest.approx(vy[i], abs=1e-12)


def test_out_of_china_is_left_unchanged():
    lon = np.array([2.3522, 139.6917, -74.006, 106.2])  # Paris, Tokyo, New York, Ningxia
    lat = np.array([48.8566, 35.6895, 40.7128, 38.5])
    assert out_of_china(lon, lat).tolist() == [True, True, True, False]
    glon, glat = wgs84_to_gcj02(lon, lat)
    np.testing.assert_array_equal(glon[:3], lon[:3])
    np.testing.assert_array_equal(glat[:3], lat[:3])
    wlon, wlat = gcj02_to_wgs84(lon, lat)
    np.testing.assert_array_equal(wlon[:3], lon[:3])
    assert glon[3] != lon[3]


def test_nan_passes_through():
    lon, lat = gcj02_to_wgs84([np.nan, 106.2], [38.5, 38.5])
    assert np.isnan(lon[0]) and np.isnan(lat[0])
    assert np.isfinite(lon[1])


def test_to_wgs84_names():
    lon, lat = to_wgs84([106.2], [38.5], "WGS84")
    assert lon.tolist() == [106.2] and lat.tolist() == [38.5]
    a = to_wgs84(106.2, 38.5, " Gcj02 ")
    b = gcj02_to_wgs84(106.2, 38.5)
    assert float(a[0]) == float(b[0])
    with pytest.raises(ValueError, match="wgs84, gcj02, bd09"):
        to_wgs84(106.2, 38.5, "cgcs2000")


def test_coordinate_problems_on_literal_rows():
    lon = ["106.27", "38.47", None, "", "12,3", "0", "200", "10.5", " 106.1 ", 106.3, "abc"]
    lat = ["38.47", "106.27", "38.4", "38.4", "38.4", "0", "38.4", "40.0", "38.2", np.nan, "38"]
    codes, fx, fy = coordinate_problems(lon, lat)
    assert codes.tolist() == [
        None,
        "swapped",
        "missing",
        "missing",
        "non_numeric",
        "zero",
        "out_of_range",
        "outside_bbox",
        None,
        "missing",
        "non_numeric",
    ]
    assert (fx[0], fy[0]) == (106.27, 38.47)
    assert (fx[1], fy[1]) == (106.27, 38.47)  # swapped back
    assert (fx[7], fy[7]) == (10.5, 40.0)  # parseable, caller decides
    assert (fx[8], fy[8]) == (106.1, 38.2)  # whitespace tolerated
    assert np.isnan(fx[[2, 3, 4, 5, 6, 9, 10]]).all()
    assert np.isnan(fy[[2, 3, 4, 5, 6, 9, 10]]).all()


def test_coordinate_problems_numeric_arrays_and_bbox():
    codes, fx, fy = coordinate_problems(
        np.array([106.0, 5.0]), np.array([38.0, 5.0]), bbox=(0, 0, 10, 10)
    )
    assert codes.tolist() == ["outside_bbox", None]
    assert fx.tolist()[1] == 5.0
    with pytest.raises(ValueError, match="length"):
        coordinate_problems([1.0, 2.0], [1.0])


def test_to_wgs84_returns_new_arrays():
    lon, lat = np.array([106.2]), np.array([38.5])
    x, y = to_wgs84(lon, lat, "wgs84")
    x[0] = 0.0
    assert lon[0] == 106.2
