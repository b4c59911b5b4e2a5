"""What SQLAlchemy would cost the SQLite store, per statement (why SQLite keeps ``sqlite3``).

    python bench/bench_sqlite_layer.py            # 20,000 statements of each kind, 5 rounds

An indexed SELECT by key and an executemany UPDATE, on a 20,000-row table, through the
``sqlite3`` module, SQLAlchemy 2 Core's ``exec_driver_sql`` (the call the PostgreSQL
store uses) and ``text()``; medians of 5 rounds, in microseconds per statement (per row
for executemany). docs/storage.md#postgresql quotes the figures.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable

from sqlalchemy import create_engine, text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "layer.sqlite3")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("CREATE TABLE e (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)")
        db.executemany("INSERT INTO e(k, v) VALUES (?, ?)", [(f"k{i}", "x" * 200) for i in range(n)])
        engine = create_engine(f"sqlite:///{path}", isolation_level="AUTOCOMMIT")
        conn = engine.connect()
        select, select_text = "SELECT id, v FROM e WHERE k=?", text("SELECT id, v FROM e WHERE k=:k")
        update = "UPDATE e SET v=? WHERE id=?"
        times: dict[str, list[float]] = {}

        def timed(name: str, f: Callable[[], object]) -> None:
            t = time.perf_counter()
            f()
            times.setdefault(name, []).append((time.perf_counter() - t) / n * 1e6)

        for r in range(args.rounds):
            rows = [(f"v{r}" * 50, i) for i in range(1, n + 1)]

            def many_sqlite() -> None:
                db.execute("BEGIN")
                db.executemany(update, rows)
                db.execute("COMMIT")

            def many_sqlalchemy() -> None:
                conn.exec_driver_sql("BEGIN")
                conn.exec_driver_sql(update, rows)
                conn.exec_driver_sql("COMMIT")

            timed("SELECT by key: sqlite3", lambda: [db.execute(select, (f"k{i}",)).fetchone() for i in range(n)])
            timed("SELECT by key: SQLAlchemy exec_driver_sql",
                  lambda: [conn.exec_driver_sql(select, (f"k{i}",)).fetchone() for i in range(n)])
            timed("SELECT by key: SQLAlchemy text()",
                  lambda: [conn.execute(select_text, {"k": f"k{i}"}).fetchone() for i in range(n)])
            # alternate the order: the second writer of a round finds the pages warm
            for name, f in ([("executemany, per row: sqlite3", many_sqlite),
                             ("executemany, per row: SQLAlchemy", many_sqlalchemy)])[::1 if r % 2 else -1]:
                timed(name, f)
        conn.close()
        engine.dispose()
        db.close()
    print(f"| statement | µs (median of {args.rounds}) | min |\n|---|---:|---:|")
    for name, v in times.items():
        print(f"| {name} | {sorted(v)[len(v) // 2]:.1f} | {min(v):.1f} |")


if __name__ == "__main__":
    main()
