"""Shared helpers for benchmarks: a throwaway migrated PostGIS database, memory and JSON output."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine

from geodata import DEMO_DATA

ROOT = Path(__file__).resolve().parents[1]
DATA = DEMO_DATA


def import_ningxia(engine, rejects_dir: Path) -> None:
    """The real Ningxia counties and their villages (GCJ-02 points), as the demo imports them."""
    from geodata.importers import run_import

    run_import(engine, kind="counties", path=DATA / "ningxia_counties_gcj02.geojson", user="bench",
               crs="gcj02", rejects_dir=rejects_dir)
    run_import(engine, kind="villages", path=DATA / "ningxia_villages.csv", user="bench", crs="gcj02",
               rejects_dir=rejects_dir, mapping={"street_code": "township_code", "street_name": "township_name",
                                                 "lon_gcj02": "lon", "lat_gcj02": "lat"})


@contextmanager
def throwaway_database():
    """Yield ``(engine, cluster_info)`` on a fresh, migrated database in a temporary cluster."""
    sys.path.insert(0, str(ROOT))
    from geodata import cluster, migrate

    home = Path(tempfile.mkdtemp(prefix="gridmkt-bench-"))
    home.chmod(0o755)
    info = cluster.ensure(home, throwaway=True)
    eng = create_engine(info.url())
    migrate.upgrade(eng)
    try:
        yield eng, info
    finally:
        eng.dispose()
        cluster.destroy(home)
        shutil.rmtree(home, ignore_errors=True)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The z/x/y tile (x, y) holding a WGS84 point (Web Mercator tiling)."""
    n = 2**z
    return int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) of one process, optionally with its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def cluster_cpu_s(info) -> float:
    """CPU seconds used so far by the throwaway PostgreSQL: postmaster, live and finished backends."""
    pid = int((Path(info.datadir) / "postmaster.pid").read_text().split()[0])
    total = _proc_cpu(pid, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            total += _proc_cpu(int(stat.parent.name))
    return total


def own_cpu_s() -> float:
    """CPU seconds (user + system) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def percentiles_ms(ms, qs=(50, 95, 99)) -> dict[str, float]:
    """``{"p50_ms": ..., ...}``: percentiles of times in milliseconds, to 0.1 ms (NaN when there are none)."""
    a = np.asarray(ms, dtype=float) if len(ms) else np.asarray([np.nan])
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 1) for q in qs}


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children) in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def emit(figures: dict) -> None:
    """Print the benchmark's figures as the last line: one JSON object."""
    print(json.dumps(figures, ensure_ascii=False, default=float))


def start_api(db_url: str, port: int, *, factory: str = "api.app:create_app", workers: int = 1,
              secret: str = "bench-secret-key-of-32-bytes-or-more", timeout: float = 60,
              env: dict[str, str] | None = None) -> subprocess.Popen:
    """uvicorn with an app factory in a subprocess on loopback; returns once /health answers (``timeout`` s at
    most: a shared, busy machine may need more than the default). ``env``: more GRIDMKT_* settings."""
    import httpx

    env = {**os.environ, "GRIDMKT_DATABASE_URL": db_url, "GRIDMKT_SECRET_KEY": secret, "PYTHONPATH": str(ROOT),
           **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"], env=env, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the API did not start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the API did not answer /health within {timeout:.0f} s")


def stop_api(proc: subprocess.Popen) -> None:
    """Stop a server from :func:`start_api` (killed if it does not exit within 20 s)."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
