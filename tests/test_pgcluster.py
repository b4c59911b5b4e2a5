"""The throwaway PostgreSQL cluster the storage tests run on (tests/pgcluster.py)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest
from pgcluster import Cluster, ClusterError


def test_the_cluster_listens_on_loopback_only_and_each_test_gets_a_fresh_database(pg_cluster, pg_url) -> None:
    assert pg_url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{pg_cluster.port}/")
    dbname = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_cluster.conninfo(dbname)) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()
    assert listen == ("127.0.0.1",)
    assert fsync == ("off",)
    assert tables == (0,)
    assert socket_dir is not None and socket_dir[0] == str(pg_cluster.socket_dir)


def test_a_cluster_that_cannot_start_says_what_failed_with_the_log() -> None:
    # A PostgreSQL installation whose initdb fails: the error carries its words. (Outside
    # pytest's private tmp_path: as root the commands run as the unprivileged user.)
    bindir = Path(tempfile.mkdtemp(prefix="aggregator-fake-pg-", dir="/tmp"))
    bindir.chmod(0o755)
    for name in ("initdb", "pg_ctl"):
        (bindir / name).write_text("#!/bin/sh\necho 'initdb: error: the disk is on fire' >&2\nexit 1\n")
        (bindir / name).chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    cluster = Cluster(bindir=bindir)
    try:
        with pytest.raises(ClusterError, match=r"initdb failed \(exit 1\)[\s\S]*the disk is on fire"):
            cluster.start()
    finally:
        shutil.rmtree(bindir)
    assert cluster.root is None  # the temporary directory is gone


def test_stop_removes_the_cluster_and_its_directory() -> None:
    cluster = Cluster().start()
    root = cluster.root
    assert root is not None and (root / "data" / "postmaster.pid").exists()
    cluster.stop()
    assert not os.path.exists(root)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.conninfo(), connect_timeout=2)
