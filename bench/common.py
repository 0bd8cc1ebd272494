"""Shared helpers for benchmarks: a throwaway migrated PostGIS database, memory and JSON output."""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "geodata" / "demo_data"


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


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children) in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


def emit(figures: dict) -> None:
    """Print the benchmark's figures as the last line: one JSON object."""
    print(json.dumps(figures, ensure_ascii=False, default=float))
