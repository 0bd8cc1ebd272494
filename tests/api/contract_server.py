"""A real HTTP server implementing docs/services-openapi.yaml, for tests of the service client.

``ContractServer`` runs a small FastAPI app with uvicorn in a thread on
127.0.0.1 and a free port. ``mode`` switches its behaviour at run time:

- ``normal``: answers by the contract;
- ``slow``: sleeps ``slow_s`` before answering (longer than the client's timeout);
- ``failing``: always 500;
- ``flaky``: the next ``flaky_failures`` requests get 500, then normal answers;
- ``ratelimited``: the next request gets 429 with ``Retry-After: 0``, then normal.

``hits`` counts every request that reached the server, ``ids_seen`` every
customer id asked about. ``closed_port_url()`` gives the URL of a port where nothing listens (the service is down).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

MAX_IDS = 500


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    """Base URL of a loopback port with nothing listening (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


class ContractServer:
    """Tag and lead services in one process, with switchable failure modes."""

    def __init__(self, *, leads: list[dict] | None = None, tags: dict[str, list[str]] | None = None,
                 token: str | None = None, page_size: int | None = None, slow_s: float = 1.5) -> None:
        self.leads = leads or []
        self.tags = tags or {}
        self.token = token
        self.page_size = page_size
        self.slow_s = slow_s
        self.mode = "normal"
        self.flaky_failures = 2
        self.hits = 0
        self.paths: list[str] = []
        self.max_ids_seen = 0
        self.ids_seen: set[str] = set()
        self._lock = threading.Lock()
        self._pending_failures = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = self._build()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def set_mode(self, mode: str) -> None:
        """Switch behaviour (see the module docstring); resets the flaky/rate-limit countdown."""
        assert mode in ("normal", "slow", "failing", "flaky", "ratelimited"), mode
        with self._lock:
            self.mode = mode
            self._pending_failures = self.flaky_failures if mode == "flaky" else 1 if mode == "ratelimited" else 0

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def modes(request: Request, call_next):
            with self._lock:
                self.hits += 1
                self.paths.append(request.url.path)
                mode = self.mode
                fail_now = self._pending_failures > 0
                if fail_now:
                    self._pending_failures -= 1
            if mode == "failing" or (mode == "flaky" and fail_now):
                return JSONResponse({"error": "boom"}, status_code=500)
            if mode == "ratelimited" and fail_now:
                return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "0"})
            if mode == "slow":
                await asyncio.sleep(self.slow_s)
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            return await call_next(request)

        def split(ids: str) -> list[str] | JSONResponse:
            got = [i for i in ids.split(",") if i]
            if not 1 <= len(got) <= MAX_IDS:
                return JSONResponse({"error": "bad request", "detail": "1 to 500 ids"}, status_code=400)
            with self._lock:
                self.max_ids_seen = max(self.max_ids_seen, len(got))
                self.ids_seen.update(got)
            return got

        @app.get("/customers/tags")
        def customer_tags(ids: str = Query(...), tag: str | None = None):
            got = split(ids)
            if isinstance(got, JSONResponse):
                return got
            if tag is None:
                return {"customers": [{"customer_id": c, "tags": self.tags[c]} for c in got if self.tags.get(c)]}
            hit = [c for c in got if tag in self.tags.get(c, ())]
            return {"tag": tag, "count": len(hit), "customers": [{"customer_id": c, "tags": [tag]} for c in hit]}

        @app.get("/leads")
        def leads(customer_ids: str = Query(...), status: str = "open", cursor: str | None = None):
            got = split(customer_ids)
            if isinstance(got, JSONResponse):
                return got
            wanted = set(got)
            rows = [lead for lead in self.leads if lead["customer_id"] in wanted and lead["status"] == status]
            if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
                return JSONResponse({"error": "bad request", "detail": "unknown cursor"}, status_code=400)
            start = int(cursor or 0)
            if self.page_size is None:
                return {"leads": rows, "next_cursor": None}
            end = start + self.page_size
            return {"leads": rows[start:end], "next_cursor": str(end) if end < len(rows) else None}

        return app

    def start(self) -> ContractServer:
        """Start serving in a background thread; returns once the port accepts connections."""
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("contract server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def reset(self) -> None:
        """Normal mode, zero hits."""
        self.set_mode("normal")
        with self._lock:
            self.hits = 0
            self.paths.clear()
            self.max_ids_seen = 0
            self.ids_seen.clear()

    def __enter__(self) -> ContractServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
