"""A store written by aggregator 0.1.0 opens with this version, migrated in place.

tests/fixtures/store-v0.1.0.sql is the dump of a store written by the 0.1.0 code
itself (commit 618440a: two sources, a post and an article, a match, a translation,
an embedding, publication ids), not one made from our own schema.

On PostgreSQL the same rows are loaded into a database at schema 1 (made by migration 1,
as a PostgreSQL store of that version would be) and the same steps bring it up to date."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aggregator.exceptions import StorageError
from aggregator.models import from_iso
from aggregator.store import Store, migrations
from aggregator.store.backend import PgDB, is_postgres

FIXTURE = Path(__file__).parent / "fixtures" / "store-v0.1.0.sql"
V010 = 1  # the schema version aggregator 0.1.0 wrote


TABLES = ["meta", "sources", "entries", "matches", "translation_cache", "entry_translations", "embeddings",
          "publications"]


def _v010_store(tmp_path: Path) -> Path:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(FIXTURE.read_text(encoding="utf-8"))
    db.close()
    return path


def _raw(where: str | Path):
    """A plain autocommit connection to either back-end (no migration)."""
    return PgDB(where) if is_postgres(where) else sqlite3.connect(where, isolation_level=None)


def _v010_pg_store(tmp_path: Path, url: str) -> str:
    """The 0.1.0 rows in a PostgreSQL database at schema 1."""
    sqlite_db = sqlite3.connect(_v010_store(tmp_path))
    pg = PgDB(url)
    try:
        pg.execute("BEGIN")
        migrations.MIGRATIONS[0](pg)
        for t in TABLES:
            rows = sqlite_db.execute(f"SELECT * FROM {t}").fetchall()
            if rows:
                pg.executemany(f"INSERT INTO {t} VALUES ({','.join('?' * len(rows[0]))})", rows)
        # rows copied with their ids: the identity goes on after them
        pg.execute("SELECT setval(pg_get_serial_sequence('entries', 'id'), (SELECT MAX(id) FROM entries))")
        pg.execute("COMMIT")
    finally:
        pg.close()
        sqlite_db.close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def old(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store written by 0.1.0 (schema 1), on each back-end."""
    if request.param == "sqlite":
        return str(_v010_store(tmp_path))
    return _v010_pg_store(tmp_path, request.getfixturevalue("pg_url"))


def _execute(where: str | Path, sql: str) -> None:
    db = _raw(where)
    try:
        db.execute(sql)
    finally:
        db.close()


def _contents(path: str | Path) -> dict[str, list[tuple[object, ...]]]:
    db = _raw(path)
    try:
        return {t: sorted((tuple(r) for r in db.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
                for t in TABLES[1:]}
    finally:
        db.close()


def test_both_back_ends_have_the_same_schema(tmp_path: Path, pg_url: str) -> None:
    with Store(tmp_path / "new.sqlite3") as lite, Store(pg_url) as pg:
        lite_cols = {(t, r[1]) for t in [r[0] for r in lite.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")] for r in lite.db.execute(f"PRAGMA table_info({t})")}
        pg_cols = {(r[0], r[1]) for r in pg.db.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema=current_schema()")}
        assert lite_cols == pg_cols
        assert pg.get_meta("schema_version") == lite.get_meta("schema_version") == str(migrations.SCHEMA_VERSION)
        # and an entry gets its id from the database, as SQLite's rowid does
        pg.sync_sources([("src", "https://x.example/feed", "outlet")])
        lite.sync_sources([("src", "https://x.example/feed", "outlet")])
        from datetime import UTC, datetime, timedelta

        from aggregator.models import EntryData

        now = datetime(2026, 1, 1, tzinfo=UTC)
        for s in (pg, lite):
            s.record_success("src", "outlet", [EntryData(key="a", link="https://x.example/a", title="A")], now=now,
                             next_fetch=now + timedelta(hours=1), status=200, etag=None, last_modified=None)
        assert [e.id for e in pg.newest_entries(["outlet"], 5)] == [e.id for e in lite.newest_entries(["outlet"], 5)]


def test_a_v010_store_opens_and_keeps_everything(old: str) -> None:
    path = old
    before = _contents(path)
    with Store(path) as s:
        assert s.get_meta("schema_version") == str(migrations.SCHEMA_VERSION)
        posts = s.newest_entries(["blog"], 10)
        assert [p.title for p in posts] == ["米国務長官、議会に警告"]
        (m,) = s.matches_for([posts[0].id])[posts[0].id]
        assert s.get_entry(m.article_id).title == "Blinken warned lawmakers"  # type: ignore[union-attr]
        assert s.cached_translations(["米国務長官、議会に警告"], "ja", "en") == {
            "米国務長官、議会に警告": ("US Secretary of State warns Congress", "libre")}
        assert s.entry_translations([posts[0].id], "en")[posts[0].id].status == "done"
        assert {p.pub_id for p in s.publications([posts[0].id, m.article_id]).values()} == {
            "tag:example.org,2026:1", "tag:example.org,2026:2"}
        assert s.source_states()["blog"].etag == '"abc"'
    after = _contents(path)
    for table, rows in before.items():  # migrations may add columns, never lose a row
        assert len(after[table]) == len(rows), table


def test_pending_migrations_run_in_one_transaction_after_a_backup(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = _v010_store(tmp_path)
    version = migrations.SCHEMA_VERSION

    def add_column(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE entries ADD COLUMN test_note TEXT DEFAULT 'x'")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, add_column])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", version + 1)
    with Store(path) as s:
        assert s.get_meta("schema_version") == str(version + 1)
        assert s.db.execute("SELECT test_note FROM entries LIMIT 1").fetchone() == ("x",)
    backup = path.with_name(f"{path.name}.schema-{V010}.bak")
    assert backup.exists()
    db = sqlite3.connect(backup)
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(V010),)
    assert db.execute("SELECT COUNT(*) FROM entries").fetchone() == (2,)
    db.close()


def test_a_failing_migration_changes_nothing(old: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = old
    before = _contents(path)
    version = migrations.SCHEMA_VERSION

    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM matches")
        db.execute("ALTER TABLE entries ADD COLUMN half TEXT")  # PostgreSQL's DDL rolls back too
        raise sqlite3.OperationalError("simulated failure half-way")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, half_then_fail])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", version + 1)
    with pytest.raises(StorageError, match="the store cannot be used: simulated failure half-way"):
        Store(path)
    assert _contents(path) == before
    db = _raw(path)
    assert tuple(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()) == (str(V010),)
    db.close()


def test_a_store_from_a_newer_version_is_refused(old: str) -> None:
    _execute(old, "UPDATE meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(StorageError, match="newer aggregator"):
        Store(old)


def test_a_v010_store_gains_an_empty_translation_usage_table(old: str) -> None:
    from datetime import UTC, datetime

    path = old
    with Store(path) as s:
        assert s.translation_usage() == {}
        when = datetime(2026, 1, 1, tzinfo=UTC)
        s.record_translation_usage({"openai:m": (2, 300, 120, 90), "libre": (5, 200, 0, 0)}, when)
        s.record_translation_usage({"openai:m": (1, 100, 40, 30)}, when)
        usage = s.translation_usage()
    assert usage["openai:m"]["cycle"] == {"requests": 1, "characters": 100, "prompt_tokens": 40,
                                          "completion_tokens": 30}
    assert usage["openai:m"]["total"] == {"requests": 3, "characters": 400, "prompt_tokens": 160,
                                          "completion_tokens": 120}
    # a provider the last cycle did not use: nothing this cycle, its total kept
    assert usage["libre"]["cycle"]["requests"] == 0 and usage["libre"]["total"]["requests"] == 5


def test_schema_2_pads_short_years_sorts_by_plausible_dates_and_remembers_citations(old: str) -> None:
    """0.1.0 wrote a year before 1000 with fewer than four digits, which could not be
    read back, and sorted an entry by whatever date its feed gave (1970 included)."""
    path = old
    db = _raw(path)
    (article,) = db.execute("SELECT article_id FROM matches").fetchone()
    db.execute("UPDATE entries SET published='999-01-01T00:00:00Z', sort_date='999-01-01T00:00:00Z' WHERE id=?",
               (article,))
    last_seen = dict(db.execute("SELECT source_id, MAX(last_seen) FROM entries GROUP BY source_id"))
    db.close()
    with Store(path) as s:
        a = s.get_entry(article)
        assert a is not None and a.published is not None and a.published.year == 999
        row = s.db.execute("SELECT published, sort_date, cited FROM entries WHERE id=?", (article,)).fetchone()
        assert tuple(row) == ("0999-01-01T00:00:00Z", s.db.execute(
            "SELECT first_seen FROM entries WHERE id=?", (article,)).fetchone()[0], 1)
        assert {sid: st.last_content for sid, st in s.source_states().items()} == {
            sid: from_iso(t) for sid, t in last_seen.items()}
        assert s.unreadable_entries() == []
