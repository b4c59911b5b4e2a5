"""Retention deletes, compaction and size."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime

from aggregator.exceptions import StorageError
from aggregator.models import from_iso, iso
from aggregator.store.base import StoreBase, _chunks


class MaintenanceStore(StoreBase):
    def outlet_articles_older_than(self, cutoff: datetime) -> list[tuple[int, datetime, datetime, bool]]:
        """(id, date, last seen, held) of the outlet articles dated before ``cutoff``;
        held: its feed held it at its last 200 (the feed has answered only 304s or failed
        since), and its source is still configured and not disabled (410 Gone)."""
        out = []
        for r in self.db.execute(
                "SELECT e.id, e.sort_date, e.last_seen, s.removed IS NULL AND s.disabled IS NULL"
                " AND s.last_content IS NOT NULL AND e.last_seen >= s.last_content"
                " FROM entries e LEFT JOIN sources s ON s.id = e.source_id"
                " WHERE e.role='outlet' AND e.sort_date<?", (iso(cutoff),)):
            try:
                out.append((r[0], from_iso(r[1]), from_iso(r[2]), bool(r[3])))
            except ValueError:
                continue  # an unreadable row is reported by status, never pruned blindly
        return out  # type: ignore[return-value]

    def cited_article_ids(self) -> set[int]:
        """Articles some post cites now, or cited in an earlier cycle."""
        return ({r[0] for r in self.db.execute("SELECT DISTINCT article_id FROM matches")}
                | {r[0] for r in self.db.execute("SELECT id FROM entries WHERE cited=1")})

    def cached_translations_before(self, when: datetime) -> bool:
        """Whether the translation cache holds any row created before ``when``."""
        return self.db.execute("SELECT 1 FROM translation_cache WHERE created < ? LIMIT 1",
                               (iso(when),)).fetchone() is not None

    def prune_translation_cache(self, keep: set[str], *, created_before: datetime) -> int:
        """Delete the cached translations created before ``created_before`` whose text
        hash is not in ``keep``. Returns how many."""
        gone = [r[0] for r in self.db.execute(
            "SELECT DISTINCT text_hash FROM translation_cache WHERE created<?", (iso(created_before),))
            if r[0] not in keep]
        deleted = 0
        with self.transaction():
            for chunk in _chunks(gone):
                deleted += self.db.execute(
                    f"DELETE FROM translation_cache WHERE text_hash IN ({','.join('?' * len(chunk))})",
                    chunk).rowcount
        return deleted

    def delete_articles(self, ids: Sequence[int], text_hashes: Iterable[str] = ()) -> int:
        """Forget outlet articles with what hangs off them (translations, publication
        records, and the cached embeddings and translations of their texts), in one
        transaction. An article some post cites, or cited once, is never deleted, whatever
        ``ids`` says."""
        deleted = 0
        hashes = list(text_hashes)
        with self.transaction():
            for chunk in _chunks(list(ids)):
                marks = ",".join("?" * len(chunk))
                keep = (f"id IN ({marks}) AND role='outlet' AND cited=0"
                        " AND id NOT IN (SELECT article_id FROM matches)")
                gone = [r[0] for r in self.db.execute(f"SELECT id FROM entries WHERE {keep}", chunk)]
                if not gone:
                    continue
                g = ",".join("?" * len(gone))
                self.db.execute(f"DELETE FROM entry_translations WHERE entry_id IN ({g})", gone)
                self.db.execute(f"DELETE FROM publications WHERE entry_id IN ({g})", gone)
                self.db.execute(f"DELETE FROM pages WHERE entry_id IN ({g})", gone)
                deleted += self.db.execute(f"DELETE FROM entries WHERE id IN ({g})", gone).rowcount
            for chunk in _chunks(hashes):
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM embeddings WHERE text_hash IN ({marks})", chunk)
                self.db.execute(f"DELETE FROM translation_cache WHERE text_hash IN ({marks})", chunk)
        return deleted

    def free_pages(self) -> int:
        """SQLite's free pages (what compaction gives back). PostgreSQL reclaims dead rows
        itself (autovacuum): 0, so retention never compacts it."""
        if self.dialect != "sqlite":
            return 0
        return int(self.db.execute("PRAGMA freelist_count").fetchone()[0])

    def compact(self) -> None:
        """Give free pages back to the file system (VACUUM), and empty the WAL (SQLite);
        PostgreSQL: a plain VACUUM ANALYZE (autovacuum's work, done now)."""
        try:
            self.db.execute("VACUUM" if self.dialect == "sqlite" else "VACUUM (ANALYZE)")
            if self.dialect == "sqlite":
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as e:  # busy: another connection is writing; next time
            raise StorageError(f"{self.path}: could not compact the store: {e}") from None

    def size_bytes(self) -> int:
        if self.dialect != "sqlite":
            return int(self.db.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(str(self.path) + suffix)
        return total
