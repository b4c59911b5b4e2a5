from __future__ import annotations

import dataclasses
import os
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from aggregator.exceptions import StorageError, StoreLockedError
from aggregator.models import EntryData, Match
from aggregator.store import SCHEMA_VERSION, Store
from aggregator.store.lock import run_lock

T = datetime(2024, 5, 1, tzinfo=UTC)


def e(key: str, title: str = "t", link: str | None = None, **kw: object) -> EntryData:
    return EntryData(key=key, link=link or f"https://x.example/{key}", title=title, published=T, **kw)  # type: ignore[arg-type]


def store_feed(s: Store, entries: list[EntryData], now: datetime = T) -> tuple[int, int, int]:
    r = s.record_success("src", "outlet", entries, now=now, next_fetch=now + timedelta(minutes=30), status=200,
                         etag='"v1"', last_modified=None)
    return r.new, r.updated, r.unchanged


@pytest.fixture
def s(store_url: str) -> Store:
    """A store on each back-end: a SQLite file, then a fresh PostgreSQL database."""
    with Store(store_url) as st:
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


def test_syncing_sources_writes_only_what_changed_and_counts_entries_only_for_the_log(s: Store) -> None:
    from aggregator.sources.decide import Configured

    store_feed(s, [e("a"), e("b")])
    same = [Configured("src", "https://x.example/feed", "outlet", "src")]
    before = s.db.total_changes if hasattr(s.db, "total_changes") else None
    assert [i.action for i in s.sync_sources(same)] == ["keep"]
    if before is not None:  # SQLite: no row was written for a source that stays as it was
        assert s.db.total_changes == before
    renamed = [Configured("src", "https://x.example/feed", "blog", "Source X")]
    assert [(i.action, i.entries) for i in s.sync_sources(renamed)] == [("keep", 0)]
    assert s.source_names() == {"src": "Source X"} and s.source_states()["src"].role == "blog"
    moved = [Configured("src2", "https://x.example/feed", "blog", "Source X")]
    assert [(i.action, i.id, i.entries) for i in s.sync_sources(moved)] == [("rename", "src2", 2)]


def test_source_states_of_some_sources_are_those_of_all_sources(s: Store) -> None:
    from aggregator.store import sources as store_sources

    s.sync_sources([("src", "https://x.example/feed", "outlet"), ("other", "https://y.example/feed", "outlet"),
                    ("third", "https://z.example/feed", "outlet")])
    store_feed(s, [e("a"), e("b")])
    every = s.source_states()
    assert set(every) == {"src", "other", "third"} and every["src"].entry_count == 2
    assert s.source_states(["src", "third", "gone"]) == {k: every[k] for k in ("src", "third")}
    assert s.source_states([]) == {}
    uncounted = s.source_states(counts=False)
    assert uncounted == {k: dataclasses.replace(v, entry_count=None) for k, v in every.items()}
    # more ids than one IN (...) takes: the whole table read and filtered, same answer
    many = ["src", *(f"x{i}" for i in range(store_sources._MAX_IDS + 1))]
    assert s.source_states(many) == {"src": every["src"]}


def test_a_failed_transaction_leaves_nothing_behind(s: Store) -> None:
    store_feed(s, [e("a")])
    with pytest.raises((sqlite3.IntegrityError, IntegrityError)), s.transaction() as db:
        db.execute("UPDATE sources SET etag='half' WHERE id='src'")
        db.execute("INSERT INTO entries(id, source_id, role, key, title, first_seen, last_seen, hash, sort_date)"
                   " SELECT id, source_id, role, key, title, first_seen, last_seen, hash, sort_date FROM entries")
    assert s.source_states()["src"].etag == '"v1"'
    assert s.count_entries() == {"outlet": 1}


def test_a_group_commits_its_transactions_together_and_a_failing_one_alone_is_undone(s: Store,
                                                                                      store_url: str) -> None:
    with Store(store_url) as other:  # another process's view: only what is committed
        with s.grouped():
            store_feed(s, [e("a")])
            assert s.grouped_count == 1 and other.count_entries() == {}  # stored, not yet durable
            with pytest.raises((sqlite3.IntegrityError, IntegrityError)), s.transaction() as db:
                db.execute("UPDATE sources SET etag='half' WHERE id='src'")
                db.execute("INSERT INTO entries(id, source_id, role, key, title, first_seen, last_seen, hash,"
                           " sort_date) SELECT id, source_id, role, key, title, first_seen, last_seen, hash,"
                           " sort_date FROM entries")
            assert s.grouped_count == 1  # the failed one is not counted, and did not undo the first
            s.commit_group()
            assert s.grouped_count == 0 and other.count_entries() == {"outlet": 1}
            store_feed(s, [e("b")])
            assert other.count_entries() == {"outlet": 1}
        assert s.grouped_count is None
        assert other.count_entries() == {"outlet": 2}  # the end of the group commits
        assert other.source_states()["src"].etag == '"v1"'
        with pytest.raises(RuntimeError), s.grouped():
            store_feed(s, [e("c")])
            raise RuntimeError("a bug mid-cycle")
        assert other.count_entries() == {"outlet": 3}  # what was whole is kept
        store_feed(s, [e("d")])  # outside a group: its own transaction again
        assert other.count_entries() == {"outlet": 4}


def test_a_group_commits_when_due_by_its_size_or_its_oldest_transactions_age(s: Store, store_url: str) -> None:
    from aggregator.store import base

    def meta_seen(store: Store) -> int:
        return sum(1 for i in range(base.GROUP_MOST) if store.get_meta(f"k{i}") is not None)

    with Store(store_url) as other, s.grouped():
        for i in range(base.GROUP_MOST - 1):
            s.set_meta(f"k{i}", "v")
            s.commit_group_if_due()
        assert s.grouped_count == base.GROUP_MOST - 1 and meta_seen(other) == 0  # neither bound reached
        s.set_meta(f"k{base.GROUP_MOST - 1}", "v")
        s.commit_group_if_due()
        assert s.grouped_count == 0 and meta_seen(other) == base.GROUP_MOST
        s.commit_group_if_due()  # nothing held: nothing to do
        s.set_meta("late", "v")
        s.commit_group_if_due()
        assert other.get_meta("late") is None  # one transaction, just begun
        s._group_began -= base.GROUP_SECONDS  # as if it had begun a while ago
        s.commit_group_if_due()
        assert s.grouped_count == 0 and other.get_meta("late") == "v"


def test_matches_are_replaced_and_report_change(s: Store) -> None:
    store_feed(s, [e("a"), e("b")])
    assert s.set_matches(1, [Match(1, 2, 1.0, "link", "link")], "resolved", T) is True
    assert s.set_matches(1, [Match(1, 2, 1.0, "link", "link")], "resolved", T) is False
    assert s.matches_for([1]) == {1: [Match(1, 2, 1.0, "link", "link")]}


def test_the_store_survives_reopening(store_url: str) -> None:
    with Store(store_url) as a:
        a.sync_sources([("src", "https://x/", "outlet")])
        store_feed(a, [e("a")])
    with Store(store_url) as b:
        assert b.count_entries() == {"outlet": 1}
        if b.dialect == "sqlite":
            assert b.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert b.get_meta("schema_version") == str(SCHEMA_VERSION)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "db.sqlite3"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"the store is damaged \(file is not a database\)"):
        Store(p)


def test_the_lock_keeps_a_second_run_out(store_url: str) -> None:
    assert run_lock(store_url).holder() is None
    with run_lock(store_url) as held:
        with pytest.raises(StoreLockedError, match=r"already working on .*\(pid \d+: aggregator run since "):
            run_lock(store_url).acquire()
        assert run_lock(store_url).holder() == held.holder()
        assert f"pid {os.getpid()}: aggregator run since" in (held.holder() or "")
    assert run_lock(store_url).holder() is None
    run_lock(store_url).acquire().release()  # released: free again


def test_changing_a_source_url_starts_it_over(s: Store) -> None:
    store_feed(s, [e("a")])
    s.sync_sources([("src", "https://moved.example/feed", "outlet")])
    st = s.source_states()["src"]
    assert st.url == "https://moved.example/feed" and st.etag is None


def test_hostile_text_is_stored_and_read_back(s: Store) -> None:
    """Whatever a feed sends comes back as it was; PostgreSQL's text cannot hold NUL,
    which becomes U+FFFD there (SQLite keeps it)."""
    nasty = "nul\x00 rtl\u202e emoji\U0001f680 quote' %s ? ;DROP TABLE entries;-- " + "x" * 200_000
    store_feed(s, [e("a", title=nasty, summary=nasty, categories=("%", "?", "\x00"))])
    (got,) = s.find_entries_by_link("https://x.example/a")
    want = nasty if s.dialect == "sqlite" else nasty.replace("\x00", "\ufffd")
    assert got.title == want and got.summary == want
    assert got.categories == ("%", "?", "\x00")  # JSON-escaped: kept on both
    assert s.unreadable_entries() == []


def test_a_literal_percent_and_question_mark_reach_the_database_as_written(s: Store) -> None:
    store_feed(s, [e("a", title="100% sure?")])
    assert s.db.execute("SELECT COUNT(*) FROM entries WHERE title LIKE '100%'").fetchone()[0] == 1
    assert s.db.execute("SELECT COUNT(*) FROM entries WHERE title LIKE ? AND title LIKE '%sure%'",
                        ("100%",)).fetchone()[0] == 1


def test_a_lost_postgresql_connection_is_a_storage_error_and_the_next_store_works(pg_url: str) -> None:
    """The server ends the connection mid-work (a restart, an administrator): the write
    fails as a driver error the CLI and the daemon turn into one line, nothing half-done
    stays, and the next store opened (a new job) works."""
    from aggregator.store.backend import as_storage_error, db_errors

    with Store(pg_url) as st:
        st.sync_sources([("src", "https://x.example/feed", "outlet")])
        store_feed(st, [e("a")])
        pid = st.db.execute("SELECT pg_backend_pid()").fetchone()[0]
        with Store(pg_url) as other:
            other.db.execute("SELECT pg_terminate_backend(?)", (pid,))
        with pytest.raises(db_errors()) as lost:
            store_feed(st, [e("b")])
        err = as_storage_error(st.name, lost.value)
        assert str(err).startswith(f"{st.name}: ") and "\n" not in str(err) and "[SQL" not in str(err)
    with Store(pg_url) as again:
        assert again.count_entries() == {"outlet": 1}
        store_feed(again, [e("b")])
        assert again.count_entries() == {"outlet": 2}


def test_store_check_on_postgresql_finds_dangling_rows_and_unreadable_entries_and_writes_nothing(pg_url: str) -> None:
    from aggregator.store.pgcheck import check_postgres

    with Store(pg_url) as st:
        st.sync_sources([("src", "https://x.example/feed", "outlet")])
        store_feed(st, [e("a"), e("b")])
        assert check_postgres(pg_url).ok
        (a, b) = sorted(x.id for x in st.newest_entries(["outlet"], 5))
        st.db.execute("INSERT INTO matches(post_id, article_id, score, method, evidence, created)"
                      " VALUES (?, ?, 1.0, 'link', 'link', '2024-05-01T00:00:00Z')", (a, 999_999))
        st.db.execute("UPDATE entries SET published='yesterday' WHERE id=?", (b,))
        st.db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
        size_before = st.db.execute("SELECT COUNT(*) FROM matches").fetchone()[0]
    result = check_postgres(pg_url)
    assert not result.ok and result.schema == 3 and result.entries == 2
    assert result.problems == [f"1 matches of an article that is not stored: ({a}, 999999)"]
    assert any(f"entry {b} " in n and "cannot be read" in n for n in result.notes)
    assert any("the next run migrates it" in n for n in result.notes)
    from aggregator.store.backend import PgDB

    raw = PgDB(pg_url)
    try:  # read-only: nothing migrated, nothing repaired
        assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "3"
        assert raw.execute("SELECT COUNT(*) FROM matches").fetchone()[0] == size_before
    finally:
        raw.close()


def test_many_304s_stored_together_leave_what_one_at_a_time_leaves(store_url: str) -> None:
    """record_not_modified (a cycle's 304s in one transaction) writes what record_success
    writes for each 304, validators or none, after failures and a 410 too."""
    import dataclasses

    later, nxt = T + timedelta(hours=1), T + timedelta(hours=2)
    answers = {"0": ('"v1"', None), "1": ('"v2"', "Wed, 01 May 2024 00:00:00 GMT"),
               "2": (None, "Wed, 01 May 2024 00:00:00 GMT"), "3": (None, None)}
    with Store(store_url) as st:
        # the same history for one_N (stored one at a time) and many_N (stored together)
        st.sync_sources([(f"{w}_{i}", f"https://x.example/{w}/{i}", "outlet") for w in ("one", "many")
                         for i in answers])
        for w in ("one", "many"):
            for i in answers:
                st.record_success(f"{w}_{i}", "outlet", [e(f"{w}{i}a")], now=T, next_fetch=T, status=200,
                                  etag='"v1"' if i != "3" else None, last_modified=None, title="Feed")
            st.record_failure(f"{w}_1", "fetch: HTTP 503", now=T, next_fetch=T, status=503)
            st.record_failure(f"{w}_2", "fetch: HTTP 410 Gone", now=T, next_fetch=T, status=410, disable="gone")
        for i, (etag, lm) in answers.items():
            r = st.record_success(f"one_{i}", "outlet", None, now=later, next_fetch=nxt, status=304, etag=etag,
                                  last_modified=lm)
            assert (r.new, r.updated) == (0, 0)
        st.record_not_modified([(f"many_{i}", nxt, etag, lm) for i, (etag, lm) in answers.items()], now=later)
        states = st.source_states()
    for i in answers:
        one, many = dataclasses.asdict(states[f"one_{i}"]), dataclasses.asdict(states[f"many_{i}"])
        for d in (one, many):
            for k in ("id", "url", "config_url", "name"):
                d.pop(k, None)
        assert one == many, i
    b = {i: states[f"many_{i}"] for i in answers}
    assert b["1"].consecutive_failures == 0 and b["1"].etag == '"v2"' and b["2"].disabled is None
    assert b["0"].last_status == 304 and b["0"].next_fetch == nxt and b["3"].etag is None


def test_only_sources_with_entries_stored_since_their_page_stage_have_every_entry_looked_at(s: Store) -> None:
    """``pages_pending``: set by a fetch that stores new or changed entries, cleared by the
    page stage; a source without it gives only its waiting and due pages."""
    from aggregator.sources import fulltext

    store_feed(s, [e("a"), e("b"), e("c")])
    a, b_, c = sorted(s.page_candidates("src", T), key=lambda c: c.entry.id)
    assert [h.entry_id for h in s.page_heads(["src"], T)] == [a.entry.id, b_.entry.id, c.entry.id]
    s.save_pages([fulltext.not_needed(a, T), fulltext.waiting(b_, T)])
    assert [h.entry_id for h in s.page_heads(["src"], T)] == [b_.entry.id, c.entry.id]  # still pending
    s.pages_decided(["src"])
    # c was never decided, but nothing was stored since the page stage: not read again.
    assert [h.entry_id for h in s.page_heads(["src"], T)] == [b_.entry.id]
    later = T + timedelta(hours=1)
    s.record_success("src", "outlet", None, now=later, next_fetch=later, status=304, etag='"v1"',
                     last_modified=None)
    s.record_not_modified([("src", later, '"v1"', None)], now=later)
    assert store_feed(s, [e("a"), e("b"), e("c")], later) == (0, 0, 3)  # unchanged: still not pending
    assert [h.entry_id for h in s.page_heads(["src"], later)] == [b_.entry.id]
    s.save_pages([fulltext.after_failure(b_, later, "HTTP 503", interval=timedelta(hours=1),
                                         max_backoff=timedelta(days=1), rng=random.Random(1), retry_after=None,
                                         permanent=False)])
    assert s.page_heads(["src"], later) == []  # its retry is not due yet
    assert [h.entry_id for h in s.page_heads(["src"], later + timedelta(days=2))] == [b_.entry.id]
    # A changed entry: every entry of the source is looked at again, c (never decided) too.
    assert store_feed(s, [e("a", title="new title"), e("b"), e("c")], later) == (0, 1, 2)
    assert [h.entry_id for h in s.page_heads(["src"], later)] == [a.entry.id, c.entry.id]
    s.pages_decided(["src", "unknown"])
    assert s.page_heads(["src"], later) == []


def test_page_heads_are_the_page_candidates_of_many_sources_in_one_query(s: Store) -> None:
    from aggregator.sources import fulltext
    from aggregator.store import PageText
    from aggregator.store import pages as pages_store

    s.sync_sources([("src", "https://x.example/feed", "outlet"), ("b", "https://y.example/feed", "outlet")])
    store_feed(s, [e("a"), e("b"), e("c")])
    s.record_success("b", "outlet", [e("z", link="https://y.example/z")], now=T,
                     next_fetch=T + timedelta(minutes=30), status=200, etag=None, last_modified=None)
    a, b_, c = sorted(s.page_candidates("src", T), key=lambda c: c.entry.id)
    s.save_pages([fulltext.not_needed(a, T), fulltext.waiting(b_, T)], [PageText(c.entry.id, "kept", "x", T)])
    want = {c.entry.id: c for sid in ("src", "b") for c in s.page_candidates(sid, T)}
    assert set(want) == {b_.entry.id, c.entry.id, s.page_candidates("b", T)[0].entry.id}  # a is decided
    heads = s.page_heads(["src", "b", "gone"], T)
    assert {h.entry_id: (h.source_id, h.link, h.version, h.has_page_text) for h in heads} == {
        i: (w.entry.source_id, w.entry.link, w.version, bool(w.entry.page_text)) for i, w in want.items()}
    assert [h.source_id for h in s.page_heads(["b"], T)] == ["b"] and s.page_heads([], T) == []
    assert sorted(s.page_candidates_of(list(want), T), key=lambda c: c.entry.id) == \
        sorted(want.values(), key=lambda c: c.entry.id)
    assert s.page_candidates_of([a.entry.id], T) == []  # decided: not a candidate
    # Past the IN bound: every undecided entry read, filtered by source.
    many = ["b", *(f"n{i}" for i in range(pages_store._MAX_IDS))]
    assert [h.entry_id for h in s.page_heads(many, T)] == [h.entry_id for h in heads if h.source_id == "b"]
