"""A throwaway PostgreSQL cluster for the tests and benchmarks: real PostgreSQL, nothing shared.

``Cluster().start()`` runs ``initdb`` into a fresh temporary directory and starts the
server listening only on 127.0.0.1 on a free port, its unix socket in that directory,
trust authentication, ``fsync=off`` (a throwaway cluster need not survive a power cut).
PostgreSQL refuses to run as root: when we are root (CI) the directory is handed to the
``postgres`` user that Debian's package creates and every server command runs as that user
through ``runuser``. ``stop()`` (also called at exit, on SIGTERM and after a failed start)
stops the server and removes the directory.

A failure to start raises :class:`ClusterError` carrying what failed and the tail of the
initdb/pg_ctl/server log: tests that need PostgreSQL fail with it, they never skip.

    with Cluster() as pg:
        url = pg.create_database("t1")        # postgresql+psycopg://postgres@127.0.0.1:PORT/t1

From a shell (benchmarks, trying the CLI by hand): ``python tests/pgcluster.py`` prints a
URL and keeps the cluster running until Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType

BINDIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
UNPRIVILEGED = "postgres"  # the user Debian's postgresql package creates
SUPERUSER = "postgres"     # the cluster's own superuser role (initdb -U)


class ClusterError(RuntimeError):
    """The throwaway cluster could not be started (the message says why, with the log's tail)."""


def find_bindir() -> Path:
    """Where initdb and pg_ctl are: $AGGREGATOR_PG_BINDIR, Debian's versioned directory, or PATH."""
    env = os.environ.get("AGGREGATOR_PG_BINDIR")
    candidates = [env] if env else []
    candidates += list(BINDIRS)
    for c in candidates:
        if c and (Path(c) / "initdb").is_file() and (Path(c) / "pg_ctl").is_file():
            return Path(c)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise ClusterError("PostgreSQL's initdb/pg_ctl were not found (looked in $AGGREGATOR_PG_BINDIR, "
                       f"{', '.join(BINDIRS)} and PATH): install Debian's postgresql package "
                       "(scripts/test does when it runs as root or with password-less sudo)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """One throwaway PostgreSQL cluster; see the module docstring."""

    def __init__(self, *, bindir: Path | None = None, keep: bool = False):
        self.bindir = bindir
        self.keep = keep  # leave the directory behind (debugging)
        self.root: Path | None = None
        self.port = 0
        self.started_in = 0.0  # seconds that initdb + start took
        self._running = False
        self._as_user: list[str] = []
        self._lock = threading.Lock()

    # -- paths -----------------------------------------------------------------------
    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None
        return self.root / "sock"

    @property
    def log(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    def url(self, dbname: str = "postgres", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}"

    # -- start / stop ----------------------------------------------------------------
    def _run(self, what: str, args: list[str], log: Path | None = None) -> None:
        proc = subprocess.run([*self._as_user, *args], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=120, check=False)
        if proc.returncode != 0:
            detail = (proc.stdout + proc.stderr).strip()[-3000:]
            if log is not None and log.exists():
                detail += "\n--- server log (tail) ---\n" + _tail(log)
            raise ClusterError(f"PostgreSQL test cluster: {what} failed (exit {proc.returncode}): "
                               f"{' '.join(args)}\n{detail}")

    def start(self) -> Cluster:
        t0 = time.monotonic()
        bindir = self.bindir or find_bindir()
        root_user = os.geteuid() == 0
        # As root the unprivileged user must reach the directory: /tmp, whatever TMPDIR says.
        self.root = Path(tempfile.mkdtemp(prefix="aggregator-pg-", dir="/tmp" if root_user else None))
        self.socket_dir.mkdir()
        if root_user:
            # PostgreSQL will not run as root: the directory and the server belong to an
            # unprivileged user, and the commands run as that user.
            try:
                user = pwd.getpwnam(UNPRIVILEGED)
            except KeyError:
                self._remove()
                raise ClusterError(f"running as root and there is no {UNPRIVILEGED!r} user to run PostgreSQL as "
                                   "(Debian's postgresql package creates it)") from None
            for p in (self.root, self.socket_dir):
                os.chown(p, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", UNPRIVILEGED, "--"]
        atexit.register(self.stop)
        try:
            self._run("initdb", [str(bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                                 "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"])
            # A port found free may be taken before the server binds it: try a few.
            for attempt in range(5):
                self.port = free_port()
                options = (f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -F "
                           "-c full_page_writes=off -c synchronous_commit=off -c max_connections=200 "
                           "-c shared_buffers=32MB -c log_min_messages=warning")
                try:
                    self._run("pg_ctl start", [str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                               "-w", "-t", "60", "-o", options, "start"], log=self.log)
                    break
                except ClusterError:
                    if attempt == 4 or "could not bind" not in _tail(self.log):
                        raise
            self._running = True
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0
        return self

    def stop(self) -> None:
        with self._lock:
            if self.root is None:
                return
            if self._running:
                bindir = self.bindir or find_bindir()
                with contextlib.suppress(Exception):
                    # immediate: nothing in a throwaway cluster needs a clean shutdown.
                    subprocess.run([*self._as_user, str(bindir / "pg_ctl"), "-D", str(self.data), "-m",
                                    "immediate", "-w", "-t", "30", "stop"], stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=60, check=False)
                self._running = False
            if not self.keep:
                self._remove()
            self.root = None
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------
    def execute(self, sql: str, dbname: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg  # imported here: starting a cluster does not need it

        with psycopg.connect(self.conninfo(dbname), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str, *, template: str = "template1") -> str:
        """A new, empty database (a copy of ``template``); returns its SQLAlchemy URL."""
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stop_on_signals(cluster: Cluster) -> None:
    """SIGTERM/SIGHUP stop the cluster before the process ends (atexit does not run on them)."""
    def handler(signum: int, frame: FrameType | None) -> None:
        cluster.stop()
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: leave the handlers alone
            signal.signal(sig, handler)


if __name__ == "__main__":
    pg = Cluster()
    try:
        pg.start()
    except ClusterError as e:
        raise SystemExit(str(e)) from None
    stop_on_signals(pg)
    pg.create_database("aggregator")
    print(f"started in {pg.started_in:.2f}s; storage.url: {pg.url('aggregator')}", flush=True)
    print(f"psql: psql -h 127.0.0.1 -p {pg.port} -U {SUPERUSER} aggregator   (Ctrl-C stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        pg.stop()
