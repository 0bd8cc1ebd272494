"""The embedded cluster after a crash, with a stale postmaster.pid, and started by two processes at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from geodata import cluster


def _home(tag: str) -> Path:
    # not under pytest's tmp_path: that is private to us, and the server user must reach it
    home = Path(tempfile.mkdtemp(prefix=f"rv-db-{tag}-"))
    os.chmod(home, 0o755)
    return home


@pytest.fixture(scope="module")
def home():
    h = _home("crash")
    cluster.ensure(h, throwaway=True)
    yield h
    cluster.destroy(h)
    shutil.rmtree(h, ignore_errors=True)


def _answers(info: cluster.ClusterInfo) -> int:
    conn = psycopg2.connect(info.dsn(), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone()[0]
    finally:
        conn.close()


def _postmaster_pid(info: cluster.ClusterInfo) -> int:
    return int(Path(info.datadir, "postmaster.pid").read_text().split("\n", 1)[0])


def _wait_dead(pid: int) -> None:
    for _ in range(500):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


def test_ensure_after_the_postmaster_was_killed(home):
    info = cluster.load_info(home)
    pid = _postmaster_pid(info)
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)  # a zombie until something reaps it, maybe for good in a container
    info = cluster.ensure(home)
    assert cluster.is_running(info)
    assert _answers(info) == 1


def test_stale_pid_file_naming_another_live_process_of_the_server_user(home):
    """After a crash and a restart of the machine, postmaster.pid may name a PID now used by another program."""
    info = cluster.load_info(home)
    cluster.stop(info)
    prefix = ["runuser", "-u", cluster.RUN_AS_USER, "--"] if cluster._is_root() else []
    sleeper = subprocess.Popen([*prefix, "sh", "-c", "echo $$; exec sleep 60"], stdout=subprocess.PIPE, text=True)
    try:
        other = int(sleeper.stdout.readline())
        pidfile = Path(info.datadir, "postmaster.pid")
        pidfile.write_text(f"{other}\n{info.datadir}\n1733443000\n{info.port}\n\n127.0.0.1\n  1234567  98304\nready   \n")
        assert not cluster.is_running(info)
        assert cluster.stop(info) is False  # and no signal sent to the other program
        info = cluster.ensure(home)
        assert _answers(info) == 1
        assert _postmaster_pid(info) != other
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_two_processes_creating_the_same_cluster_at_once():
    h = _home("race")
    results: list = [None, None]
    barrier = threading.Barrier(2)

    def up(i: int) -> None:
        barrier.wait()
        try:
            results[i] = cluster.ensure(h, throwaway=True)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            results[i] = exc

    threads = [threading.Thread(target=up, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        recorded = cluster.load_info(h)
        assert all(isinstance(r, cluster.ClusterInfo) for r in results), results
        assert [(r.port, r.password) for r in results] == [(recorded.port, recorded.password)] * 2
        assert _answers(recorded) == 1
    finally:
        cluster.destroy(h)
        shutil.rmtree(h, ignore_errors=True)


def test_compose_healthcheck_over_tcp_and_no_shared_secret_key():
    """The db is healthy only once it listens on TCP; the API never signs tokens with a key from the file."""
    import re

    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    check = " ".join(compose["services"]["db"]["healthcheck"]["test"])
    assert re.search(r"pg_isready .*(-h|--host)[ =](127\.0\.0\.1|localhost)", check), check
    key = compose["services"]["api"]["environment"].get("GRIDMKT_SECRET_KEY", "")
    # ${VAR:-default}: with the variable unset, compose uses the default
    default = re.fullmatch(r"\$\{GRIDMKT_SECRET_KEY:-(.*)\}", key)
    assert key == "" or (default and default.group(1) == ""), key


def test_a_cluster_whose_record_was_deleted_is_not_wiped():
    """cluster.json gone, the data still there: db up refuses, naming the directory, and deletes nothing."""
    h = _home("record")
    try:
        info = cluster.ensure(h, throwaway=True)
        cluster.stop(info)
        cluster.info_path(h).unlink()
        marker = Path(info.datadir, "PG_VERSION").read_text()
        with pytest.raises(cluster.DatabaseUnavailable, match="holds a PostgreSQL cluster"):
            cluster.ensure(h, throwaway=True)
        assert Path(info.datadir, "PG_VERSION").read_text() == marker
    finally:
        shutil.rmtree(h, ignore_errors=True)  # the data directory is under it (a home the server user can reach)


def test_db_down_and_up_keeps_the_port_and_a_running_engine_reconnects(home):
    """After gridmkt db down / db up the cluster came back on a new port (the old one still had connections
    in TIME_WAIT, which a plain bind refuses and PostgreSQL's own SO_REUSEADDR bind does not), so a running
    server answered 503 until restarted. Now the port stays, and an engine opened before reconnects; if the
    port really is taken meanwhile, the engine follows the new one from cluster.json."""
    import socket

    from sqlalchemy import text

    from api.db import open_engine
    from api.settings import DatabaseSettings

    info = cluster.ensure(home)
    engine = open_engine(DatabaseSettings(home=home), upgrade=False)
    try:
        with engine.connect() as conn:  # a pooled connection, open while the server stops
            assert conn.execute(text("SELECT 1")).scalar() == 1
        port = info.port
        for _ in range(2):
            assert cluster.stop(cluster.load_info(home))
            again = cluster.ensure(home)
            assert again.port == port
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
        # Someone else takes the port while the cluster is down: a new port, and the engine follows it.
        assert cluster.stop(cluster.load_info(home))
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            moved = cluster.ensure(home)
            assert moved.port != port
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
