"""Shared fixtures. Paths to the shared data sets live here so tests name them once."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AGGREGATOR_SHARED", ROOT.parent / "shared"))
DEV = SHARED / "matchbench" / "dev"
DEV2 = SHARED / "matchbench" / "dev2"
REAL_FEEDS = SHARED / "fixtures" / "real-feeds"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if not DEV.is_dir():
        raise pytest.UsageError(f"the shared data sets are missing: {DEV} (set AGGREGATOR_SHARED)")
    # The parsed configs the tests read are kept (aggregator.configcache) in a folder of the
    # run's own, not in the user's ~/.cache; the CLI's subprocesses inherit it.
    cache = tempfile.mkdtemp(prefix="aggregator-test-cache-")
    os.environ["XDG_CACHE_HOME"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


@pytest.fixture(scope="session")
def dev_gold() -> list[dict]:
    return [json.loads(l) for l in (DEV / "gold.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]


def aggregator_cmd(*args: str) -> list[str]:
    """The real CLI, as a user runs it."""
    return [sys.executable, "-m", "aggregator", *args]


# -- PostgreSQL: one throwaway cluster per test process (tests/pgcluster.py) ----------------
# Each pytest-xdist worker starts its own (initdb + start take about 1 s here): no
# coordination between workers, and a crashed worker takes only its own cluster with it.
# Every test gets a fresh database. A cluster that cannot start FAILS the tests that need
# it, with initdb's/pg_ctl's own words: they never skip.
_pg: dict[str, object] = {}


@pytest.fixture(scope="session")
def pg_cluster():
    from pgcluster import Cluster, ClusterError, stop_on_signals

    if "error" in _pg:
        pytest.fail(str(_pg["error"]), pytrace=False)
    cluster = Cluster()
    try:
        cluster.start()
    except ClusterError as e:
        _pg["error"] = e
        pytest.fail(f"the PostgreSQL tests need a throwaway cluster and it did not start: {e}", pytrace=False)
    stop_on_signals(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster, request) -> str:
    """A fresh, empty PostgreSQL database for this test; its SQLAlchemy URL."""
    n = _pg["n"] = int(_pg.get("n", 0)) + 1  # type: ignore[call-overload]
    name = f"t{os.getpid()}_{n}"
    url = pg_cluster.create_database(name)
    yield url
    from aggregator.store.backend import dispose_engines

    dispose_engines()  # this process's pooled connections to it go first
    try:
        pg_cluster.drop_database(name)
    except Exception:
        pass  # the cluster goes at the end of the session anyway


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """Where a storage test's store lives: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("pg_url")
