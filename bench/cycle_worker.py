"""One cycle of one tool, in a process of its own; prints its costs as one JSON line.

    python bench/cycle_worker.py aggregator CONFIG.yaml
    python bench/cycle_worker.py reader DB.sqlite URLS.txt WORKERS

aggregator: the real CLI path, ``aggregator run --once --all -q --config CONFIG``.
reader: ``make_reader(DB)``, ``add_feed`` for each URL not yet there, then
``update_feeds(workers=WORKERS, scheduled=False)`` (every feed, due or not, as
``--all`` does for aggregator).

Imports happen before the clock starts (their time is reported apart, as
``import_s``); wall and CPU time cover the cycle only. CPU time is user + system of
this process and of its child processes (aggregator's feed-parsing pool is stopped
inside the timed span, so that its CPU time is counted); peak RSS is this process's
high-water mark plus, when it parsed in worker processes, the largest worker's
high-water mark once per worker (an upper bound).
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import time


def _usage() -> tuple[float, int, int]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, me.ru_maxrss, kids.ru_maxrss


class _Profile:
    """pyinstrument around the cycle when BENCH_PROFILE names a file (text report)."""

    def __init__(self) -> None:
        self.path = os.environ.get("BENCH_PROFILE")
        self.profiler = None

    def __enter__(self) -> _Profile:
        if self.path:
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.002)
            self.profiler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            with open(self.path, "w", encoding="utf-8") as f:  # type: ignore[arg-type]
                f.write(self.profiler.output_text(unicode=True, show_all=False))


def run_aggregator(config: str) -> dict[str, object]:
    t = time.perf_counter()
    import aggregator.running.cycle  # noqa: F401  (what the CLI imports on its first cycle)
    import aggregator.sources.parsepool
    from aggregator.cli import main
    from aggregator.config import load_config

    imported = time.perf_counter() - t
    cfg = load_config(config)
    cpu0, _, _ = _usage()
    t0 = time.perf_counter()
    try:
        with _Profile():
            main(["run", "--once", "--all", "-q", "--config", config], standalone_mode=False)
    except SystemExit as e:  # the CLI exits non-zero only for a bad config or store
        if e.code:
            raise
    # The parsing processes would stop at exit; stopping them here counts their CPU time.
    pool = aggregator.sources.parsepool.DEFAULT
    pool.shutdown()
    wall = time.perf_counter() - t0
    cpu1, rss, kids_rss = _usage()
    # ru_maxrss of the children is the largest one's: count it once per worker process.
    workers = pool.workers if pool.in_process else 0
    from aggregator.store.backend import PgDB

    db = PgDB(cfg.store_location) if cfg.is_postgres else sqlite3.connect(cfg.db_path)
    try:
        stored = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        failed = db.execute("SELECT COUNT(*) FROM sources WHERE last_error LIKE 'fetch:%'"
                            " OR last_error LIKE 'parse:%'").fetchone()[0]
        matched = db.execute("SELECT COUNT(DISTINCT post_id) FROM matches").fetchone()[0]
    finally:
        db.close()
    return {"wall": wall, "cpu": cpu1 - cpu0, "rss_kb": rss + kids_rss * workers, "import_s": imported,
            "stored": stored, "failed": failed, "posts_matched": matched, "parsed_in_pool": pool.in_process,
            "rss_main_kb": rss, "rss_worker_kb": kids_rss if workers else 0, "workers": workers}


def run_reader(db: str, urls_file: str, workers: int) -> dict[str, object]:
    t = time.perf_counter()
    from reader import make_reader

    imported = time.perf_counter() - t
    urls = [u for u in open(urls_file, encoding="utf-8").read().split() if u]
    reader = make_reader(db)
    have = {f.url for f in reader.get_feeds()}
    for u in urls:
        if u not in have:
            reader.add_feed(u)
    cpu0, _, _ = _usage()
    t0 = time.perf_counter()
    with _Profile():
        reader.update_feeds(workers=workers, scheduled=False)
    wall = time.perf_counter() - t0
    cpu1, rss, kids_rss = _usage()
    failed = sum(1 for f in reader.get_feeds() if f.last_exception)
    stored = reader.get_entry_counts().total
    reader.close()
    return {"wall": wall, "cpu": cpu1 - cpu0, "rss_kb": rss + kids_rss, "import_s": imported,
            "stored": stored, "failed": failed}


def main() -> None:
    tool = sys.argv[1]
    if tool == "aggregator":
        out = run_aggregator(sys.argv[2])
    elif tool == "reader":
        out = run_reader(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown tool {tool!r}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
