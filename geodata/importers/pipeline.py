"""Chunks read, validated, encoded and loaded at once: reader, validator and encoder threads, and the caller.

pyarrow, numpy and the wait for the server's COPY release the GIL, so on two
cores reading, validating and PostgreSQL's work overlap: while the caller
sends chunk k, chunk k+1 is encoded, k+2 validated and k+3 read, and the
server's COPY does not wait for Python between chunks. (Validating in a
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
    prepared: object = None  # what ``prepare`` made of the good rows, if given


def _validate(raw: pd.DataFrame, fraction: float, mapping: dict, ctx: Context) -> Chunk:
    good, bad, rej = process_chunk(raw, mapping, ctx)
    m = rej.mask
    return Chunk(len(raw), good, bad, rej.field[m], rej.value[m], rej.reason[m], fraction)


class _Stage:
    """A daemon thread putting ``work(item)`` for each item of ``items`` on a small queue; iterate to get them.

    The end is a sentinel; an exception (of ``items`` or of ``work``) is handed
    on as the last item and raised to the consumer. ``stop`` makes the thread
    give up at its next step.
    """

    _DONE = object()

    def __init__(self, name: str, items, work, stop: threading.Event) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=1)  # one chunk waiting per stage: memory stays bounded
        self.stop = stop
        self.thread = threading.Thread(target=self._run, args=(items, work), name=name, daemon=True)
        self.thread.start()

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _run(self, items, work) -> None:
        try:
            for item in items:
                if self.stop.is_set():
                    return
                self._put(work(item))
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def __iter__(self) -> Iterator:
        while True:
            try:
                item = self.q.get(timeout=0.2)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def validated(source, ctx: Context, chunk_size: int, prepare=None) -> Iterator[Chunk]:
    """Validated chunks of ``source``, each read and checked while the caller loads an earlier one.

    With ``prepare``, a third thread also sets ``chunk.prepared = prepare(chunk.good)``
    (the COPY encoding), so the caller only sends.
    """
    stop = threading.Event()
    stages = [_Stage("import-read", source.chunks(chunk_size), lambda raw: (raw, source.fraction_read()), stop)]
    stages.append(_Stage("import-validate", stages[-1], lambda item: _validate(*item, source.mapping, ctx), stop))
    if prepare is not None:
        stages.append(_Stage("import-encode", stages[-1], lambda chunk: _prepared(chunk, prepare), stop))
    try:
        yield from stages[-1]
    finally:
        stop.set()
        for stage in reversed(stages):
            stage.thread.join(timeout=5)


def _prepared(chunk: Chunk, prepare) -> Chunk:
    chunk.prepared = prepare(chunk.good)
    return chunk
