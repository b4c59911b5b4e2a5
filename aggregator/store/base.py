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
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aggregator.exceptions import StorageError, StoreGone
from aggregator.models import Entry, from_iso
from aggregator.store.migrations import migrate

log = logging.getLogger("aggregator")

# An article's text for the matcher: its page's body when one was fetched (its feed gave
# an excerpt or nothing), else its summary, else its content.
_ARTICLE_TEXT = ("substr(CASE WHEN page_text != '' THEN page_text WHEN summary != '' THEN summary "
                 "ELSE content END, 1, ?)")
_ENTRY_COLUMNS = ("id, source_id, role, key, link, title, summary, content, author, categories, "
                  "published, updated, first_seen, language, image, published_offset, canonical_link, source_site, "
                  "page_text, page_from, page_fetched")


class StoreBase:
    """The connection and its plumbing. Not shared between threads: one per thread.

    ``expect``: the identity (device, inode) the store file must have, for a process that
    keeps working on one store (the daemon opens it per job): a file that has vanished
    or been replaced is :class:`StoreGone`, never a new, empty store in its place."""

    def __init__(self, path: str | os.PathLike[str], *, expect: tuple[int, int] | None = None):
        self.path = Path(path)
        try:
            if expect is not None:
                self._check(expect)
                # mode=rw: should the file vanish between the check and here, SQLite
                # refuses rather than create an empty one.
                self.db = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=rw", uri=True,
                                          isolation_level=None, timeout=30, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                          check_same_thread=False)
            st = os.stat(self.path)
            self.identity: tuple[int, int] = (st.st_dev, st.st_ino)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=30000")
            migrate(self.db, self.path)
        except sqlite3.OperationalError as e:
            if expect is not None and not self.path.exists():
                raise StoreGone(self._gone_message("has vanished")) from None
            raise StorageError(f"{self.path}: cannot open the store: {e}") from None
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{self.path}: cannot open the store: {e}") from None
        except OSError as e:
            raise StorageError(f"{self.path}: cannot create the store: {e}") from None

    # -- identity --------------------------------------------------------------------
    def _gone_message(self, what: str) -> str:
        again = ("until the file is back" if what == "has vanished"
                 else "until the original file is back under its name")
        return (f"store {self.path} {what} under the running process (deleted, moved or restored over?): "
                f"nothing is fetched or published {again}, or until aggregator is restarted (which starts on "
                "what is there then)")

    def _check(self, expect: tuple[int, int]) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreGone(self._gone_message("has vanished")) from None
        if (st.st_dev, st.st_ino) != expect:
            raise StoreGone(self._gone_message("has been replaced by another file"))

    def check_identity(self) -> None:
        """Raise :class:`StoreGone` when the store's name no longer leads to the file this
        connection works on (deleted or replaced since it was opened)."""
        self._check(self.identity)

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
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

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
        language=r[13], image=r[14], published_offset=r[15], canonical_link=r[16], source_site=r[17],
        page_text=r[18], page_from=r[19], page_fetched=from_iso(r[20]),
    )


_reported: set[tuple[str, int]] = set()


def _readable(rows: Iterable[Sequence[Any]], path: Path) -> list[Entry]:
    """The entries of ``rows``; a row that cannot be read (a date no version of us wrote,
    broken JSON) is logged once per process and left out, so that one bad row never
    stops a publication (``status`` lists them: :meth:`EntriesStore.unreadable_entries`)."""
    out = []
    for r in rows:
        try:
            out.append(_entry(r))
        except (ValueError, TypeError, OverflowError) as e:
            if (str(path), r[0]) not in _reported:
                _reported.add((str(path), r[0]))
                log.warning("cannot read stored entry %s (%s: %s): %s; skipped", r[0], r[1], r[4] or r[3], e)
    return out


def _chunks(items: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
