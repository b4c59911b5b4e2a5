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
            with contextlib.suppress(OSError):
                total += os.path.getsize(str(self.path) + suffix)
        return total
