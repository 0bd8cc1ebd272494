"""Reads on hot-standby replicas: which engine a request reads from, and whether each replica may serve.

A GET or HEAD reads from a replica when one is usable and the client has not written within the
read-your-writes window; everything else (writes, jobs, sign-in, audit rows) uses the primary. Each
worker process checks every replica every ``check_s`` in a background thread: a replica is usable
while it is known to hold every commit older than ``max_lag_s`` (its replay position has reached a
primary position read at most that long ago). A replica that refuses a connection during a request
is marked down at once (that request falls back to the primary) until a check finds it back, so no
later request waits for it. See docs/replicas.md.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from api.settings import ReplicaSettings
from geodata import replication

log = logging.getLogger("gridmkt.replicas")
READ_METHODS = frozenset({"GET", "HEAD"})
FRESH_COOKIE = "gridmkt_wrote"  # until when this client reads from the primary (signed, see fresh_cookie)
APPLICATION_NAME = "gridmkt-read"  # replica sessions, as pg_stat_activity shows them


def _label(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


@dataclass
class Replica:
    """One replica and what this process last learned about it."""

    name: str  # host:port/database (never the password)
    engine: Engine
    state: str = "unknown"  # up | lagging | down | unknown (not checked yet)
    error: str | None = None
    fresh_at: float = 0.0  # wall-clock time as of which every primary commit is on this replica
    checked_at: float = 0.0
    reads: int = 0  # requests this process served from it

    def lag_s(self, now: float) -> float | None:
        """Upper bound of how stale this replica may be now (None before its first good check)."""
        return None if self.fresh_at == 0.0 else max(0.0, now - self.fresh_at)


@dataclass
class ReadRouter:
    """The replicas of one process: picks the engine for each read and checks them in the background."""

    primary: Engine
    settings: ReplicaSettings
    replicas: list[Replica] = field(default_factory=list)
    fallback_reads: int = 0  # reads meant for a replica that the primary served (none usable)
    _marks: deque = field(default_factory=lambda: deque(maxlen=64))  # (time, primary position) per check
    _turn: itertools.count = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def open(cls, primary: Engine, settings: ReplicaSettings) -> ReadRouter:
        """Engines on every configured replica (connections are opened lazily)."""
        router = cls(primary, settings)
        for raw in settings.urls:
            url = make_url(raw)
            eng = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                                connect_args={"connect_timeout": settings.connect_timeout_s,
                                              "application_name": APPLICATION_NAME})
            router.replicas.append(Replica(_label(url), eng))
        return router

    # --- serving ---------------------------------------------------------------------------------

    def usable(self, replica: Replica, now: float) -> bool:
        lag = replica.lag_s(now)
        return replica.state == "up" and lag is not None and lag <= self.settings.max_lag_s

    def connect(self, *, on_replica: bool) -> Connection:
        """A connection for one request: a usable replica's (round robin) when ``on_replica``, else the
        primary's; a replica that fails to connect is marked down and the primary is used instead."""
        if on_replica and self.replicas:
            now = time.time()
            start = next(self._turn)
            for i in range(len(self.replicas)):
                replica = self.replicas[(start + i) % len(self.replicas)]
                if not self.usable(replica, now):
                    continue
                try:
                    conn = replica.engine.connect()
                except DBAPIError as exc:
                    self._mark_down(replica, exc)
                    continue
                replica.reads += 1
                return conn
        self.fallback_reads += on_replica and bool(self.replicas)
        return self.primary.connect()

    def _mark_down(self, replica: Replica, exc: Exception) -> None:
        if replica.state != "down":
            log.warning("read replica %s down, reads go to the primary: %s", replica.name, exc)
        replica.state, replica.error = "down", _first_line(exc)

    # --- checking --------------------------------------------------------------------------------

    def check(self) -> None:
        """Read the primary's position, then each replica's, and update every replica's state."""
        with self._lock:
            now = time.time()
            try:
                with self.primary.connect() as conn:
                    self._marks.append((now, replication.primary_position(conn)))
            except DBAPIError as exc:
                log.warning("primary position unreadable: %s", exc)
            for replica in self.replicas:
                self._check_one(replica)

    def _check_one(self, replica: Replica) -> None:
        replica.checked_at = time.time()
        try:
            with replica.engine.connect() as conn:
                pos = replication.standby_position(conn)
        except DBAPIError as exc:
            self._mark_down(replica, exc)
            return
        if not pos.in_recovery:
            replica.state, replica.error = "down", "not a standby (promoted, or the primary itself)"
            return
        # The newest primary mark the replica has replayed past: it holds every commit made before then.
        fresh = [t for t, lsn in self._marks if pos.replay is not None and lsn <= pos.replay]
        if fresh:
            replica.fresh_at = max(replica.fresh_at, max(fresh))
        if replica.state == "down":
            log.warning("read replica %s back", replica.name)
        lag = replica.lag_s(time.time())
        replica.error = None
        replica.state = "up" if lag is not None and lag <= self.settings.max_lag_s else "lagging"

    def start(self) -> None:
        """Check now, then every ``check_s`` in a daemon thread until :meth:`close` (nothing without replicas)."""
        if self.replicas:
            self.check()
            self._thread = threading.Thread(target=self._run, name="gridmkt-replica-check", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.check_s):
            try:
                self.check()
            except Exception:  # the checker must outlive any one failure
                log.exception("replica check failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for replica in self.replicas:
            replica.engine.dispose()

    def report(self) -> list[dict]:
        """Each replica's state for /ready (a usable replica whose lag grew past the bound is lagging)."""
        now = time.time()
        out = []
        for r in self.replicas:
            state = "lagging" if r.state == "up" and not self.usable(r, now) else r.state
            lag = r.lag_s(now)
            out.append({"name": r.name, "state": state, "lag_s": None if lag is None else round(lag, 3),
                        "error": r.error, "reads": r.reads})
        return out


def _first_line(exc: Exception) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["error"])[0][:300]


# --- read your writes ------------------------------------------------------------------------------

def _sign(key: str, until: int) -> str:
    return hmac.new(key.encode(), f"wrote:{until}".encode(), hashlib.sha256).hexdigest()[:32]


def fresh_cookie(key: str, window_s: float, now: float | None = None) -> str:
    """The cookie value a write response carries: until when (epoch seconds) its client reads the primary."""
    until = int((time.time() if now is None else now) + window_s) + 1
    return f"{until}.{_sign(key, until)}"


def wrote_recently(key: str, value: str | None, window_s: float, now: float | None = None) -> bool:
    """Whether ``value`` is a cookie of ours whose window is still open (capped at ``window_s``)."""
    if not value:
        return False
    until_s, _, sig = value.partition(".")
    if not until_s.isdigit() or not hmac.compare_digest(sig, _sign(key, int(until_s))):
        return False
    now = time.time() if now is None else now
    return now < int(until_s) <= now + window_s + 2


_NOTHING_TO_READ = "gridmkt_nothing_to_read_back"


def nothing_to_read_back(request) -> None:
    """Mark a write whose client reads nothing of it back (sign-in: a login audit row, a counter reset),
    so its response opens no read-your-writes window and the pages that follow stay on the replicas."""
    setattr(request.state, _NOTHING_TO_READ, True)


class ReadYourWrites:
    """ASGI middleware: the response to a successful write (not GET/HEAD) sets :data:`FRESH_COOKIE`, so
    that client's reads go to the primary, in whichever worker process, for ``window_s``."""

    def __init__(self, app, *, key: str, window_s: float) -> None:
        self.app, self.key, self.window_s = app, key, window_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_marked(message) -> None:
            if (message["type"] == "http.response.start" and message["status"] < 400
                    and not state.get(_NOTHING_TO_READ)):
                cookie = (f"{FRESH_COOKIE}={fresh_cookie(self.key, self.window_s)}; Max-Age="
                          f"{int(self.window_s) + 1}; Path=/; HttpOnly; SameSite=Lax")
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_marked)
