"""The store's plumbing: the connection, transactions, meta, migrations on open.

One file, WAL journal. Every source update (its entries and its fetch state, ETag
included) is one transaction, so a crash leaves either the old or the new state of a
source, never half of it; and because the conditional-GET validators roll back with
the entries, a lost transaction is simply fetched again.

``synchronous=NORMAL`` in WAL mode survives any process crash (kill -9) without loss;
after a power cut the last transactions may roll back, together with their validators,
so the next fetch brings them back. See docs/storage.md.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from aggregator.exceptions import StorageError, storage_error
from aggregator.models import Entry, from_iso
from aggregator.store.integrity import quick_check
from aggregator.store.migrations import migrate

# Stores this process has found whole (path, device, inode): checked once per process,
# and again when the file is replaced (a restored backup) or an error says it is damaged.
_checked: set[tuple[str, int, int]] = set()


def _identity(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_dev, st.st_ino) if st.st_size else None


def forget_check(path: str | os.PathLike[str]) -> None:
    """Check the store at ``path`` again when it is next opened (an error said it is damaged)."""
    key = str(Path(path))
    for item in [c for c in _checked if c[0] == key]:
        _checked.discard(item)

_ARTICLE_TEXT = "substr(CASE WHEN summary != '' THEN summary ELSE content END, 1, ?)"
_ENTRY_COLUMNS = ("id, source_id, role, key, link, title, summary, content, author, categories, "
                  "published, updated, first_seen, language, image, published_offset, canonical_link")


class StoreBase:
    """The connection and its plumbing. Not shared between threads: one per thread."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                           check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            # Before anything writes (the WAL switch, a migration, the cycle): a damaged
            # file is left exactly as it is, for a backup or an expert to recover.
            identity = _identity(self.path)
            if identity is not None and identity not in _checked:
                problems = quick_check(db)
                if problems:
                    raise storage_error(self.path, sqlite3.DatabaseError(
                        f"database disk image is malformed; quick_check: {problems[0]}"))
                _checked.add(identity)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            migrate(db, self.path)
        except StorageError:
            if db is not None:
                db.close()
            raise
        except sqlite3.DatabaseError as e:
            if db is not None:
                db.close()
            raise storage_error(self.path, e) from None
        except OSError as e:
            raise StorageError(f"{self.path}: cannot create the store: {e}") from None

    # -- plumbing --------------------------------------------------------------------
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")  # a full disk may fail here too: rolled back below
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): a ROLLBACK
            # then fails and would hide the error that matters.
            if self.db.in_transaction:
                with suppress(sqlite3.DatabaseError):
                    self.db.execute("ROLLBACK")
            raise

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))


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
