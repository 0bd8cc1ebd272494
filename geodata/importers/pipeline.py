"""Chunks read and validated one ahead of the COPY of the previous one, in a thread.

pyarrow, numpy and the wait for the server's COPY release the GIL, so on two
cores reading/validating and PostgreSQL's work overlap. (Validating in a
forked child process instead was measured slower on two cores: the child, this
process and the server then compete for them, and pickling through the pipe
adds CPU: 6.0 s against 5.4 s to read, check and COPY a million customers.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geodata.importers.rows import Context, process_chunk


@dataclass
class Chunk:
    """One validated chunk: its raw row count, good rows, and rejected rows with field, value, reason."""

    rows: int
    good: pd.DataFrame
    bad: pd.DataFrame
    field: np.ndarray
    value: np.ndarray
    reason: np.ndarray
    fraction: float  # of the file read so far


def _validate(raw: pd.DataFrame, source, ctx: Context) -> Chunk:
    good, bad, rej = process_chunk(raw, source.mapping, ctx)
    m = rej.mask
    return Chunk(len(raw), good, bad, rej.field[m], rej.value[m], rej.reason[m], source.fraction_read())


def validated(source, ctx: Context, chunk_size: int) -> Iterator[Chunk]:
    """Validated chunks of ``source``, each read and checked while the caller loads the one before."""
    q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    done = object()

    def put(item) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for raw in source.chunks(chunk_size):
                if stop.is_set():
                    return
                put(_validate(raw, source, ctx))
            put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=produce, name="import-validate", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
