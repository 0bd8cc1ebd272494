"""A careful HTTP client for the bank's tag and lead services.

Each call has a timeout; connection errors, 5xx and 429 answers are retried a
bounded number of times with exponential back-off and jitter; a circuit
breaker per service stops calling a service that keeps failing and tries again
after a cool-down. Nothing here raises when a service is down: calls return an
:class:`Unavailable` saying why, so a route can still answer with everything else.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

# Back-off before retry k (0-based) is uniform in [0.5, 1] x min(MAX_BACKOFF_S, BACKOFF_S * 2**k).
BACKOFF_S = 0.05
MAX_BACKOFF_S = 2.0


@dataclass(frozen=True)
class Unavailable:
    """A figure that could not be had: which service, and why (for the response and the log)."""

    service: str
    reason: str

    def __bool__(self) -> bool:
        return False


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failed calls -> half-open after ``cooldown_s``.

    Half-open lets exactly one trial call through: its success closes the
    breaker, its failure opens it for another cool-down. Thread-safe.
    """

    def __init__(self, *, failures: int = 5, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, failures)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_out = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (an open breaker past its cool-down reads half_open)."""
        with self._lock:
            if self._state == "open" and self._clock() - self._opened_at >= self.cooldown_s:
                return "half_open"
            return self._state

    def allow(self) -> bool:
        """Whether a call may go out now (claims the single trial slot when half-open)."""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open":
                if self._clock() - self._opened_at < self.cooldown_s:
                    return False
                self._state = "half_open"
                self._trial_out = False
            if self._trial_out:
                return False
            self._trial_out = True
            return True

    def success(self) -> None:
        """A call succeeded: close."""
        with self._lock:
            self._state, self._failures, self._trial_out = "closed", 0, False

    def failure(self) -> None:
        """A call failed (after its retries): count it, open at the threshold or after a failed trial."""
        with self._lock:
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.threshold:
                self._state, self._opened_at, self._trial_out = "open", self._clock(), False


class _Failed(Exception):
    """One call failed for good; the message becomes the Unavailable reason."""


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after", "")
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(value)))
    except ValueError:
        return None  # HTTP-date form: fall back to our own back-off


class ServiceClient:
    """GET JSON from one service with timeout, retries and a circuit breaker; never raises for outages."""

    def __init__(self, name: str, base_url: str, *, token: str | None = None, timeout_s: float = 2.0,
                 attempts: int = 3, breaker: CircuitBreaker | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.attempts = max(1, attempts)
        self.breaker = breaker or CircuitBreaker()
        headers = {"Accept": "application/json", "User-Agent": "gridmkt"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s), headers=headers,
                                  limits=httpx.Limits(max_connections=20, max_keepalive_connections=10))
        self.timeout_s = timeout_s

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def get_json(self, path: str, params: Mapping[str, Any]) -> dict | Unavailable:
        """The JSON object at ``base_url + path``, or Unavailable (breaker open, timeout, errors)."""
        if not self.breaker.allow():
            return Unavailable(self.name, f"{self.name} service unavailable (circuit open after repeated failures)")
        try:
            data = self._get(path, params)
        except _Failed as exc:
            self.breaker.failure()
            return Unavailable(self.name, f"{self.name} service unavailable: {exc}")
        except BaseException:
            self.breaker.failure()  # never leave a half-open trial slot claimed
            raise
        self.breaker.success()
        return data

    def _get(self, path: str, params: Mapping[str, Any]) -> dict:
        url = self.base_url + path
        problem = "no attempt made"
        for attempt in range(self.attempts):
            wait = None
            try:
                resp = self._http.get(url, params=dict(params))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                problem = f"cannot connect ({type(exc).__name__})"
            except httpx.TimeoutException:
                # A slow service stays slow: retrying would only multiply the wait.
                raise _Failed(f"no answer within {self.timeout_s:g} s") from None
            except httpx.HTTPError as exc:
                raise _Failed(f"HTTP error ({type(exc).__name__})") from None
            else:
                if resp.status_code == 429 or resp.status_code >= 500:
                    problem = f"status {resp.status_code}"
                    wait = _retry_after(resp) if resp.status_code in (429, 503) else None
                elif resp.status_code >= 400:
                    raise _Failed(f"status {resp.status_code}")
                else:
                    try:
                        data = resp.json()
                    except ValueError:
                        raise _Failed("answer is not JSON") from None
                    if not isinstance(data, dict):
                        raise _Failed("answer is not a JSON object")
                    return data
            if attempt + 1 < self.attempts:
                if wait is None:
                    wait = min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt) * random.uniform(0.5, 1.0)
                time.sleep(wait)
        raise _Failed(f"{problem} after {self.attempts} attempts")
