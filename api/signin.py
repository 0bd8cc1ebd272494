"""Checking a sign-in, for ``/api/v1/auth/token`` and ``/api/v1/auth/session`` alike.

A flood of sign-ins must not take the API down. So: no pooled connection is held while argon2
hashes (the user row is read, the connection returned, the password checked outside); at most
``GRIDMKT_LOGIN_CONCURRENCY`` checks run at once and the rest wait up to ``GRIDMKT_LOGIN_WAIT_S``
for their turn, on the event loop rather than in a worker thread, then get 503 with
``Retry-After``; checks run in the gate's own threads at a lower CPU priority, so other requests
keep their share of the cores; and failures are counted per submitted username and per client address in the
database (:mod:`geodata.logins`), a key that reaches its limit being locked out (429 with
``Retry-After``) for ``GRIDMKT_LOGIN_LOCKOUT_S``. A lockout reads the same whether the username
exists or not, and its start is written to the audit log, as is every failed attempt that was
checked.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import HTTPException, Request, status
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from api.auth import verify_password
from api.proxies import client_address
from api.replicas import nothing_to_read_back
from api.settings import Settings, SignInSettings
from geodata import audit, logins, users
from geodata.errors import NotFound

LOCKED = "too many failed sign-ins; try again later"
BUSY = "too many sign-ins at once; try again shortly"
WRONG = "wrong username or password"
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Wrong username or password (also for unknown and disabled users)."},
    429: {"description": "Too many failed sign-ins for this username or from this address: locked out "
                         "for `Retry-After` seconds, whether or not the username exists."},
    503: {"description": "Too many password checks at once: try again after `Retry-After` seconds."},
}


# Password checks run at this lower CPU priority (Linux nice; argon2's own threads inherit it), so
# that while they keep the cores busy every other request still gets its share of CPU time.
CHECK_NICENESS = 10


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not permitted: checks run at normal priority
        pass


class SignInGate:
    """At most ``concurrency`` password checks at once, in their own low-priority threads; a check
    waits up to ``wait_s`` for its turn.

    Built in the app's lifespan (it belongs to the running event loop), kept on ``app.state`` and
    closed at shutdown.
    """

    def __init__(self, settings: SignInSettings):
        self.settings = settings
        self._slots = anyio.Semaphore(settings.concurrency)
        self._threads: ThreadPoolExecutor | None = None

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """:func:`api.auth.verify_password` in one of the gate's threads (call it during a turn)."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="gridmkt-signin",
                                               initializer=_lower_priority)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, verify_password, password, password_hash)

    def close(self) -> None:
        """Let the check threads end (at app shutdown; a later check starts new ones)."""
        threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one slot; 503 with ``Retry-After`` when none frees up within ``wait_s``."""
        acquired = False
        with anyio.move_on_after(self.settings.wait_s):
            await self._slots.acquire()
            acquired = True
        if not acquired:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, BUSY,
                                headers={"Retry-After": str(max(1, round(self.settings.wait_s)))})
        try:
            yield
        finally:
            self._slots.release()


def _keys(username: str, address: str) -> list[logins.Key]:
    return [("user", username.strip().lower()), ("address", address)]


def _look_up(engine: Engine, username: str, keys: list[logins.Key]) -> tuple[int, dict | None]:
    with engine.begin() as conn:
        left = logins.locked_for(conn, keys=keys)
        if left:
            return left, None
        try:
            return 0, users.get_user(conn, username=username, with_hash=True)
        except NotFound:
            return 0, None


def _failed(engine: Engine, s: SignInSettings, username: str, address: str, keys: list[logins.Key]) -> None:
    limits = {"user": s.max_failures, "address": s.max_failures_per_address}
    with engine.begin() as conn:
        started = logins.record_failure(conn, keys=keys, limits=limits, window_s=s.window_s,
                                        lockout_s=s.lockout_s)
        audit.record(conn, username=username[:200], action="login_failed", object_type="user",
                     object_id=username[:200], detail={"address": address})
        for kind, key, failures in started:
            audit.record(conn, username=username[:200], action="lockout", object_type=f"login_{kind}",
                         object_id=key, detail={"address": address, "failures": failures,
                                                "window_s": s.window_s, "lockout_s": s.lockout_s})


def _succeeded(engine: Engine, user: dict, keys: list[logins.Key], detail: dict | None) -> None:
    with engine.begin() as conn:
        logins.clear(conn, key=keys[0])
        audit.record(conn, username=user["username"], action="login", object_type="user",
                     object_id=user["username"], detail=detail)


async def check_password(request: Request, *, engine: Engine, settings: Settings, username: str,
                         password: str, detail: dict | None = None) -> dict:
    """The signed-in user's row, or HTTPException 401 (wrong), 429 (locked out) or 503 (busy).

    A success clears the username's failure count and is audited as ``login`` with ``detail``. Those
    writes (always on the primary) open no read-your-writes window: the pages that follow a sign-in
    may read from a replica.
    """
    nothing_to_read_back(request)
    address = client_address(request, settings.proxies)
    keys = _keys(username, address)
    gate: SignInGate = request.app.state.signin
    async with gate.turn():
        # Inside the turn, so that a burst against one username is checked against the lockout
        # that the burst's first failures set, not all at once before any was counted.
        left, user = await run_in_threadpool(_look_up, engine, username, keys)
        if left:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, LOCKED, headers={"Retry-After": str(left)})
        ok = await gate.verify(password, user["password_hash"] if user else None)
    if ok and user is not None and not user["disabled"]:
        await run_in_threadpool(_succeeded, engine, user, keys, detail)
        return user
    await run_in_threadpool(_failed, engine, settings.signin, username, address, keys)
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG, headers={"WWW-Authenticate": "Bearer"})
