"""Chunks read and validated one ahead of the COPY of the previous one: in a thread, or in a child process.

pyarrow, numpy and the wait for the server's COPY release the GIL, so a
thread already overlaps reading/validating with PostgreSQL's work. Most of
validating is still Python, though, and shares the GIL with encoding the
COPY stream; for big files (:data:`PROCESS_MIN_BYTES`) a forked child
process reads and validates while this process encodes and loads, each on
its own core. The child only computes: it never touches the database
connection it inherits, sends its chunks through a pipe (at most one waits
there, so memory stays bounded), and at the end the state the summary needs
(warnings, points outside their county, unreadable rows, its peak memory).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import queue
import resource
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geodata.importers.rows import Context, process_chunk

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Files at least this big are validated in a child process (below, the fork costs more than it saves).
PROCESS_MIN_BYTES = 16 << 20


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


def validated(source, ctx: Context, chunk_size: int, *, in_process: bool | None = None) -> Iterator[Chunk]:
    """Validated chunks of ``source``; ``in_process`` None decides by the file's size."""
    if in_process is None:
        in_process = source.size_bytes >= PROCESS_MIN_BYTES
    return _in_process(source, ctx, chunk_size) if in_process else _in_thread(source, ctx, chunk_size)


def _in_thread(source, ctx: Context, chunk_size: int) -> Iterator[Chunk]:
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


def _return_freed_memory() -> None:
    """Have glibc give big freed blocks back to the system at once.

    By default glibc raises its mmap threshold after each big free, so the
    chunk-sized arrays of later chunks come from a heap that only grows: a
    10-million-row file then peaked about a fifth higher.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 1 << 20)


def _child(conn, source, ctx: Context, chunk_size: int) -> None:
    _return_freed_memory()
    # A sender thread writes to the pipe (which blocks until the parent reads) while the next chunk is validated.
    outbox: queue.Queue = queue.Queue(maxsize=1)

    def send() -> None:
        while (item := outbox.get()) is not None:
            try:
                conn.send(item)
            except Exception as exc:  # something that does not pickle: its message still gets across
                what = item[1] if item[0] == "error" else exc
                conn.send(("error", RuntimeError(f"{type(what).__name__}: {what}")))
                return  # the parent stops reading and ends this process

    sender = threading.Thread(target=send, name="import-send", daemon=True)
    sender.start()
    try:
        for raw in source.chunks(chunk_size):
            outbox.put(("chunk", _validate(raw, source, ctx)))
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        outbox.put(("done", (ctx.warnings, ctx.outside_county, source.invalid_rows, peak_mb)))
    except BaseException as exc:
        outbox.put(("error", exc))
    finally:
        outbox.put(None)
        sender.join()
        conn.close()


def _in_process(source, ctx: Context, chunk_size: int) -> Iterator[Chunk]:
    mp = multiprocessing.get_context("fork")
    receive, send = mp.Pipe(duplex=False)
    child = mp.Process(target=_child, args=(send, source, ctx, chunk_size), name="import-validate", daemon=True)
    child.start()
    send.close()
    finished = False
    try:
        while True:
            try:
                tag, payload = receive.recv()
            except EOFError:
                child.join(timeout=5)
                raise RuntimeError(f"the process validating the file stopped (exit code {child.exitcode})") from None
            if tag == "chunk":
                yield payload
            elif tag == "done":
                ctx.warnings, ctx.outside_county, source.invalid_rows, ctx.validator_peak_rss_mb = payload
                finished = True
                break
            else:
                raise payload
    finally:
        receive.close()
        if not finished and child.is_alive():  # the consumer stopped early (an error while loading)
            child.terminate()
        child.join(timeout=5)
