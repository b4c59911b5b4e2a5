"""Cooperating workers (docs/scaling.md): 1, 2 and 4 ``aggregator run`` processes on one
PostgreSQL store against N loopback feeds, and one daemon on SQLite for comparison.

    python bench/bench_workers.py                          # 2,000 feeds x 5 entries
    python bench/bench_workers.py --feeds 200 --workers 1,2 --no-sqlite   # a quick look

The feeds (bench/corpus.py, the shapes of real outlets) are served from a separate
process over 32 loopback addresses (bench/serve_feeds.py), as real feeds live on many
hosts: the workers take one job per host. A throwaway PostgreSQL cluster
(tests/pgcluster.py) gets a fresh database per run; every run starts on an empty store,
with fresh servers, and the sources' interval is an hour, so one cycle is measured:

  fetch s      start of the processes to every source fetched and stored
  fetches/s    sources over fetch s
  cycle s      start to the first publication after every source was stored
  duplicates   requests beyond the first to any feed (must be 0)

``--once`` adds one ``aggregator run --once`` cycle on each back-end: the same stages
without a scheduler (fetch s is then the whole cycle), to tell the store's cost from the
SQLite daemon's (one job per source, each reading every source's state).

Processes start and stop like an operator's (``aggregator run``, SIGTERM). Translation
is off (no provider): this measures the shared fetching and one publication, not the
translators. The load average is printed with the table: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from bench_cycle import Servers, aggregator_config, load_average, write_corpus
from pgcluster import Cluster

from aggregator.store.backend import engine


@dataclass
class Run:
    store: str
    workers: int
    fetch_s: float
    cycle_s: float
    requests: int
    duplicates: int
    load: str


def _counts(url: str | None, sqlite_path: Path) -> tuple[int, str | None]:
    """Sources fetched so far, and the last publication's time (ISO), or (0, None) before the store exists."""
    sql_n = "SELECT COUNT(*) FROM sources WHERE last_fetch IS NOT NULL"
    sql_p = "SELECT value FROM meta WHERE key='last_publication'"
    try:
        if url:
            with engine(url).connect() as c:
                n = c.exec_driver_sql(sql_n).scalar()
                row = c.exec_driver_sql(sql_p).first()
        else:
            if not sqlite_path.exists():
                return 0, None
            db = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=5)
            try:
                n = db.execute(sql_n).fetchone()[0]
                row = db.execute(sql_p).fetchone()
            finally:
                db.close()
    except Exception:  # noqa: BLE001 - the store is being created by the processes
        return 0, None
    return int(n or 0), (row[0] if row else None)


def one_run(root: Path, manifest: dict[str, object], n_workers: int, pg: Cluster | None, label: str,
            timeout: float, once: bool = False) -> Run:
    n_feeds = int(manifest["n_feeds"])  # type: ignore[call-overload]
    d = root / label
    d.mkdir()
    servers = Servers(root)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        cfg = d / "aggregator.yaml"
        aggregator_config(cfg, manifest, servers.urls["feeds"], None, 8)  # type: ignore[arg-type]
        url = pg.create_database(label) if pg else None
        text = cfg.read_text(encoding="utf-8")
        if url:
            text = text.replace(f"sqlite:///{d / 'aggregator.sqlite3'}", url)
        cfg.write_text(text + "schedule: {every: 1h, jitter: 0s}\n", encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        start_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        run = ["run", "--once"] if once else ["run"]
        procs = [subprocess.Popen([sys.executable, "-m", "aggregator", "-q", *run, "--config", str(cfg)],
                                  stdout=subprocess.DEVNULL, stderr=open(d / f"worker{i}.log", "wb"), env=env)
                 for i in range(n_workers)]
        fetch_s = cycle_s = float("nan")
        fetched_at_iso = None
        while time.perf_counter() - t0 < timeout:
            if not once and any(p.poll() is not None for p in procs):
                raise SystemExit(f"{label}: a worker exited early; see {d}")
            if once and procs[0].poll() is not None:
                if procs[0].returncode != 0:
                    raise SystemExit(f"{label}: run --once failed; see {d}")
                n, _ = _counts(url, d / "aggregator.sqlite3")
                if fetched_at_iso is None:
                    fetch_s = time.perf_counter() - t0
                cycle_s = time.perf_counter() - t0
                break
            n, published = _counts(url, d / "aggregator.sqlite3")
            if fetched_at_iso is None and n >= n_feeds:
                fetch_s = time.perf_counter() - t0
                fetched_at_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            if fetched_at_iso is not None and published and published[:19] >= fetched_at_iso:
                cycle_s = time.perf_counter() - t0
                break
            time.sleep(0.25)
        else:
            raise SystemExit(f"{label}: not done after {timeout:.0f} s (started {start_iso}); see {d}")
        time.sleep(3)  # any duplicate would come now
        hits = servers._ask("hits")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        servers.close()
    return Run(("PostgreSQL" if pg else "SQLite") + (" (run --once)" if once else ""), n_workers, fetch_s, cycle_s, int(hits["requests"]),  # type: ignore[call-overload]
               int(hits["requests"]) - int(hits["distinct"]), load_average())  # type: ignore[call-overload]


def table(runs: list[Run], n_feeds: int) -> str:
    rows = ["| store | workers | fetch s | fetches/s | cycle s | requests | duplicate fetches | load avg |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        rows.append(f"| {r.store} | {r.workers} | {r.fetch_s:.1f} | {n_feeds / r.fetch_s:.0f} | {r.cycle_s:.1f} | "
                    f"{r.requests:,} | {r.duplicates} | {r.load} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--entries", type=int, default=5)
    ap.add_argument("--workers", default="1,2,4", help="worker counts on PostgreSQL (comma-separated)")
    ap.add_argument("--no-sqlite", action="store_true", help="skip the one-daemon SQLite run")
    ap.add_argument("--once", action="store_true",
                    help="also one `run --once` cycle on each back-end (the same stages without the scheduler)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp, Cluster() as pg:
        root = Path(tmp)
        manifest = write_corpus(root, args.feeds, args.entries, args.seed)
        print(f"{args.feeds:,} feeds x {args.entries} entries; PostgreSQL on port {pg.port}; "
              f"{os.cpu_count()} CPUs", file=sys.stderr, flush=True)
        plan: list[tuple[int, Cluster | None, bool]] = [] if args.no_sqlite else [(1, None, False)]
        plan += [(n, pg, False) for n in counts]
        if args.once:
            plan += [(1, None, True), (1, pg, True)]
        for n, cluster, once in plan:
            label = f"{'pg' if cluster else 'sqlite'}{n}{'once' if once else ''}"
            r = one_run(root, manifest, n, cluster, label, args.timeout, once)
            runs.append(r)
            print(f"  {r.store:<10} {n} worker(s): fetch {r.fetch_s:6.1f} s, cycle {r.cycle_s:6.1f} s, "
                  f"{r.duplicates} duplicate(s)  (load {r.load})", file=sys.stderr, flush=True)
    print(table(runs, args.feeds))
    if any(r.duplicates for r in runs):
        raise SystemExit("duplicate fetches: the workers fetched a feed twice")


if __name__ == "__main__":
    main()
