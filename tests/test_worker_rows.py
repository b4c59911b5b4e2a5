"""The workers' rows (schema 8, aggregator.store.workers) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregator.store import Store
from aggregator.store import workers as rows

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_workers_register_beat_hold_and_are_forgotten(store_url: str) -> None:
    with Store(store_url) as s:
        s.sync_sources([("a", "https://a.example/f", "outlet"), ("b", "https://b.example/f", "outlet")], now=NOW)
        rows.register(s, "h1:10", "h1", 10, NOW)
        rows.register(s, "h2:20", "h2", 20, NOW + timedelta(seconds=1))
        assert rows.heartbeat(s, "h1:10", "fetch a.example; process", NOW + timedelta(seconds=4))
        got = rows.workers(s)
        assert [(w.id, w.host, w.pid, w.since, w.holds) for w in got] == [
            ("h1:10", "h1", 10, NOW, "fetch a.example; process"), ("h2:20", "h2", 20, NOW + timedelta(seconds=1), "")]
        assert got[0].heartbeat == NOW + timedelta(seconds=4)
        # Registering again (a restart with the same pid) starts idle, keeps its first since.
        rows.register(s, "h1:10", "h1", 10, NOW + timedelta(seconds=9))
        assert rows.workers(s)[0].holds == "" and rows.workers(s)[0].since == NOW
        rows.forget(s, ["h2:20"])
        assert not rows.heartbeat(s, "h2:20", "", NOW)  # forgotten: it must register again
        rows.unregister(s, "h1:10")
        assert rows.workers(s) == []

        rows.mark_fetched(s, ["a"], "h1:10")
        rows.mark_fetched(s, ["a", "b"], "h2:20")
        assert rows.fetched_by(s) == {"a": "h2:20", "b": "h2:20"}
