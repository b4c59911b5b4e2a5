"""Sources: their configured URL, fetch state and validators."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aggregator.exceptions import StorageError
from aggregator.models import EntryData, from_iso, iso
from aggregator.redaction import mask_url
from aggregator.sources.decide import Configured, Intent, Stored, plan_sources
from aggregator.store.backend import DB, PgDB, as_storage_error, db_errors, is_postgres
from aggregator.store.base import _MAX_IDS, StoreBase
from aggregator.store.entries import upsert_entries
from aggregator.store.records import GUID_CHURN_FETCHES, SourceState, StoreResult

log = logging.getLogger("aggregator")


_ENTRY_COUNTS = "SELECT source_id, COUNT(*) FROM entries GROUP BY source_id"


def stored_sources(path: Path | str) -> list[Stored]:
    """The sources a store knows, read without changing anything (``check-config``):
    read-only, no migration (an older store has no names or removals yet)."""
    if is_postgres(path):
        return _stored_sources_pg(str(path))
    path = Path(path)
    try:
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from None
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(sources)")}
        return _stored(db, cols)
    except sqlite3.Error as e:
        raise StorageError(f"{path}: {e}") from None
    finally:
        db.close()


def _stored(db: DB, cols: set[str]) -> list[Stored]:
    if not cols:
        return []
    name = "name" if "name" in cols else "NULL"
    removed = "removed" if "removed" in cols else "NULL"
    counts = dict(db.execute(_ENTRY_COUNTS))
    return [Stored(r[0], r[1], r[2], r[3], counts.get(r[0], 0))
            for r in db.execute(f"SELECT id, config_url, {name}, {removed} FROM sources")]


def _stored_sources_pg(url: str) -> list[Stored]:
    try:
        db = PgDB(url)
    except db_errors() as e:
        raise as_storage_error(mask_url(url), e) from None
    try:
        db.execute("BEGIN READ ONLY")
        cols = {r[0] for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name='sources'"
            " AND table_schema=current_schema()")}
        return _stored(db, cols)
    except db_errors() as e:
        raise as_storage_error(mask_url(url), e) from None
    finally:
        with contextlib.suppress(*db_errors()):
            db.execute("ROLLBACK")
            db.close()




class SourcesStore(StoreBase):
    def sync_sources(self, sources: Iterable[Configured | tuple[str, str, str]], *,
                     now: datetime | None = None) -> list[Intent]:
        """Make the sources table follow the config: what
        :func:`aggregator.sources.decide.plan_sources` decides, applied in one
        transaction. Returns the intents (for the log).

        A source renamed (same url) takes its entries, and so their published ids, to its
        new id; one whose configured URL changed starts over at the new URL (its
        validators and any permanent redirect belong to the old one), with its entries; one
        no longer configured is marked removed (kept until retention drops its articles)."""
        configured = [c if isinstance(c, Configured) else Configured(c[0], c[1], c[2], c[0]) for c in sources]
        now_s = iso(now or datetime.now(UTC))
        with self.transaction():
            rows = self.db.execute("SELECT id, config_url, name, removed, role FROM sources").fetchall()

            def stored(counts: dict[str, int]) -> list[Stored]:
                return [Stored(r[0], r[1], r[2], r[3], counts.get(r[0], 0)) for r in rows]

            intents = plan_sources(configured, stored({}))
            if any(i.action not in ("keep", "add") for i in intents):
                # What the log says of a renamed, moved, restored or removed source: its entries,
                # counted only then (every cycle calls this; nothing changes in almost all).
                intents = plan_sources(configured, stored(dict(self.db.execute(_ENTRY_COUNTS))))
            now_as = {r[0]: (r[4], r[2]) for r in rows}  # id -> (role, name) as stored
            for i in intents:
                if i.action == "add":
                    self.db.execute("INSERT INTO sources(id, url, config_url, role, name) VALUES (?,?,?,?,?)",
                                    (i.id, i.url, i.url, i.role, i.name))
                elif i.action == "rename":
                    self.db.execute("UPDATE sources SET id=?, role=?, name=?, removed=NULL WHERE id=?",
                                    (i.id, i.role, i.name, i.old_id))
                    self.db.execute("UPDATE entries SET source_id=? WHERE source_id=?", (i.id, i.old_id))
                    log.info("source %s renamed %s: its %d entries keep their ids", i.old_id, i.id, i.entries)
                elif i.action == "url":
                    self.db.execute(
                        "UPDATE sources SET url=?, config_url=?, role=?, name=?, removed=NULL, etag=NULL,"
                        " last_modified=NULL, disabled=NULL, consecutive_failures=0, next_fetch=NULL WHERE id=?",
                        (i.url, i.url, i.role, i.name, i.id))
                elif i.action == "remove":
                    self.db.execute("UPDATE sources SET removed=? WHERE id=?", (now_s, i.id))
                    log.info("source %s is no longer in the config: not fetched, its entries leave the publication",
                             i.id)
                elif i.action == "restore" or now_as.get(i.id) != (i.role, i.name):  # keep: when it changed
                    self.db.execute("UPDATE sources SET role=?, name=?, removed=NULL WHERE id=?",
                                    (i.role, i.name, i.id))
        return intents

    def source_names(self) -> dict[str, str]:
        """id -> the name it was last configured with (removed sources included)."""
        return {r[0]: r[1] for r in self.db.execute("SELECT id, name FROM sources WHERE name IS NOT NULL")}

    def removed_source_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM sources WHERE removed IS NOT NULL")}

    def forget_empty_removed_sources(self) -> list[str]:
        """Delete the removed sources that have no entries left; returns their ids."""
        with self.transaction():
            gone = [r[0] for r in self.db.execute(
                "SELECT id FROM sources WHERE removed IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM entries WHERE source_id=sources.id)")]
            self.db.executemany("DELETE FROM sources WHERE id=?", [(g,) for g in gone])
        return gone

    def source_states(self, ids: Sequence[str] | None = None, *, counts: bool = True) -> dict[str, SourceState]:
        """Every source's state, or only those of ``ids`` (a daemon's job for one source
        need not count every source's entries: 2,000 jobs doing so made a cold start
        quadratic). ``counts=False``: ``entry_count`` is None, not counted (a cycle does
        not need it: 7–17 ms of index scan for 50,000 entries)."""
        if ids is not None and not ids:
            return {}
        if ids is not None and len(ids) > _MAX_IDS:
            wanted = set(ids)
            return {k: v for k, v in self.source_states(counts=counts).items() if k in wanted}
        args = tuple(ids or ())
        within = "" if ids is None else f" WHERE {{}} IN ({','.join('?' * len(ids))})"
        counted: dict[str, int] | None = dict(self.db.execute(
            f"SELECT source_id, COUNT(*) FROM entries{within.format('source_id')} GROUP BY source_id",
            args)) if counts else None
        out = {}
        for r in self.db.execute(
            "SELECT id, url, config_url, role, title, etag, last_modified, last_fetch, last_success,"
            " last_status, last_error, consecutive_failures, next_fetch, disabled, last_new, last_updated,"
            f" name, removed, last_content, guid_churn FROM sources{within.format('id')}", args
        ):
            out[r[0]] = SourceState(
                id=r[0], url=r[1], config_url=r[2], role=r[3], title=r[4], etag=r[5],
                last_modified=r[6], last_fetch=from_iso(r[7]), last_success=from_iso(r[8]),
                last_status=r[9], last_error=r[10], consecutive_failures=r[11],
                next_fetch=from_iso(r[12]), disabled=r[13], last_new=r[14], last_updated=r[15],
                entry_count=counted.get(r[0], 0) if counted is not None else None, name=r[16], removed=r[17],
                last_content=from_iso(r[18]), guid_churn=r[19] or "",
            )
        return out

    def record_success(self, source_id: str, role: str, entries: Sequence[EntryData] | None, *,
                       now: datetime, next_fetch: datetime, status: int,
                       etag: str | None, last_modified: str | None, url: str | None = None,
                       title: str | None = None, warning: str | None = None) -> StoreResult:
        """Store a fetched feed's entries and the source's new state in one transaction.

        ``entries`` is None for a 304 Not Modified."""
        new = updated = unchanged = rekeyed = 0
        churn = ""
        with self.transaction():
            if entries:
                new, updated, unchanged, rekeyed = upsert_entries(self.db, source_id, role, entries, now)
                row = self.db.execute("SELECT guid_churn FROM sources WHERE id=?", (source_id,)).fetchone()
                churn = ((row[0] if row else "") + ("1" if rekeyed else "0"))[-GUID_CHURN_FETCHES:]
                self.db.execute("UPDATE sources SET guid_churn=? WHERE id=?", (churn, source_id))
            # A success clears a 410's "disabled": the feed is back (run --once --all tried it).
            sets = ["last_fetch=?", "last_success=?", "last_status=?", "last_error=?",
                    "consecutive_failures=0", "next_fetch=?", "last_new=?", "last_updated=?", "disabled=NULL"]
            args: list[Any] = [iso(now), iso(now), status, warning, iso(next_fetch), new, updated]
            if new or updated:
                sets.append("pages_pending=1")  # their pages are decided by the page stage (PagesStore)
            if entries is not None:
                # Every entry of this feed now has last_seen == now: what it holds, which a
                # later 304 or failure leaves "still there" (retention).
                sets.append("last_content=?")
                args.append(iso(now))
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
        return StoreResult(new, updated, unchanged, rekeyed, churn)

    def record_not_modified(self, answers: Sequence[tuple[str, datetime, str | None, str | None]], *,
                            now: datetime) -> None:
        """What :meth:`record_success` stores for a plain 304 Not Modified (no redirect, no
        warning), for many sources in one transaction: (source id, next fetch, etag,
        last modified). A cycle where nothing changed writes this and nothing else; one
        transaction per source cost more than all its conditional requests."""
        done = ("UPDATE sources SET last_fetch=?, last_success=?, last_status=304, last_error=NULL,"
                " consecutive_failures=0, next_fetch=?, last_new=0, last_updated=0, disabled=NULL")
        at = iso(now)
        with self.transaction():
            self.db.executemany(done + ", etag=?, last_modified=? WHERE id=?",
                                [(at, at, iso(nxt), etag, lm, sid) for sid, nxt, etag, lm in answers if etag or lm])
            self.db.executemany(done + " WHERE id=?",
                                [(at, at, iso(nxt), sid) for sid, nxt, etag, lm in answers if not (etag or lm)])

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
