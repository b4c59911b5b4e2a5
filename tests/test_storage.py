from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.exceptions import StorageError, StoreLockedError
from aggregator.models import EntryData, Match
from aggregator.store import Store, StoreLock

T = datetime(2024, 5, 1, tzinfo=UTC)


def e(key: str, title: str = "t", link: str | None = None, **kw: object) -> EntryData:
    return EntryData(key=key, link=link or f"https://x.example/{key}", title=title, published=T, **kw)  # type: ignore[arg-type]


def store_feed(s: Store, entries: list[EntryData], now: datetime = T) -> tuple[int, int, int]:
    r = s.record_success("src", "outlet", entries, now=now, next_fetch=now + timedelta(minutes=30), status=200,
                         etag='"v1"', last_modified=None)
    return r.new, r.updated, r.unchanged


@pytest.fixture
def s(tmp_path: Path) -> Store:
    with Store(tmp_path / "db.sqlite3") as st:
        st.sync_sources([("src", "https://x.example/feed", "outlet")])
        yield st


def test_storing_twice_duplicates_nothing(s: Store) -> None:
    assert store_feed(s, [e("a"), e("b")]) == (2, 0, 0)
    assert store_feed(s, [e("a"), e("b")]) == (0, 0, 2)
    assert s.count_entries() == {"outlet": 2}


def test_a_changed_entry_is_updated_in_place(s: Store) -> None:
    store_feed(s, [e("a", "old title")])
    first = s.find_entries_by_link("https://x.example/a")[0]
    assert store_feed(s, [e("a", "new title")], now=T + timedelta(hours=1)) == (0, 1, 0)
    again = s.find_entries_by_link("https://x.example/a")[0]
    assert again.id == first.id and again.title == "new title"
    assert again.first_seen == first.first_seen


def test_validators_are_kept_per_source(s: Store) -> None:
    store_feed(s, [e("a")])
    st = s.source_states()["src"]
    assert st.etag == '"v1"' and st.consecutive_failures == 0
    s.record_failure("src", "fetch: boom", now=T, next_fetch=T + timedelta(hours=1))
    s.record_failure("src", "fetch: boom", now=T, next_fetch=T + timedelta(hours=2))
    st = s.source_states()["src"]
    assert st.consecutive_failures == 2 and st.etag == '"v1"' and st.last_error == "fetch: boom"


def test_a_failed_transaction_leaves_nothing_behind(s: Store) -> None:
    store_feed(s, [e("a")])
    with pytest.raises(sqlite3.IntegrityError), s.transaction() as db:
        db.execute("UPDATE sources SET etag='half' WHERE id='src'")
        db.execute("INSERT INTO entries(id, source_id, role, key, title, first_seen, last_seen, hash, sort_date)"
                   " SELECT id, source_id, role, key, title, first_seen, last_seen, hash, sort_date FROM entries")
    assert s.source_states()["src"].etag == '"v1"'
    assert s.count_entries() == {"outlet": 1}


def test_matches_are_replaced_and_report_change(s: Store) -> None:
    store_feed(s, [e("a"), e("b")])
    assert s.set_matches(1, [Match(1, 2, 1.0, "link", "link")], "resolved", T) is True
    assert s.set_matches(1, [Match(1, 2, 1.0, "link", "link")], "resolved", T) is False
    assert s.matches_for([1]) == {1: [Match(1, 2, 1.0, "link", "link")]}


def test_the_store_survives_reopening(tmp_path: Path) -> None:
    with Store(tmp_path / "db.sqlite3") as a:
        a.sync_sources([("src", "https://x/", "outlet")])
        store_feed(a, [e("a")])
    with Store(tmp_path / "db.sqlite3") as b:
        assert b.count_entries() == {"outlet": 1}
        assert b.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "db.sqlite3"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"the store is damaged \(file is not a database\)"):
        Store(p)


def test_the_lock_keeps_a_second_run_out(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    with StoreLock(db), pytest.raises(StoreLockedError, match="already working"):
        StoreLock(db).acquire()
    StoreLock(db).acquire().release()  # released: free again


def test_changing_a_source_url_starts_it_over(s: Store) -> None:
    store_feed(s, [e("a")])
    s.sync_sources([("src", "https://moved.example/feed", "outlet")])
    st = s.source_states()["src"]
    assert st.url == "https://moved.example/feed" and st.etag is None


def test_many_304s_stored_together_leave_what_one_at_a_time_leaves(tmp_path: Path) -> None:
    """record_not_modified (a cycle's 304s in one transaction) writes what record_success
    writes for each 304, validators or none, after failures and a 410 too."""
    import dataclasses

    def history(st: Store) -> None:
        srcs = [(f"s{i}", f"https://x.example/{i}", "outlet") for i in range(4)]
        st.sync_sources(srcs)
        for sid, _, _ in srcs:
            st.record_success(sid, "outlet", [e(f"{sid}a")], now=T, next_fetch=T, status=200,
                              etag='"v1"' if sid != "s3" else None, last_modified=None, title="Feed")
        st.record_failure("s1", "fetch: HTTP 503", now=T, next_fetch=T, status=503)
        st.record_failure("s2", "fetch: HTTP 410 Gone", now=T, next_fetch=T, status=410, disable="gone")

    later, nxt = T + timedelta(hours=1), T + timedelta(hours=2)
    answers = [("s0", nxt, '"v1"', None), ("s1", nxt, '"v2"', "Wed, 01 May 2024 00:00:00 GMT"),
               ("s2", nxt, None, "Wed, 01 May 2024 00:00:00 GMT"), ("s3", nxt, None, None)]
    with Store(tmp_path / "one.sqlite3") as one, Store(tmp_path / "many.sqlite3") as many:
        history(one)
        history(many)
        for sid, at, etag, lm in answers:
            r = one.record_success(sid, "outlet", None, now=later, next_fetch=at, status=304, etag=etag,
                                   last_modified=lm)
            assert (r.new, r.updated) == (0, 0)
        many.record_not_modified(answers, now=later)
        a, b = one.source_states(), many.source_states()
        assert {k: dataclasses.asdict(v) for k, v in a.items()} == {k: dataclasses.asdict(v) for k, v in b.items()}
        assert b["s1"].consecutive_failures == 0 and b["s1"].etag == '"v2"' and b["s2"].disabled is None
        assert b["s0"].last_status == 304 and b["s0"].next_fetch == nxt and b["s3"].etag is None
