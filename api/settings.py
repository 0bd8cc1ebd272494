"""Settings, one small class per concern, all read from ``GRIDMKT_*`` environment variables.

Nothing is read at import time: ``Settings.from_env()`` is called by the CLI and
by ``create_app(settings=None)``, and tests build ``Settings`` directly.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Settings:
    """All settings of one gridmkt process."""

    db: DatabaseSettings = field(default_factory=DatabaseSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    links: LinkSettings = field(default_factory=LinkSettings)
    maps: MapSettings = field(default_factory=MapSettings)
    uploads: UploadSettings = field(default_factory=UploadSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        db = DatabaseSettings.from_env(env)
        return cls(
            db=db,
            auth=AuthSettings.from_env(env, db.home),
            links=LinkSettings.from_env(env),
            maps=MapSettings.from_env(env),
            uploads=UploadSettings.from_env(env, db.home),
        )
