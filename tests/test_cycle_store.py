"""The fetch stage's storing: feeds committed together (Store.grouped), a warm-up run once
on a fetch thread when new entries arrive, nothing left uncommitted at the end."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from conftest import DEV
from loopback import FeedServer

from aggregator.config import parse_config
from aggregator.running.cycle import fetch_stage
from aggregator.store import Store

NOW = datetime(2024, 5, 21, tzinfo=UTC)
OUTLETS = ["politico", "reuters", "defensenews", "twz", "breakingdefense", "kyivindependent"]


def test_feeds_stored_together_are_all_committed_and_the_warm_up_runs_once_after_the_fetches(
        tmp_path: Path) -> None:
    with FeedServer() as srv:
        lines = ["fetch: {allow_private_networks: true, concurrency: 3}", "sources:"]
        for o in OUTLETS:
            url = srv.add(f"/{o}.xml", (DEV / "feeds" / f"{o}.xml").read_bytes())
            lines.append(f"  - {{id: {o}, url: '{url}', role: outlet}}")
        config = parse_config(f"storage: {{url: 'sqlite:///{tmp_path}/s.sqlite3'}}\n" + "\n".join(lines) + "\n")
        ran: list[str] = []

        def warm_up() -> None:
            ran.append(threading.current_thread().name)

        with Store(config.db_path) as store, Store(config.db_path) as other:
            reports = fetch_stage(store, config, now=lambda: NOW, warm_up=warm_up)
            assert store.grouped_count is None and not store.db.in_transaction
            counts = dict(other.db.execute("SELECT source_id, COUNT(*) FROM entries GROUP BY source_id"))
            assert counts == {r.id: r.new for r in reports} and all(counts.values())
            assert all(st.etag is not None or st.last_modified is not None or st.last_success
                       for st in other.source_states().values())
            for thread in threading.enumerate():  # it runs beside what follows the fetches
                if thread.name == "warm-up":
                    thread.join(10)
            assert ran == ["warm-up"]
            ran.clear()
            again = fetch_stage(store, config, now=lambda: NOW, fetch_all=True, warm_up=warm_up)
            assert {r.outcome for r in again} <= {"not modified", "unchanged"}
            assert ran == []  # nothing new: nothing to warm up for
