"""The schema and its numbered migrations.

``MIGRATIONS[n]`` takes a store from schema ``n`` to ``n + 1``; schema 0 is an empty file.
A store is migrated in place when it is opened, all pending steps in one transaction,
after a copy of the file is made beside it (``NAME.schema-N.bak``, SQLite's backup API)
so that a failed upgrade loses nothing. Never edit a released migration: append one.
Schema 1 is the one aggregator 0.1.0 wrote (commit 618440a).

PostgreSQL runs the same steps: the column types of their DDL are adapted in one place
(:func:`aggregator.store.backend.pg_sql`). Its DDL is transactional, so a failed upgrade
leaves the schema as it was without a copy; an advisory lock makes processes opening a
new store at once migrate it one after the other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from aggregator.exceptions import StorageError
from aggregator.store.backend import DB, upsert

_SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    config_url TEXT NOT NULL,
    role TEXT NOT NULL,
    title TEXT,
    etag TEXT,
    last_modified TEXT,
    last_fetch TEXT,
    last_success TEXT,
    last_status INTEGER,
    last_error TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_fetch TEXT,
    disabled TEXT,
    last_new INTEGER NOT NULL DEFAULT 0,
    last_updated INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL,
    role TEXT NOT NULL,
    key TEXT NOT NULL,
    link TEXT,
    canonical_link TEXT,
    title TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL DEFAULT '',
    author TEXT,
    categories TEXT NOT NULL DEFAULT '[]',
    published TEXT,
    updated TEXT,
    published_offset INTEGER,
    image TEXT,
    language TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    hash TEXT NOT NULL,
    sort_date TEXT NOT NULL,
    match_state TEXT,
    UNIQUE (source_id, key)
);
CREATE INDEX IF NOT EXISTS entries_canonical ON entries (canonical_link);
CREATE INDEX IF NOT EXISTS entries_role_date ON entries (role, sort_date);
CREATE TABLE IF NOT EXISTS matches (
    post_id INTEGER NOT NULL,
    article_id INTEGER NOT NULL,
    score REAL NOT NULL,
    method TEXT NOT NULL,
    evidence TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (post_id, article_id)
);
CREATE INDEX IF NOT EXISTS matches_article ON matches (article_id);
CREATE TABLE IF NOT EXISTS translation_cache (
    text_hash TEXT NOT NULL,
    source_lang TEXT NOT NULL,
    target_lang TEXT NOT NULL,
    text TEXT NOT NULL,
    translation TEXT NOT NULL,
    provider TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (text_hash, source_lang, target_lang)
);
CREATE TABLE IF NOT EXISTS entry_translations (
    entry_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    provider TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT,
    updated TEXT NOT NULL,
    title TEXT,
    summary TEXT,
    content TEXT,
    PRIMARY KEY (entry_id, target)
);
CREATE TABLE IF NOT EXISTS embeddings (
    text_hash TEXT PRIMARY KEY,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS publications (
    entry_id INTEGER PRIMARY KEY,
    pub_id TEXT NOT NULL UNIQUE,
    first_published TEXT NOT NULL,
    updated TEXT NOT NULL,
    visible_hash TEXT NOT NULL
);
"""


def _to_1(db: DB) -> None:
    for stmt in _SCHEMA_1.split(";"):
        if stmt.strip():
            db.execute(stmt)


def _to_2(db: DB) -> None:
    """Schema 2 (issue 19, running for months):

    * ``sources.name`` (the configured name, kept for a source once removed),
      ``sources.removed`` (when it left the config), ``sources.last_content`` (the last
      fetch that brought the feed's content: entries last seen then are those its feed
      held, still there through 304s and failures); the latter is what every entry of
      the last 200 was stamped with, so it starts as the source's newest ``last_seen``;
    * ``entries.cited``: some post cited the article in some cycle (retention keeps it);
    * dates with a year of fewer than four digits, as aggregator 0.1.0 wrote years before
      1000, padded (they could not be read back); ``sort_date`` is the date a reader sees,
      the entry's own when plausible, else first seen (it was the feed's, 1970 included).
    """
    from aggregator.models import from_iso, iso, plausible

    db.execute("ALTER TABLE sources ADD COLUMN name TEXT")
    db.execute("ALTER TABLE sources ADD COLUMN removed TEXT")
    db.execute("ALTER TABLE sources ADD COLUMN last_content TEXT")
    db.execute("UPDATE sources SET last_content=(SELECT MAX(last_seen) FROM entries WHERE source_id=sources.id)")
    db.execute("ALTER TABLE entries ADD COLUMN cited INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE entries SET cited=1 WHERE id IN (SELECT article_id FROM matches)")
    rows = db.execute("SELECT id, published, updated, first_seen, last_seen, sort_date FROM entries").fetchall()
    changes = []
    for i, *dates in rows:
        try:
            published, updated, first_seen, last_seen, _ = (from_iso(d) for d in dates)
        except ValueError:
            continue  # unreadable: reported by status, left as it is
        if first_seen is None or last_seen is None:
            continue
        fixed = (iso(published), iso(updated), iso(first_seen), iso(last_seen),
                 iso(plausible(published or updated, first_seen)))
        if list(fixed) != dates:
            changes.append((*fixed, i))
    db.executemany("UPDATE entries SET published=?, updated=?, first_seen=?, last_seen=?, sort_date=? WHERE id=?",
                   changes)


def _to_3(db: DB) -> None:
    """Schema 3 (issue 11, matching): ``entries.source_site``, the site an aggregator's
    item carries (``<source url>``); outlet articles indexed by arrival (which posts a
    cycle's new articles concern)."""
    db.execute("ALTER TABLE entries ADD COLUMN source_site TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS entries_role_first_seen ON entries (role, first_seen)")


def _to_4(db: DB) -> None:
    """Schema 4 (issue 15, language models): ``translation_usage``, what each translation
    provider was sent: requests, characters and (language models' ``usage``) tokens, in
    the last cycle and in total."""
    db.execute("""
        CREATE TABLE translation_usage (
            provider TEXT PRIMARY KEY,
            requests INTEGER NOT NULL DEFAULT 0,
            characters INTEGER NOT NULL DEFAULT 0,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cycle_requests INTEGER NOT NULL DEFAULT 0,
            cycle_characters INTEGER NOT NULL DEFAULT 0,
            cycle_prompt_tokens INTEGER NOT NULL DEFAULT 0,
            cycle_completion_tokens INTEGER NOT NULL DEFAULT 0,
            since TEXT NOT NULL,
            last_used TEXT
        )""")


def _to_5(db: DB) -> None:
    """Schema 5 (issue 13): full text from the entry's own page (sources[].full_text): the extracted body and
    its provenance beside what the feed said, and the page's fetch state per entry."""
    for stmt in (
        "ALTER TABLE entries ADD COLUMN page_text TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE entries ADD COLUMN page_from TEXT",
        "ALTER TABLE entries ADD COLUMN page_fetched TEXT",
        # version: the entry's hash the state was decided for (a page is fetched once per
        # entry version); url/etag/last_modified: the conditional GET of the next version.
        """CREATE TABLE pages (
            entry_id INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
            version TEXT NOT NULL,
            status TEXT NOT NULL,
            url TEXT,
            etag TEXT,
            last_modified TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            retry_at TEXT,
            checked TEXT
        )""",
        "CREATE INDEX pages_status ON pages (status)",
    ):
        db.execute(stmt)


def _to_6(db: DB) -> None:
    """Schema 6 (issue 12): drop what earlier versions took for translations and were not: provider messages
    (MyMemory's quota warning, ...), error objects and pages, the input handed back,
    another language (:mod:`aggregator.answers`). Cached texts are asked again; entries
    whose published translation was one go back to pending."""
    import json
    import logging

    from aggregator.answers import banner_kind, not_a_translation

    bad = [(h, s, t) for h, s, t, text, tr in db.execute(
        "SELECT text_hash, source_lang, target_lang, text, translation FROM translation_cache")
        if not_a_translation(text, tr, s, t)]
    db.executemany("DELETE FROM translation_cache WHERE text_hash=? AND source_lang=? AND target_lang=?", bad)
    entries = []
    for entry_id, target, title, summary, content, original, language in db.execute(
            "SELECT t.entry_id, t.target, t.title, t.summary, t.content, e.title, e.language"
            " FROM entry_translations t JOIN entries e ON e.id = t.entry_id WHERE t.status='done'"):
        texts = [title or ""]
        for part in (summary, content):
            try:
                texts += [str(x) for x in json.loads(part or "[]")]
            except ValueError:
                texts.append(part or "")
        if any(banner_kind("", t) for t in texts) or (
                title and original and not_a_translation(original, title, language or "auto", target)):
            entries.append((entry_id, target))
    db.executemany("DELETE FROM entry_translations WHERE entry_id=? AND target=?", entries)
    if bad or entries:
        logging.getLogger("aggregator").warning(
            "dropped %d cached translations and %d entries' translations that were provider messages or "
            "untranslated text, not translations: they are translated again", len(bad), len(entries))


def _to_7(db: DB) -> None:
    """Schema 7 (issue 12): per source, whether its entries' guids changed on each of its last fetches
    ('1'/'0', newest last): a feed whose guids change on most fetches is warned about."""
    db.execute("ALTER TABLE sources ADD COLUMN guid_churn TEXT NOT NULL DEFAULT ''")


def _to_8(db: DB) -> None:
    """Schema 8 (issue 17, cooperating workers on PostgreSQL): ``workers``, the ``run``
    daemons sharing the store (host, pid, since, last heartbeat, what each holds), and
    ``sources.fetched_by``, the worker that fetched a source last. SQLite's single run
    writes neither; ``status`` reads both."""
    db.execute("CREATE TABLE IF NOT EXISTS workers (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,"
               " since TEXT NOT NULL, heartbeat TEXT NOT NULL, holds TEXT NOT NULL DEFAULT '')")
    db.execute("ALTER TABLE sources ADD COLUMN fetched_by TEXT")


def _to_9(db: DB) -> None:
    """Schema 9 (issue 18): ``sources.pages_pending``, set when a fetch stores new or changed
    entries and cleared once the page stage has decided them: a cycle gives the entries of
    the other sources (a 304, an unchanged feed) only their waiting and due pages, instead of
    reading every entry's hash. 1 for every source a store already holds: each is looked at
    in full once."""
    db.execute("ALTER TABLE sources ADD COLUMN pages_pending INTEGER NOT NULL DEFAULT 1")


MIGRATIONS: list[Callable[[DB], None]] = [_to_1, _to_2, _to_3, _to_4, _to_5, _to_6, _to_7, _to_8, _to_9]
SCHEMA_VERSION = len(MIGRATIONS)


# The portable upsert (SQLite 3.24+ and PostgreSQL): SQLite's INSERT OR REPLACE is not PostgreSQL's.
SET_META = upsert("meta", "key, value", "key")
# pg_advisory_xact_lock's key for migrations (any fixed number; the run lock has its own).
_MIGRATION_LOCK = 0x61676D69


def schema_version(db: DB, dialect: str = "sqlite") -> int:
    """The store's schema version; 0 for a new, empty file (or database)."""
    # pg_class read as a table (this statement's snapshot), not to_regclass: inside the
    # migration's transaction, after waiting for another process's migration, to_regclass
    # may answer from a catalog cache taken before that one committed (seen with three
    # workers starting on a new database: the migrations ran twice).
    if dialect == "postgresql" and not db.execute(
            "SELECT COUNT(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'meta' AND n.nspname = current_schema()").fetchone()[0]:
        return 0
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:  # SQLite, no meta table: a new file
        return 0
    return int(row[0]) if row else 0


def backup(db: sqlite3.Connection, dest: Path) -> None:
    """A consistent copy of the open store at ``dest`` (SQLite's online backup API)."""
    target = sqlite3.connect(dest)
    try:
        db.backup(target)
    finally:
        target.close()


def migrate(db: DB, name: str, *, backup_to: Path | None = None, dialect: str = "sqlite") -> int:
    """Bring the store to :data:`SCHEMA_VERSION`; returns the version it had. ``backup_to``:
    the SQLite file, copied beside itself before an upgrade."""
    version = schema_version(db, dialect)
    if version > SCHEMA_VERSION:
        raise StorageError(f"{name}: written by a newer aggregator (schema {version}); upgrade aggregator")
    if version == SCHEMA_VERSION:
        return version
    if version > 0 and backup_to is not None and isinstance(db, sqlite3.Connection):
        backup(db, backup_to.with_name(f"{backup_to.name}.schema-{version}.bak"))
    db.execute("BEGIN IMMEDIATE" if dialect == "sqlite" else "BEGIN")
    try:
        if dialect == "postgresql":
            db.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            version = schema_version(db, dialect)  # another process may have migrated meanwhile
            if version > SCHEMA_VERSION:
                raise StorageError(f"{name}: written by a newer aggregator (schema {version}); upgrade aggregator")
        for step in MIGRATIONS[version:]:
            step(db)
        db.execute(SET_META, ("schema_version", str(SCHEMA_VERSION)))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version
