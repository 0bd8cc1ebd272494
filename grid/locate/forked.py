"""Array work split over forked processes that write their shares into shared memory."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable

import numpy as np

from grid.errors import GridError


def run_forked(
    n: int, work: Callable[[int, int], tuple[np.ndarray, ...]], dtypes: Iterable, workers: int
) -> tuple[np.ndarray, ...]:
    """Run ``work(start, stop)`` over ``range(n)`` in forked processes writing to shared memory.

    Fork shares the inputs copy-on-write and the outputs through anonymous
    shared maps, so nothing is pickled. Falls back to one process where fork
    is unavailable. Do not call with ``workers > 1`` from a multi-threaded
    server; use ``workers=1`` there.
    """
    dtypes = [np.dtype(d) for d in dtypes]
    if workers <= 1 or n < 200_000 or not hasattr(os, "fork"):
        return work(0, n)
    bounds = np.linspace(0, n, workers + 1).astype(int)
    bufs = [mmap.mmap(-1, max(1, n * d.itemsize)) for d in dtypes]
    outs = [np.frombuffer(b, dtype=d, count=n) for b, d in zip(bufs, dtypes, strict=True)]
    pids = []
    for w in range(1, workers):
        pid = os.fork()
        if pid == 0:  # child: compute its share, write it, leave without cleanup handlers
            code = 1
            try:
                a, b = bounds[w], bounds[w + 1]
                for o, r in zip(outs, work(a, b), strict=True):
                    o[a:b] = r
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    try:
        for o, r in zip(outs, work(bounds[0], bounds[1]), strict=True):
            o[bounds[0] : bounds[1]] = r
    finally:
        failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    if failed:
        raise GridError(f"{len(failed)} worker process(es) failed")
    # Copy out of the shared maps so they can be released.
    return tuple(o.copy() for o in outs)
