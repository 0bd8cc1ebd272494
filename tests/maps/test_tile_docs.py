"""docs/api.md's worked GRIDMKT_TILE_URL examples (a WGS84/CGCS2000 server and a GCJ-02 one) configure what they say."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from api.map_pages import page_options
from api.settings import MapSettings, Settings
from grid.projection import haversine_km
from maps.base import new_map, render, shift_points

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
YINCHUAN = (106.2309, 38.4872)  # a point in Ningxia (WGS84)


def _examples() -> list[dict[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Basemap tiles: `GRIDMKT_TILE_URL`", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    envs = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        env = {}
        for line in block.strip().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
        envs.append(env)
    return envs


def test_docs_give_one_worked_example_per_tile_crs():
    examples = _examples()
    assert [MapSettings.from_env(e).tile_crs for e in examples] == ["wgs84", "gcj02"]
    for env in examples:
        assert all(k in env for k in ("GRIDMKT_TILE_URL", "GRIDMKT_TILE_CRS", "GRIDMKT_TILE_ATTRIBUTION"))
        assert all(p in env["GRIDMKT_TILE_URL"] for p in ("{z}", "{x}", "{y}"))


@pytest.mark.parametrize("example", [0, 1], ids=["wgs84", "gcj02"])
def test_each_example_draws_its_tiles_and_lines_overlays_up_with_them(example):
    env = _examples()[example]
    opts = page_options(Settings(maps=MapSettings.from_env(env)))
    html = render(new_map([[38.4, 106.1], [38.6, 106.3]], opts), opts)
    assert json.dumps(env["GRIDMKT_TILE_URL"]) in html and json.dumps(env["GRIDMKT_TILE_ATTRIBUTION"]) in html
    lon, lat = shift_points([YINCHUAN[0]], [YINCHUAN[1]], opts)
    moved_m = float(haversine_km(YINCHUAN[0], YINCHUAN[1], lon[0], lat[0])) * 1000
    if opts.tile_crs == "gcj02":
        assert opts.shifted and 300 < moved_m < 700  # the GCJ-02 offset in Ningxia, as the docs say
    else:
        assert not opts.shifted and moved_m == 0
