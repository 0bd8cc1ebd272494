"""Embedded local PostGIS cluster built from the machine's PostgreSQL + PostGIS binaries.

Used when no database URL is configured (``gridmkt db up``) and by the test
suite for its throwaway server. The cluster listens on 127.0.0.1 only, uses
password (SCRAM) authentication and records how to reach it in
``<home>/cluster.json``. PostgreSQL refuses to run as root, so when we are
root every server command runs as the unprivileged ``postgres`` system user.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from geodata.errors import DatabaseUnavailable

RUN_AS_USER = "postgres"
DEBIAN_PACKAGE = "postgresql-15-postgis-3"

# Settings for a local single-user cluster that bulk-loads millions of rows.
_BASE_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 60
shared_buffers = 512MB
work_mem = 64MB
maintenance_work_mem = 512MB
wal_level = minimal
max_wal_senders = 0
max_wal_size = 4GB
synchronous_commit = off
checkpoint_timeout = 15min
jit = off
log_min_messages = warning
"""
# A throwaway cluster (tests, benchmarks) may lose everything on a crash.
_THROWAWAY_CONF = "fsync = off\nfull_page_writes = off\n"


@dataclass
class ClusterInfo:
    """How to reach an embedded cluster."""

    home: str
    datadir: str
    port: int
    user: str
    password: str
    dbname: str

    def url(self, dbname: str | None = None) -> str:
        """SQLAlchemy URL (psycopg2 driver)."""
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/"
            f"{dbname or self.dbname}"
        )

    def dsn(self, dbname: str | None = None) -> str:
        """libpq connection string."""
        return (
            f"host=127.0.0.1 port={self.port} user={self.user} password={self.password} "
            f"dbname={dbname or self.dbname}"
        )


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def pg_bindir() -> Path:
    """Directory with initdb/pg_ctl/postgres, newest PostgreSQL first."""
    found = shutil.which("pg_config")
    candidates: list[Path] = []
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: -int(p.name))
        candidates.extend(v / "bin" for v in versions)
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists():
            return c
    raise DatabaseUnavailable(
        "PostgreSQL server binaries not found (no initdb/pg_ctl). Install them with: "
        f"apt-get install -y {DEBIAN_PACKAGE}"
    )


def postgis_available(bindir: Path | None = None) -> bool:
    """True if the PostGIS extension is installed for this PostgreSQL."""
    bindir = bindir or pg_bindir()
    version = bindir.parent.name
    return Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists()


def require_postgis() -> Path:
    """Return the bindir, or raise with the exact package to install."""
    bindir = pg_bindir()
    if not postgis_available(bindir):
        raise DatabaseUnavailable(
            f"PostGIS is not installed for PostgreSQL {bindir.parent.name}. Install it with: "
            f"apt-get install -y postgresql-{bindir.parent.name}-postgis-3"
        )
    return bindir


def _run(cmd: list[str], *, check: bool = True, cwd: str | None = None) -> subprocess.CompletedProcess:
    if _is_root():
        cmd = ["runuser", "-u", RUN_AS_USER, "--", *cmd]
    # cwd must be readable by the server user, or initdb/pg_ctl complain.
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd or "/")
    if check and res.returncode != 0:
        raise DatabaseUnavailable(f"{' '.join(cmd)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return res


def _server_user_can_reach(path: Path) -> bool:
    if not _is_root():
        return True
    res = subprocess.run(["runuser", "-u", RUN_AS_USER, "--", "test", "-x", str(path)], capture_output=True)
    return res.returncode == 0


def _datadir_for(home: Path) -> Path:
    """Data directory inside home, or a private one the server user can reach."""
    home.mkdir(parents=True, exist_ok=True)
    if _server_user_can_reach(home):
        return home / "pgdata"
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    return Path("/var/lib/gridmkt") / digest / "pgdata"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Whether the server could listen on ``port``: bound as PostgreSQL binds, with SO_REUSEADDR.

    Without it, connections of the server's last run still in TIME_WAIT made the port look taken
    after every ``db down``, and ``db up`` moved the cluster to a new port.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One process at a time creates, starts or stops the cluster of ``home``.

    Two commands started together on a fresh home both ran initdb in one
    directory (or both started the server, one of them on a port it then lost).
    """
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".cluster.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def info_path(home: Path) -> Path:
    return Path(home) / "cluster.json"


def load_info(home: str | Path) -> ClusterInfo | None:
    """The recorded cluster of ``home``, or None when there is none."""
    p = info_path(Path(home))
    if not p.exists():
        return None
    return ClusterInfo(**json.loads(p.read_text()))


def _save_info(info: ClusterInfo) -> None:
    p = info_path(Path(info.home))
    p.write_text(json.dumps(asdict(info), indent=2))
    p.chmod(0o600)


def init_cluster(home: str | Path, *, throwaway: bool = False, dbname: str = "gridmkt") -> ClusterInfo:
    """Create (but do not start) a cluster under ``home``."""
    home = Path(home).resolve()
    bindir = require_postgis()
    datadir = _datadir_for(home)
    datadir.parent.mkdir(parents=True, exist_ok=True)
    if (datadir / "PG_VERSION").exists():
        # A whole cluster whose record (port, password) is gone: never delete someone's data to make a new one.
        raise DatabaseUnavailable(
            f"{datadir} holds a PostgreSQL cluster, but {info_path(home)} (how to reach it) is missing;"
            f" move that directory away (or delete it to start afresh) and run gridmkt db up again"
        )
    if datadir.exists():  # what a failed initdb left behind
        shutil.rmtree(datadir)
    datadir.mkdir(mode=0o700)
    password = secrets.token_urlsafe(18)
    pwfile = datadir.parent / f".pw-{secrets.token_hex(4)}"
    pwfile.write_text(password + "\n")
    if _is_root():
        shutil.chown(datadir, RUN_AS_USER, RUN_AS_USER)
        shutil.chown(pwfile, RUN_AS_USER, RUN_AS_USER)
        if datadir.parent != home:
            shutil.chown(datadir.parent, RUN_AS_USER, RUN_AS_USER)
    pwfile.chmod(0o600)
    try:
        _run([
            str(bindir / "initdb"), "-D", str(datadir), "--username=gridmkt", f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--encoding=UTF8",
            # byte-order collation: codes and ids index and compare several times faster than
            # under a libc locale; nothing here sorts names for display
            "--locale=C", "--no-sync",
        ])
    finally:
        pwfile.unlink(missing_ok=True)
    conf = _BASE_CONF + (_THROWAWAY_CONF if throwaway else "")
    # Append as the server user: the file belongs to it.
    with open(datadir / "postgresql.conf", "a") as f:
        f.write("\n# gridmkt embedded cluster\n" + conf)
    info = ClusterInfo(str(home), str(datadir), free_port(), "gridmkt", password, dbname)
    _save_info(info)
    return info


def _pid_file_is_stale(info: ClusterInfo) -> bool:
    """postmaster.pid names a process that is not this cluster's server.

    A server killed outright leaves a zombie when nothing reaps it (a container
    whose first process is not an init), and after a crash and a restart its
    PID may belong to another program; pg_ctl takes either for a running server.
    """
    try:
        pid = int(Path(info.datadir, "postmaster.pid").read_text().split("\n", 1)[0])
        proc = Path(f"/proc/{pid}")
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return False  # no pid file, no such process, or no /proc: pg_ctl and the server judge
    return state == "Z" or os.fsencode(info.datadir) not in argv


def is_running(info: ClusterInfo) -> bool:
    if _pid_file_is_stale(info):
        return False
    res = _run([str(pg_bindir() / "pg_ctl"), "status", "-D", info.datadir], check=False)
    return res.returncode == 0


def start(info: ClusterInfo, *, timeout: float = 60.0) -> ClusterInfo:
    """Start the cluster on its recorded port (a new one, recorded, only if that port is taken)."""
    if is_running(info):
        return info
    if _pid_file_is_stale(info):
        # the server would refuse to start while the PID it names is alive
        Path(info.datadir, "postmaster.pid").unlink(missing_ok=True)
    if not _port_free(info.port):
        info.port = free_port()
        _save_info(info)
    log = Path(info.datadir) / "server.log"
    _run([
        str(pg_bindir() / "pg_ctl"), "start", "-D", info.datadir, "-l", str(log), "-w",
        "-t", str(int(timeout)), "-o", f"-p {info.port}",
    ])
    _wait_ready(info, timeout)
    return info


def _wait_ready(info: ClusterInfo, timeout: float) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(info.dsn("postgres"), connect_timeout=3).close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(f"embedded PostgreSQL did not accept connections: {exc}") from exc
            time.sleep(0.2)


def stop(info: ClusterInfo) -> bool:
    """Stop the cluster; False if it was not running."""
    with _locked(Path(info.home)):
        if not is_running(info):
            return False
        _run([str(pg_bindir() / "pg_ctl"), "stop", "-D", info.datadir, "-m", "fast", "-w"])
        return True


def create_database(info: ClusterInfo, dbname: str, *, template: str | None = None) -> None:
    """Create a database with PostGIS (or copy ``template``) unless it exists."""
    import psycopg2

    conn = psycopg2.connect(info.dsn("postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone():
                return
            tmpl = f' TEMPLATE "{template}"' if template else ""
            cur.execute(f'CREATE DATABASE "{dbname}"{tmpl}')
    finally:
        conn.close()
    if template is None:
        conn = psycopg2.connect(info.dsn(dbname))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        finally:
            conn.close()


def drop_database(info: ClusterInfo, dbname: str) -> None:
    import psycopg2

    conn = psycopg2.connect(info.dsn("postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    finally:
        conn.close()


def ensure(home: str | Path, *, throwaway: bool = False) -> ClusterInfo:
    """Create the cluster if missing, start it if down, make sure its database exists."""
    with _locked(Path(home)):
        info = load_info(home)
        if info is None or not Path(info.datadir, "PG_VERSION").exists():
            info = init_cluster(home, throwaway=throwaway)
        start(info)
        create_database(info, info.dbname)
        return info


def destroy(home: str | Path) -> None:
    """Stop the cluster and delete its data (tests' throwaway clusters)."""
    info = load_info(home)
    if info is None:
        return
    try:
        stop(info)
    finally:
        shutil.rmtree(info.datadir, ignore_errors=True)
        info_path(Path(home)).unlink(missing_ok=True)
