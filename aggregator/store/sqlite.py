"""The SQLite store: a thin shell, no decisions.

One file, WAL journal. Every source update (its entries and its fetch state, ETag
included) is one transaction, so a crash leaves either the old or the new state of a
source, never half of it; and because the conditional-GET validators roll back with
the entries, a lost transaction is simply fetched again.

``synchronous=NORMAL`` in WAL mode survives any process crash (kill -9) without loss;
after a power cut the last transactions may roll back, together with their validators,
so the next fetch brings them back. See docs/storage.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aggregator.exceptions import StorageError, StoreLockedError
from aggregator.models import Entry, EntryData, Match, from_iso, iso
from aggregator.urls import canonical_url

SCHEMA_VERSION = 1

_SCHEMA = """
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

_ARTICLE_TEXT = "substr(CASE WHEN summary != '' THEN summary ELSE content END, 1, ?)"
_ENTRY_COLUMNS = ("id, source_id, role, key, link, title, summary, content, author, categories, "
                  "published, updated, first_seen, language, image, published_offset, canonical_link")


@dataclass(frozen=True, slots=True)
class SourceState:
    id: str
    url: str
    config_url: str
    role: str
    title: str | None
    etag: str | None
    last_modified: str | None
    last_fetch: datetime | None
    last_success: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    next_fetch: datetime | None
    disabled: str | None
    last_new: int
    last_updated: int
    entry_count: int = 0


@dataclass(frozen=True, slots=True)
class StoreResult:
    new: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class EntryTranslation:
    entry_id: int
    target: str
    input_hash: str
    status: str  # done | pending | failed
    provider: str | None
    error: str | None
    attempts: int
    retry_at: datetime | None
    updated: datetime
    title: str | None
    summary: str | None
    content: str | None


@dataclass(frozen=True, slots=True)
class Publication:
    entry_id: int
    pub_id: str
    first_published: datetime
    updated: datetime
    visible_hash: str


def entry_hash(e: EntryData) -> str:
    # One update of the joined parts: the same digest as updating part by part.
    parts = (e.link or "", e.title, e.summary, e.content, e.author or "", "\x1f".join(e.categories),
             iso(e.published) or "", iso(e.updated) or "", e.image or "", e.language or "", "")
    return hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class Store:
    """The SQLite store. Not shared between threads: one per thread that needs it."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self.path}: cannot open the store: {e}") from None
        except OSError as e:
            raise StorageError(f"{self.path}: cannot create the store: {e}") from None

    # -- plumbing --------------------------------------------------------------------
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    def _migrate(self) -> None:
        row = None
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.OperationalError:
            pass
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StorageError(f"{self.path}: written by a newer aggregator (schema {row[0]}); upgrade aggregator")
        with self.transaction():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self.db.execute(stmt)
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- sources ---------------------------------------------------------------------
    def sync_sources(self, sources: Iterable[tuple[str, str, str]]) -> None:
        """Make the sources table know every configured (id, url, role).

        A source whose configured URL changed starts over at the new URL (its
        validators and any permanent redirect belong to the old one)."""
        with self.transaction():
            for sid, url, role in sources:
                row = self.db.execute("SELECT config_url FROM sources WHERE id=?", (sid,)).fetchone()
                if row is None:
                    self.db.execute("INSERT INTO sources(id, url, config_url, role) VALUES (?,?,?,?)",
                                    (sid, url, url, role))
                elif row[0] != url:
                    self.db.execute(
                        "UPDATE sources SET url=?, config_url=?, role=?, etag=NULL, last_modified=NULL,"
                        " disabled=NULL, consecutive_failures=0, next_fetch=NULL WHERE id=?",
                        (url, url, role, sid))
                else:
                    self.db.execute("UPDATE sources SET role=? WHERE id=?", (role, sid))

    def source_states(self) -> dict[str, SourceState]:
        counts = dict(self.db.execute("SELECT source_id, COUNT(*) FROM entries GROUP BY source_id"))
        out = {}
        for r in self.db.execute(
            "SELECT id, url, config_url, role, title, etag, last_modified, last_fetch, last_success,"
            " last_status, last_error, consecutive_failures, next_fetch, disabled, last_new, last_updated"
            " FROM sources"
        ):
            out[r[0]] = SourceState(
                id=r[0], url=r[1], config_url=r[2], role=r[3], title=r[4], etag=r[5],
                last_modified=r[6], last_fetch=from_iso(r[7]), last_success=from_iso(r[8]),
                last_status=r[9], last_error=r[10], consecutive_failures=r[11],
                next_fetch=from_iso(r[12]), disabled=r[13], last_new=r[14], last_updated=r[15],
                entry_count=counts.get(r[0], 0),
            )
        return out

    def record_success(self, source_id: str, role: str, entries: Sequence[EntryData] | None, *,
                       now: datetime, next_fetch: datetime, status: int,
                       etag: str | None, last_modified: str | None, url: str | None = None,
                       title: str | None = None, warning: str | None = None) -> StoreResult:
        """Store a fetched feed's entries and the source's new state in one transaction.

        ``entries`` is None for a 304 Not Modified."""
        new = updated = unchanged = 0
        with self.transaction():
            if entries:
                new, updated, unchanged = self._upsert_entries(source_id, role, entries, now)
            # A success clears a 410's "disabled": the feed is back (run --once --all tried it).
            sets = ["last_fetch=?", "last_success=?", "last_status=?", "last_error=?",
                    "consecutive_failures=0", "next_fetch=?", "last_new=?", "last_updated=?", "disabled=NULL"]
            args: list[Any] = [iso(now), iso(now), status, warning, iso(next_fetch), new, updated]
            if entries is not None or etag or last_modified:
                sets += ["etag=?", "last_modified=?"]
                args += [etag, last_modified]
            if url:
                sets.append("url=?")
                args.append(url)
            if title:
                sets.append("title=?")
                args.append(title)
            self.db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE id=?", (*args, source_id))
        return StoreResult(new, updated, unchanged)

    def reschedule(self, source_id: str, next_fetch: datetime) -> None:
        """Move a source's next fetch (the daemon does when a reload shortens its interval)."""
        with self.transaction():
            self.db.execute("UPDATE sources SET next_fetch=? WHERE id=?", (iso(next_fetch), source_id))

    def record_failure(self, source_id: str, error: str, *, now: datetime, next_fetch: datetime,
                       status: int | None = None, disable: str | None = None,
                       url: str | None = None) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE sources SET last_fetch=?, last_status=?, last_error=?,"
                " consecutive_failures=consecutive_failures+1, next_fetch=?, disabled=COALESCE(?, disabled),"
                " url=COALESCE(?, url), last_new=0, last_updated=0 WHERE id=?",
                (iso(now), status, error[:2000], iso(next_fetch), disable, url, source_id))

    def _upsert_entries(self, source_id: str, role: str, entries: Sequence[EntryData],
                        now: datetime) -> tuple[int, int, int]:
        keys = [e.key for e in entries]
        existing: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(keys, 500):
            q = f"SELECT key, id, hash FROM entries WHERE source_id=? AND key IN ({','.join('?' * len(chunk))})"
            for k, i, h in self.db.execute(q, (source_id, *chunk)):
                existing[k] = (i, h)
        new = updated = unchanged = 0
        now_s = iso(now)
        inserts, updates, touches = [], [], []
        for e in entries:
            h = entry_hash(e)
            canon = canonical_url(e.link) if e.link else None
            row = (e.link, canon, e.title, e.summary, e.content, e.author,
                   json.dumps(list(e.categories), ensure_ascii=False), iso(e.published), iso(e.updated),
                   e.published_offset, e.image, e.language, h)
            if e.key not in existing:
                sort_date = iso(e.published or e.updated or now)
                inserts.append((source_id, role, e.key, *row, now_s, now_s, sort_date))
                new += 1
            elif existing[e.key][1] != h:
                sort_date = iso(e.published or e.updated) or None
                updates.append((*row, now_s, sort_date, existing[e.key][0]))
                updated += 1
            else:
                touches.append((now_s, existing[e.key][0]))
                unchanged += 1
        if inserts:
            self.db.executemany(
                "INSERT INTO entries(source_id, role, key, link, canonical_link, title, summary, content,"
                " author, categories, published, updated, published_offset, image, language, hash,"
                " first_seen, last_seen, sort_date) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                inserts)
        if updates:
            # A changed entry keeps its row (and so its published id); matching runs again.
            self.db.executemany(
                "UPDATE entries SET link=?, canonical_link=?, title=?, summary=?, content=?, author=?,"
                " categories=?, published=?, updated=?, published_offset=?, image=?, language=?, hash=?,"
                " last_seen=?, sort_date=COALESCE(?, sort_date), match_state=NULL WHERE id=?",
                updates)
        if touches:
            self.db.executemany("UPDATE entries SET last_seen=? WHERE id=?", touches)
        return new, updated, unchanged

    # -- entries ---------------------------------------------------------------------
    def _entries(self, where: str, args: Sequence[Any] = ()) -> list[Entry]:
        rows = self.db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE {where}", args).fetchall()
        return [_entry(r) for r in rows]

    def get_entry(self, entry_id: int) -> Entry | None:
        got = self._entries("id=?", (entry_id,))
        return got[0] if got else None

    def entries_by_ids(self, ids: Iterable[int]) -> dict[int, Entry]:
        out: dict[int, Entry] = {}
        for chunk in _chunks(list(ids), 500):
            for e in self._entries(f"id IN ({','.join('?' * len(chunk))})", chunk):
                out[e.id] = e
        return out

    def find_entries_by_link(self, url: str) -> list[Entry]:
        return self._entries("canonical_link=? ORDER BY id", (canonical_url(url),))

    def count_entries(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT role, COUNT(*) FROM entries GROUP BY role"))

    def posts_to_match(self, *, new_articles: bool, late_after: datetime) -> list[Entry]:
        """Blog posts never matched (or changed since); and, when new articles arrived,
        posts first seen after ``late_after`` that still have an unresolved citation
        (the article they cite may be among the new ones)."""
        posts = self._entries("role='blog' AND match_state IS NULL ORDER BY sort_date")
        if new_articles:
            posts += self._entries(
                "role='blog' AND match_state='unresolved' AND first_seen>=? ORDER BY sort_date",
                (iso(late_after),))
        return posts

    def articles_between(self, start: datetime, end: datetime) -> list[Entry]:
        return self._entries("role='outlet' AND sort_date>=? AND sort_date<=? ORDER BY id",
                             (iso(start), iso(end)))

    def article_heads_between(self, start: datetime, end: datetime, chars: int) -> list[Entry]:
        """:meth:`articles_between` with only the first ``chars`` characters of each
        article's summary (its content when it has no summary; none with ``chars=0``)
        and no content: what the matcher reads, without loading every full-content
        article into memory. :meth:`article_text` gives one article's text later."""
        cols = _ENTRY_COLUMNS.replace("summary, content", f"{_ARTICLE_TEXT}, ''")
        rows = self.db.execute(
            f"SELECT {cols} FROM entries WHERE role='outlet' AND sort_date>=? AND sort_date<=? ORDER BY id",
            (chars, iso(start), iso(end))).fetchall()
        return [_entry(r) for r in rows]

    def article_text(self, entry_id: int, chars: int) -> str:
        """The first ``chars`` characters of an entry's summary (its content when it has
        no summary); '' for an unknown id."""
        row = self.db.execute(f"SELECT {_ARTICLE_TEXT} FROM entries WHERE id=?", (chars, entry_id)).fetchone()
        return row[0] if row else ""

    def match_state(self, entry_id: int) -> str | None:
        """``resolved``, ``unresolved``, or None for a post never matched (or changed since)."""
        row = self.db.execute("SELECT match_state FROM entries WHERE id=?", (entry_id,)).fetchone()
        return row[0] if row else None

    def latest_outlet_first_seen(self) -> datetime | None:
        row = self.db.execute("SELECT MAX(first_seen) FROM entries WHERE role='outlet'").fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def newest_entries(self, roles: Sequence[str], limit: int) -> list[Entry]:
        q = ",".join("?" * len(roles))
        return self._entries(f"role IN ({q}) ORDER BY sort_date DESC, id DESC LIMIT ?", (*roles, limit))

    def entries_needing_translation(self, target: str, now: datetime, limit: int = 100_000) -> list[Entry]:
        """Entries not in ``target`` with no translation yet, or one due for retry."""
        return self._entries(
            "(language IS NULL OR language != ?) AND id NOT IN ("
            "  SELECT entry_id FROM entry_translations WHERE target=? AND"
            "  (status='done' OR (retry_at IS NOT NULL AND retry_at > ?)))"
            " ORDER BY role='blog' DESC, sort_date DESC LIMIT ?",
            (target, target, iso(now), limit))

    # -- matches ---------------------------------------------------------------------
    def set_matches(self, post_id: int, matches: Sequence[Match], state: str, now: datetime) -> bool:
        """Replace a post's matches. Returns True when they changed."""
        with self.transaction():
            before = {(r[0], r[1]) for r in self.db.execute(
                "SELECT article_id, evidence FROM matches WHERE post_id=?", (post_id,))}
            after = {(m.article_id, m.evidence) for m in matches}
            if before != after:
                self.db.execute("DELETE FROM matches WHERE post_id=?", (post_id,))
                self.db.executemany(
                    "INSERT INTO matches(post_id, article_id, score, method, evidence, created)"
                    " VALUES (?,?,?,?,?,?)",
                    [(m.post_id, m.article_id, m.score, m.method, m.evidence, iso(now)) for m in matches])
            self.db.execute("UPDATE entries SET match_state=? WHERE id=?", (state, post_id))
        return before != after

    def matches_for(self, post_ids: Iterable[int]) -> dict[int, list[Match]]:
        out: dict[int, list[Match]] = {}
        for chunk in _chunks(list(post_ids), 500):
            for r in self.db.execute(
                "SELECT post_id, article_id, score, method, evidence FROM matches"
                f" WHERE post_id IN ({','.join('?' * len(chunk))}) ORDER BY post_id, score DESC, article_id",
                chunk,
            ):
                out.setdefault(r[0], []).append(Match(r[0], r[1], r[2], r[3], r[4]))
        return out

    def all_matches(self) -> list[Match]:
        return [Match(*r) for r in self.db.execute(
            "SELECT post_id, article_id, score, method, evidence FROM matches ORDER BY post_id, article_id")]

    # -- translation -----------------------------------------------------------------
    def cached_translations(self, texts: Iterable[str], source: str, target: str) -> dict[str, tuple[str, str]]:
        """text -> (translation, provider) for the texts already translated."""
        by_hash = {text_hash(t): t for t in texts}
        out: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(list(by_hash), 500):
            for h, tr, prov in self.db.execute(
                "SELECT text_hash, translation, provider FROM translation_cache WHERE source_lang=?"
                f" AND target_lang=? AND text_hash IN ({','.join('?' * len(chunk))})",
                (source, target, *chunk),
            ):
                out[by_hash[h]] = (tr, prov)
        return out

    def cache_translation(self, text: str, source: str, target: str, translation: str,
                          provider: str, now: datetime) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO translation_cache(text_hash, source_lang, target_lang, text,"
                " translation, provider, created) VALUES (?,?,?,?,?,?,?)",
                (text_hash(text), source, target, text, translation, provider, iso(now)))

    def translation_cache_stats(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT provider, COUNT(*) FROM translation_cache GROUP BY provider"))

    def set_entry_translation(self, t: EntryTranslation) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO entry_translations(entry_id, target, input_hash, status, provider,"
                " error, attempts, retry_at, updated, title, summary, content) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (t.entry_id, t.target, t.input_hash, t.status, t.provider, t.error, t.attempts,
                 iso(t.retry_at), iso(t.updated), t.title, t.summary, t.content))

    def entry_translations(self, ids: Iterable[int], target: str) -> dict[int, EntryTranslation]:
        out: dict[int, EntryTranslation] = {}
        for chunk in _chunks(list(ids), 500):
            for r in self.db.execute(
                "SELECT entry_id, target, input_hash, status, provider, error, attempts, retry_at, updated,"
                " title, summary, content FROM entry_translations WHERE target=? AND"
                f" entry_id IN ({','.join('?' * len(chunk))})", (target, *chunk),
            ):
                out[r[0]] = EntryTranslation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], from_iso(r[7]),
                                             from_iso(r[8]) or datetime.min, r[9], r[10], r[11])
        return out

    def translation_backlog(self, target: str) -> dict[str, int]:
        rows = dict(self.db.execute(
            "SELECT status, COUNT(*) FROM entry_translations WHERE target=? GROUP BY status", (target,)))
        untouched = self.db.execute(
            "SELECT COUNT(*) FROM entries WHERE (language IS NULL OR language != ?) AND id NOT IN"
            " (SELECT entry_id FROM entry_translations WHERE target=?)", (target, target)).fetchone()[0]
        rows["untranslated"] = untouched
        return rows

    # -- embeddings ------------------------------------------------------------------
    def embeddings(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """text hash -> stored vector bytes, for the texts embedded before."""
        out: dict[str, bytes] = {}
        for chunk in _chunks(list(hashes), 500):
            out.update(self.db.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE text_hash IN ({','.join('?' * len(chunk))})",
                chunk))
        return out

    def put_embeddings(self, rows: Sequence[tuple[str, bytes]]) -> None:
        with self.transaction():
            self.db.executemany("INSERT OR REPLACE INTO embeddings(text_hash, vector) VALUES (?,?)", rows)

    # -- publications ----------------------------------------------------------------
    def publications(self, ids: Iterable[int]) -> dict[int, Publication]:
        out: dict[int, Publication] = {}
        for chunk in _chunks(list(ids), 500):
            for r in self.db.execute(
                "SELECT entry_id, pub_id, first_published, updated, visible_hash FROM publications"
                f" WHERE entry_id IN ({','.join('?' * len(chunk))})", chunk,
            ):
                out[r[0]] = Publication(r[0], r[1], from_iso(r[2]), from_iso(r[3]), r[4])  # type: ignore[arg-type]
        return out

    def save_publications(self, pubs: Sequence[Publication]) -> None:
        if not pubs:
            return
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO publications(entry_id, pub_id, first_published, updated, visible_hash)"
                " VALUES (?,?,?,?,?)",
                [(p.entry_id, p.pub_id, iso(p.first_published), iso(p.updated), p.visible_hash) for p in pubs])

    # -- retention -------------------------------------------------------------------
    def outlet_articles_older_than(self, cutoff: datetime) -> list[tuple[int, datetime, datetime]]:
        """(id, date, last seen) of the outlet articles dated before ``cutoff``."""
        return [(r[0], from_iso(r[1]), from_iso(r[2])) for r in self.db.execute(  # type: ignore[misc]
            "SELECT id, sort_date, last_seen FROM entries WHERE role='outlet' AND sort_date<?", (iso(cutoff),))]

    def cited_article_ids(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT article_id FROM matches")}

    def delete_articles(self, ids: Sequence[int], text_hashes: Iterable[str] = ()) -> int:
        """Forget outlet articles with what hangs off them (translations, publication
        records, and the cached embeddings and translations of their texts), in one
        transaction. An article some post cites is never deleted, whatever ``ids`` says."""
        deleted = 0
        hashes = list(text_hashes)
        with self.transaction():
            for chunk in _chunks(list(ids), 500):
                marks = ",".join("?" * len(chunk))
                keep = f"id IN ({marks}) AND role='outlet' AND id NOT IN (SELECT article_id FROM matches)"
                gone = [r[0] for r in self.db.execute(f"SELECT id FROM entries WHERE {keep}", chunk)]
                if not gone:
                    continue
                g = ",".join("?" * len(gone))
                self.db.execute(f"DELETE FROM entry_translations WHERE entry_id IN ({g})", gone)
                self.db.execute(f"DELETE FROM publications WHERE entry_id IN ({g})", gone)
                deleted += self.db.execute(f"DELETE FROM entries WHERE id IN ({g})", gone).rowcount
            for chunk in _chunks(hashes, 500):
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM embeddings WHERE text_hash IN ({marks})", chunk)
                self.db.execute(f"DELETE FROM translation_cache WHERE text_hash IN ({marks})", chunk)
        return deleted

    def free_pages(self) -> int:
        return int(self.db.execute("PRAGMA freelist_count").fetchone()[0])

    def compact(self) -> None:
        """Give free pages back to the file system (VACUUM), and empty the WAL."""
        try:
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as e:  # busy: another connection is writing; next time
            raise StorageError(f"{self.path}: could not compact the store: {e}") from None

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return total


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _entry(r: Sequence[Any]) -> Entry:
    return Entry(
        id=r[0], source_id=r[1], role=r[2], key=r[3], link=r[4], title=r[5], summary=r[6], content=r[7],
        author=r[8], categories=tuple(json.loads(r[9] or "[]")), published=from_iso(r[10]),
        updated=from_iso(r[11]), first_seen=from_iso(r[12]),  # type: ignore[arg-type]
        language=r[13], image=r[14], published_offset=r[15], canonical_link=r[16],
    )


def _chunks(items: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class StoreLock:
    """An exclusive lock beside the store, held by the one ``run`` working on it.

    ``flock`` is released by the kernel when the process dies, so a crash never leaves
    a stale lock behind. The lock file says who holds it (pid, kind of run, since when),
    for the message a second run prints and for ``status``."""

    def __init__(self, db_path: Path):
        self.path = Path(str(db_path) + ".lock")
        self._fd: int | None = None

    def acquire(self, what: str = "aggregator run", *, now: datetime | None = None,
                attempts: int = 5) -> "StoreLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # ``holder()`` (status) takes a shared lock for an instant: try again briefly.
                if attempt + 1 < attempts:
                    time.sleep(0.1)
                    continue
                try:
                    holder = os.read(fd, 300).decode(errors="replace").strip()
                finally:
                    os.close(fd)
                who = f" ({holder})" if holder else ""
                raise StoreLockedError(
                    f"another aggregator run is already working on {self.path.with_suffix('')}{who}; "
                    "only one run (daemon or --once) may use a store at a time") from None
        since = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what} since {since}".encode(), 0)
        self._fd = fd
        return self

    def holder(self) -> str | None:
        """Who holds the lock now, or None when no run does."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.read(fd, 300).decode(errors="replace").strip() or "a running aggregator"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # nobody holds it: say so
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "StoreLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
