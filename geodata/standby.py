"""A primary that streams its WAL and a hot standby cloned from it with ``pg_basebackup -R``, on this machine.

For tests and benchmarks of read replicas (docs/replicas.md shows the same steps on real servers). The
embedded cluster (``geodata.cluster``) writes minimal WAL and has no WAL senders; a primary made here
writes ``wal_level = replica`` and accepts replication connections of its own user from 127.0.0.1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from geodata import cluster
from geodata.cluster import RUN_AS_USER, ClusterInfo

# Later lines of postgresql.conf win over the embedded cluster's wal_level = minimal / max_wal_senders = 0.
PRIMARY_CONF = """
# gridmkt: primary of streaming standbys
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
"""


def init_primary(home: str | Path, *, throwaway: bool = True) -> ClusterInfo:
    """Create and start a cluster under ``home`` that streams to standbys, with its database."""
    home = Path(home).resolve()
    info = cluster.init_cluster(home, throwaway=throwaway)
    data = Path(info.datadir)
    with open(data / "postgresql.conf", "a") as f:
        f.write(PRIMARY_CONF)
    with open(data / "pg_hba.conf", "a") as f:
        f.write(f"\nhost replication {info.user} 127.0.0.1/32 scram-sha-256\n")
    cluster.start(info)
    cluster.create_database(info, info.dbname)
    return info


def clone_standby(primary: ClusterInfo, home: str | Path) -> ClusterInfo:
    """Copy ``primary`` into a new data directory under ``home`` with ``pg_basebackup -R`` (which writes
    ``standby.signal`` and ``primary_conninfo``) and start it as a hot standby on a port of its own."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    datadir = home / "pgdata"
    if datadir.exists():
        shutil.rmtree(datadir)
    datadir.mkdir(mode=0o700)
    if cluster._is_root():
        shutil.chown(datadir, RUN_AS_USER, RUN_AS_USER)
    source = (f"host=127.0.0.1 port={primary.port} user={primary.user} password={primary.password}"
              " application_name=gridmkt-standby")
    cluster._run([str(cluster.pg_bindir() / "pg_basebackup"), "-D", str(datadir), "-d", source, "-R",
                  "-X", "stream", "--checkpoint=fast", "--no-sync"])
    info = ClusterInfo(str(home), str(datadir), cluster.free_port(), primary.user, primary.password,
                       primary.dbname)
    cluster._save_info(info)
    cluster.start(info)
    return info
