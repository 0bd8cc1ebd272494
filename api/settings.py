"""Settings, one small class per concern, all read from ``GRIDMKT_*`` environment variables.

Nothing is read at import time: ``Settings.from_env()`` is called by the CLI and
by ``create_app(settings=None)``, and tests build ``Settings`` directly.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _env(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(f"GRIDMKT_{name}")
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class DatabaseSettings:
    """Where the data lives: an external server, or the embedded cluster under ``home``."""

    url: str | None = None
    home: Path = Path(".gridmkt")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseSettings:
        return cls(url=_env(env, "DATABASE_URL"), home=Path(_env(env, "HOME", ".gridmkt")))


@dataclass(frozen=True)
class ReplicaSettings:
    """Hot-standby replicas for reads (docs/replicas.md); none configured: everything on the primary.

    A replica serves a GET only while it is known to hold every commit older than ``max_lag_s``
    (its replay position checked against the primary's every ``check_s`` by each worker). A client
    that has just written reads from the primary for ``read_your_writes_s`` (a signed cookie, so any
    worker process honours it); that window must cover ``max_lag_s``. A replica that refuses a
    connection is skipped until the next check finds it back.
    """

    urls: tuple[str, ...] = ()
    max_lag_s: float = 5.0
    check_s: float = 1.0
    read_your_writes_s: float = 6.0
    connect_timeout_s: int = 2

    def __post_init__(self) -> None:
        if self.read_your_writes_s < self.max_lag_s:
            raise ValueError(f"GRIDMKT_READ_YOUR_WRITES_S ({self.read_your_writes_s}) must be at least"
                             f" GRIDMKT_REPLICA_MAX_LAG_S ({self.max_lag_s}): a client could read a replica"
                             " that does not hold its write yet")
        if not (0 < self.check_s < self.max_lag_s):
            raise ValueError("GRIDMKT_REPLICA_CHECK_S must be positive and below GRIDMKT_REPLICA_MAX_LAG_S")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ReplicaSettings:
        d = cls()
        raw = _env(env, "READ_DATABASE_URLS", "") or ""
        return cls(
            urls=tuple(u.strip() for u in raw.split(",") if u.strip()),
            max_lag_s=float(_env(env, "REPLICA_MAX_LAG_S", str(d.max_lag_s))),
            check_s=float(_env(env, "REPLICA_CHECK_S", str(d.check_s))),
            read_your_writes_s=float(_env(env, "READ_YOUR_WRITES_S", str(d.read_your_writes_s))),
            connect_timeout_s=int(_env(env, "REPLICA_CONNECT_TIMEOUT_S", str(d.connect_timeout_s))),
        )


@dataclass(frozen=True)
class AuthSettings:
    """Token signing; the key is generated once and kept under the home folder when unset."""

    secret_key: str = ""
    token_minutes: int = 480

    @classmethod
    def from_env(cls, env: Mapping[str, str], home: Path) -> AuthSettings:
        key = _env(env, "SECRET_KEY")
        if key is None:
            path = home / "secret_key"
            if path.exists():
                key = path.read_text().strip()
            else:
                home.mkdir(parents=True, exist_ok=True)
                key = secrets.token_urlsafe(32)
                path.write_text(key)
                path.chmod(0o600)
        return cls(secret_key=key, token_minutes=int(_env(env, "TOKEN_MINUTES", "480")))


@dataclass(frozen=True)
class LinkSettings:
    """The bank's customer-tag and lead services: deep-link templates and API base URLs."""

    tag_url: str = "https://tags.example/customers/{customer_id}"
    lead_url: str = "https://leads.example/leads?customer={customer_id}"
    tag_cell_url: str = "https://tags.example/customers?ids={customer_ids}"
    lead_cell_url: str = "https://leads.example/leads?customers={customer_ids}"
    tag_api: str | None = None
    lead_api: str | None = None
    timeout_s: float = 2.0
    # Added later, with defaults, so existing ``LinkSettings(...)`` calls keep working.
    tag_api_token: str | None = field(default=None, repr=False)
    lead_api_token: str | None = field(default=None, repr=False)
    attempts: int = 3
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LinkSettings:
        d = cls()
        return cls(
            tag_url=_env(env, "TAG_URL", d.tag_url),
            lead_url=_env(env, "LEAD_URL", d.lead_url),
            tag_cell_url=_env(env, "TAG_CELL_URL", d.tag_cell_url),
            lead_cell_url=_env(env, "LEAD_CELL_URL", d.lead_cell_url),
            tag_api=_env(env, "TAG_API"),
            lead_api=_env(env, "LEAD_API"),
            timeout_s=float(_env(env, "SERVICE_TIMEOUT_S", "2.0")),
            tag_api_token=_env(env, "TAG_API_TOKEN"),
            lead_api_token=_env(env, "LEAD_API_TOKEN"),
            attempts=int(_env(env, "SERVICE_ATTEMPTS", str(d.attempts))),
            breaker_failures=int(_env(env, "SERVICE_BREAKER_FAILURES", str(d.breaker_failures))),
            breaker_cooldown_s=float(_env(env, "SERVICE_BREAKER_COOLDOWN_S", str(d.breaker_cooldown_s))),
        )


@dataclass(frozen=True)
class MapSettings:
    """Basemap: a tile URL template and the coordinate system of its tiles (wgs84 or gcj02)."""

    tile_url: str | None = None
    tile_crs: str = "wgs84"
    attribution: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MapSettings:
        return cls(
            tile_url=_env(env, "TILE_URL"),
            tile_crs=_env(env, "TILE_CRS", "wgs84").lower(),
            attribution=_env(env, "TILE_ATTRIBUTION", ""),
        )


@dataclass(frozen=True)
class UploadSettings:
    """Uploaded files: where they are spooled, how big they may be, whether they outlive their job.

    Uploads hold personal data as the bank exported it (unmasked): they are private to the
    service's user and deleted when their import job ends unless ``keep`` is set.
    """

    max_bytes: int = 512 * 1024**2
    dir: Path = Path(".gridmkt/uploads")
    keep: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], home: Path) -> UploadSettings:
        return cls(
            max_bytes=int(_env(env, "UPLOAD_MAX_BYTES", str(cls.max_bytes))),
            dir=Path(_env(env, "UPLOAD_DIR", str(home / "uploads"))),
            keep=_env(env, "UPLOAD_KEEP", "false").strip().lower() in ("1", "true", "yes", "on"),
        )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class SignInSettings:
    """Sign-in limits: how many password checks run at once, and when failures lock sign-in out.

    Failures are counted in the database (``login_failure``), per submitted username and per
    client address, so every worker process sees the same counts and lockouts.
    """

    max_failures: int = 5  # per username within window_s, then locked for lockout_s
    max_failures_per_address: int = 50  # per client address (all usernames) within window_s
    window_s: int = 900
    lockout_s: int = 900
    concurrency: int = field(default_factory=_cores)  # password checks at once (argon2 is CPU- and memory-bound)
    wait_s: float = 2.0  # how long a check waits for its turn before the answer is 503

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SignInSettings:
        d = cls()
        return cls(
            max_failures=int(_env(env, "LOGIN_MAX_FAILURES", str(d.max_failures))),
            max_failures_per_address=int(_env(env, "LOGIN_MAX_FAILURES_PER_ADDRESS",
                                              str(d.max_failures_per_address))),
            window_s=int(_env(env, "LOGIN_WINDOW_S", str(d.window_s))),
            lockout_s=int(_env(env, "LOGIN_LOCKOUT_S", str(d.lockout_s))),
            concurrency=max(1, int(_env(env, "LOGIN_CONCURRENCY", str(d.concurrency)))),
            wait_s=float(_env(env, "LOGIN_WAIT_S", str(d.wait_s))),
        )


@dataclass(frozen=True)
class ProxySettings:
    """Reverse proxies (TLS terminators) whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed.

    Empty (the default): the client is the TCP peer and the scheme is the connection's own.
    """

    trusted: tuple[str, ...] = ()  # addresses or CIDR blocks, e.g. ("10.0.0.5", "172.16.0.0/12")

    def __post_init__(self) -> None:
        for net in self.trusted:
            ipaddress.ip_network(net, strict=False)  # a typo must fail at start-up, not trust nothing

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProxySettings:
        raw = _env(env, "TRUSTED_PROXIES", "") or ""
        return cls(trusted=tuple(p.strip() for p in raw.split(",") if p.strip()))


@dataclass(frozen=True)
class VisitSettings:
    """The RM's day (docs/visits.md): check-in flags, how long raw positions are kept, routing, the report.

    ``position_days``: raw check-in positions (and their accuracy) are personal data; they are
    nulled that many days after they were received (distance and flags stay).
    """

    far_m: float = 500.0
    short_min: float = 5.0
    position_days: int = 180
    timezone: str = "Asia/Shanghai"
    day_start: str = "08:30"
    day_end: str = "17:30"
    detour_factor: float = 1.4
    speed_kmh: float = 30.0
    time_limit_s: float = 1.5
    weights_file: Path | None = None  # TOML like grid/visits/visit_weights.toml
    process_weights: str = ""  # name=number pairs, e.g. completion=40,coverage=30,gap_cells=20,clean=10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> VisitSettings:
        d = cls()
        wf = _env(env, "VISIT_WEIGHTS")
        return cls(
            far_m=float(_env(env, "CHECKIN_FAR_M", str(d.far_m))),
            short_min=float(_env(env, "VISIT_SHORT_MIN", str(d.short_min))),
            position_days=int(_env(env, "CHECKIN_POSITION_DAYS", str(d.position_days))),
            timezone=_env(env, "TIMEZONE", d.timezone),
            day_start=_env(env, "WORKDAY_START", d.day_start),
            day_end=_env(env, "WORKDAY_END", d.day_end),
            detour_factor=float(_env(env, "ROUTE_DETOUR_FACTOR", str(d.detour_factor))),
            speed_kmh=float(_env(env, "ROUTE_SPEED_KMH", str(d.speed_kmh))),
            time_limit_s=float(_env(env, "ROUTE_TIME_LIMIT_S", str(d.time_limit_s))),
            weights_file=Path(wf) if wf else None,
            process_weights=_env(env, "PROCESS_WEIGHTS", ""),
        )


@dataclass(frozen=True)
class BatchSettings:
    """The batch mode (docs/batch.md): a Dask scheduler to use (``tcp://host:8786``), else a LocalCluster."""

    scheduler: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchSettings:
        return cls(scheduler=_env(env, "DASK_SCHEDULER") or None)


@dataclass(frozen=True)
class Settings:
    """All settings of one gridmkt process."""

    db: DatabaseSettings = field(default_factory=DatabaseSettings)
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    links: LinkSettings = field(default_factory=LinkSettings)
    maps: MapSettings = field(default_factory=MapSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)
    signin: SignInSettings = field(default_factory=SignInSettings)
    proxies: ProxySettings = field(default_factory=ProxySettings)
    visits: VisitSettings = field(default_factory=VisitSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        db = DatabaseSettings.from_env(env)
        return cls(
            db=db,
            replicas=ReplicaSettings.from_env(env),
            auth=AuthSettings.from_env(env, db.home),
            links=LinkSettings.from_env(env),
            maps=MapSettings.from_env(env),
            uploads=UploadSettings.from_env(env, db.home),
            signin=SignInSettings.from_env(env),
            proxies=ProxySettings.from_env(env),
            visits=VisitSettings.from_env(env),
            batch=BatchSettings.from_env(env),
        )
