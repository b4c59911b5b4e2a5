"""A store written by aggregator 0.1.0 opens with this version, migrated in place.

tests/fixtures/store-v0.1.0.sql is the dump of a store written by the 0.1.0 code
itself (commit 618440a: two sources, a post and an article, a match, a translation,
an embedding, publication ids), not one made from our own schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aggregator.exceptions import StorageError
from aggregator.models import from_iso
from aggregator.store import Store, migrations

FIXTURE = Path(__file__).parent / "fixtures" / "store-v0.1.0.sql"
V010 = 1  # the schema version aggregator 0.1.0 wrote


def _v010_store(tmp_path: Path) -> Path:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(FIXTURE.read_text(encoding="utf-8"))
    db.close()
    return path


def _contents(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        tables = ["sources", "entries", "matches", "translation_cache", "entry_translations", "embeddings",
                  "publications"]
        return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        db.close()


def test_a_v010_store_opens_and_keeps_everything(tmp_path: Path) -> None:
    path = _v010_store(tmp_path)
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


def test_a_failing_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _v010_store(tmp_path)
    before = _contents(path)
    version = migrations.SCHEMA_VERSION

    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM matches")
        raise sqlite3.OperationalError("simulated failure half-way")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, half_then_fail])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", version + 1)
    with pytest.raises(StorageError, match="cannot open the store"):
        Store(path)
    assert _contents(path) == before
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(V010),)
    db.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = _v010_store(tmp_path)
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="newer aggregator"):
        Store(path)


def test_a_v010_store_gains_an_empty_translation_usage_table(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = _v010_store(tmp_path)
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


def test_schema_2_pads_short_years_sorts_by_plausible_dates_and_remembers_citations(tmp_path: Path) -> None:
    """0.1.0 wrote a year before 1000 with fewer than four digits, which could not be
    read back, and sorted an entry by whatever date its feed gave (1970 included)."""
    path = _v010_store(tmp_path)
    db = sqlite3.connect(path)
    (article,) = db.execute("SELECT article_id FROM matches").fetchone()
    db.execute("UPDATE entries SET published='999-01-01T00:00:00Z', sort_date='999-01-01T00:00:00Z' WHERE id=?",
               (article,))
    db.commit()
    last_seen = dict(db.execute("SELECT source_id, MAX(last_seen) FROM entries GROUP BY source_id"))
    db.close()
    with Store(path) as s:
        a = s.get_entry(article)
        assert a is not None and a.published is not None and a.published.year == 999
        row = s.db.execute("SELECT published, sort_date, cited FROM entries WHERE id=?", (article,)).fetchone()
        assert row == ("0999-01-01T00:00:00Z", s.db.execute(
            "SELECT first_seen FROM entries WHERE id=?", (article,)).fetchone()[0], 1)
        assert {sid: st.last_content for sid, st in s.source_states().items()} == {
            sid: from_iso(t) for sid, t in last_seen.items()}
        assert s.unreadable_entries() == []
