"""The store's plumbing: the connection, transactions, meta, migrations on open.

SQLite (the default): one file, WAL journal. Every source update (its entries and its fetch state, ETag
included) is one transaction, so a crash leaves either the old or the new state of a
source, never half of it; and because the conditional-GET validators roll back with
the entries, a lost transaction is simply fetched again.

``synchronous=NORMAL`` in WAL mode survives any process crash (kill -9) without loss;
after a power cut the last transactions may roll back, together with their validators,
so the next fetch brings them back. See docs/storage.md.

PostgreSQL (``storage.url: postgresql://…``): the same schema and statements through
:class:`aggregator.store.backend.PgDB`; the same transactions (``BEGIN``/``COMMIT``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aggregator.exceptions import StorageError, StoreGone, storage_error
from aggregator.models import Entry, from_iso
from aggregator.redaction import mask_url
from aggregator.store.backend import DB, PgDB, as_storage_error, db_errors, is_postgres
from aggregator.store.integrity import quick_check
from aggregator.store.migrations import SET_META, migrate

log = logging.getLogger("aggregator")

# Stores this process has found whole (path, device, inode) -> when SQLite last checked
# them (epoch seconds): checked once per process, and again when the file is replaced (a
# restored backup) or an error says it is damaged.
_checked: dict[tuple[str, int, int], float] = {}

# A store found whole and then written only by us through SQLite is whole when we close
# it. A note beside it (device, inode, size and modification time of the file and of its
# WAL) lets the next process skip quick_check (0.1-1 s on a 100 MB store, the largest fixed
# cost of a cron `run --once` that fetches 304s) while the file is exactly as we left it.
# Anything else that touches the file changes what the note records, and SQLite checks
# it again; so it does anyway once the last real check is a day old (bits that rot
# on a disk change no time stamp).
RECHECK_AFTER = 24 * 3600.0


def _note_path(path: Path) -> Path:
    return path.with_name(path.name + "-whole")


def _fingerprint(path: Path) -> list[int]:
    out: list[int] = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            out += [0, 0, 0, 0]
            continue
        out += [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    return out


def _noted_check(path: Path, now: float) -> float | None:
    """When SQLite last found the store whole, if the note beside it still describes the
    file exactly and that check is less than a day old; else None (check it now)."""
    try:
        note = json.loads(_note_path(path).read_text(encoding="utf-8"))
        at = float(note["checked_at"])
        if note["fingerprint"] == _fingerprint(path) and 0 <= now - at < RECHECK_AFTER:
            return at
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_note(path: Path, at: float) -> None:
    note = _note_path(path)
    tmp = note.with_name(f"{note.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps({"fingerprint": _fingerprint(path), "checked_at": at}), encoding="utf-8")
        os.replace(tmp, note)
    except OSError:  # a read-only folder: the next process simply checks again
        with suppress(OSError):
            tmp.unlink()


def _whole(db: sqlite3.Connection, path: Path, identity: tuple[int, int]) -> None:
    """SQLite's quick_check, before anything writes (the WAL switch, a migration, the
    cycle): a damaged file is left exactly as it is, for a backup or an expert."""
    key = (str(path), *identity)
    if key in _checked:
        return
    now = time.time()
    if os.path.getsize(path) == 0:  # a store this process creates is whole by construction
        _checked[key] = now
        return
    noted = _noted_check(path, now)
    if noted is not None:
        _checked[key] = noted
        return
    problems = quick_check(db)
    if problems:
        detail = f"database disk image is malformed; quick_check: {problems[0]}"
        raise storage_error(path, sqlite3.DatabaseError(detail))
    _checked[key] = now


def forget_check(path: str | os.PathLike[str]) -> None:
    """Check the store at ``path`` again when it is next opened (an error said it is damaged)."""
    key = str(Path(path))
    for item in [c for c in _checked if c[0] == key]:
        del _checked[item]
    with suppress(OSError):
        _note_path(Path(path)).unlink()


class _Connection(sqlite3.Connection):
    """sqlite3's connection, remembering whether any statement failed: a store that saw
    an error is not noted as whole when it is closed."""

    failed = False

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().execute(*args, **kwargs)
        except sqlite3.DatabaseError:
            self.failed = True
            raise

    def executemany(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        try:
            return super().executemany(*args, **kwargs)
        except sqlite3.DatabaseError:
            self.failed = True
            raise


# An article's text for the matcher: its page's body when one was fetched (its feed gave
# an excerpt or nothing), else its summary, else its content.
_ARTICLE_TEXT = ("substr(CASE WHEN page_text != '' THEN page_text WHEN summary != '' THEN summary "
                 "ELSE content END, 1, ?)")
_ENTRY_COLUMNS = ("id, source_id, role, key, link, title, summary, content, author, categories, "
                  "published, updated, first_seen, language, image, published_offset, canonical_link, source_site, "
                  "page_text, page_from, page_fetched")


# A group of transactions (StoreBase.grouped) commits once it holds this many, or once its
# oldest is this many seconds old (commit_group_if_due).
GROUP_MOST = 50
GROUP_SECONDS = 1.0


class StoreBase:
    """The connection and its plumbing. Not shared between threads: one per thread.

    ``where``: a SQLite file's path, or a ``postgresql://`` URL (:mod:`aggregator.store.backend`).

    ``expect``: the identity (device, inode) the store file must have, for a process that
    keeps working on one store (the daemon opens it per job): a file that has vanished
    or been replaced is :class:`StoreGone`, never a new, empty store in its place. A
    PostgreSQL store has no file: its identity is None and nothing is checked."""

    dialect = "sqlite"
    identity: tuple[int, int] | None = None
    grouped_count: int | None = None  # transactions in the open group (see grouped()); None: no group
    _group_began = 0.0  # time.monotonic() when the open group's oldest transaction began

    def __init__(self, where: str | os.PathLike[str], *, expect: tuple[int, int] | None = None):
        if is_postgres(where):
            self._open_postgres(str(where))
            return
        self.path = Path(where)
        self.name = str(self.path)  # how messages name the store
        self._errors: tuple[type[BaseException], ...] = (sqlite3.DatabaseError,)
        try:
            if expect is not None:
                self._check(expect)
                # mode=rw: should the file vanish between the check and here, SQLite
                # refuses rather than create an empty one.
                db = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=rw", uri=True,
                                     isolation_level=None, timeout=30, check_same_thread=False,
                                     factory=_Connection)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False,
                                     factory=_Connection)
            self.db: DB = db
            st = os.stat(self.path)
            self.identity = (st.st_dev, st.st_ino)
            db.execute("PRAGMA busy_timeout=30000")
            _whole(db, self.path, self.identity)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            migrate(db, self.name, backup_to=self.path)
            db.failed = False  # what the migrations probed for (a table not there yet) is not an error
        except StorageError:
            self._close_quietly()
            raise
        except sqlite3.OperationalError as e:
            self._close_quietly()
            if expect is not None and not self.path.exists():
                raise StoreGone(self._gone_message("has vanished")) from None
            raise storage_error(self.path, e) from None
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise storage_error(self.path, e) from None
        except OSError as e:
            raise StorageError(f"{self.path}: cannot create the store: {e}") from None

    def _open_postgres(self, url: str) -> None:
        """A PostgreSQL store: connect, and run the same numbered migrations (PostgreSQL's
        DDL is transactional: a failed upgrade leaves the schema as it was)."""
        self.dialect = "postgresql"
        self.name = mask_url(url)
        self.path = Path(self.name)  # messages only: there is no file
        self._errors = db_errors()
        try:
            self.db = PgDB(url)
            migrate(self.db, self.name, dialect="postgresql")
        except StorageError:
            self._close_quietly()
            raise
        except self._errors as e:
            self._close_quietly()
            raise as_storage_error(self.name, e) from None

    def _close_quietly(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            with suppress(*self._errors):
                db.close()

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
        connection works on (deleted or replaced since it was opened). SQLite only."""
        if self.identity is not None:
            self._check(self.identity)

    # -- plumbing --------------------------------------------------------------------
    def close(self, *, whole: bool = True) -> None:
        """Close the connection; a SQLite store found whole and written to without an error
        is noted as whole, so that the next process need not check it again."""
        self.db.close()
        if self.identity is None or not whole or getattr(self.db, "failed", True):
            return
        at = _checked.get((str(self.path), *self.identity))
        if at is not None:
            _write_note(self.path, at)

    def __enter__(self) -> StoreBase:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(whole=exc_type is None)

    @contextmanager
    def transaction(self) -> Iterator[DB]:
        if self.grouped_count is not None:
            with self._savepoint():
                yield self.db
            return
        # SQLite: IMMEDIATE takes the write lock now, not at the first write (no deadlock
        # between two readers that both decide to write).
        self.db.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        try:
            yield self.db
            self.db.execute("COMMIT")  # a full disk may fail here too: rolled back below
        except BaseException:
            # SQLite may have rolled back already (a full disk, an I/O error): a ROLLBACK
            # then fails and would hide the error that matters.
            if self.db.in_transaction:
                with suppress(*self._errors):
                    self.db.execute("ROLLBACK")
            raise

    # -- group commit ----------------------------------------------------------------
    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Commit the transactions made inside together, at :meth:`commit_group` and at the end.

        Each :meth:`transaction` in the group is a savepoint of one open transaction: it
        still applies whole or not at all (a failing one is rolled back alone), but what it
        wrote is durable only when the group commits. A cold cycle stores a thousand feeds
        one after another, and one commit per feed cost 4–5 s of its critical path (each
        commit rewrites the same index pages into the WAL, and a checkpoint follows every
        1,000 pages). A loop of transactions calls :meth:`commit_group_if_due` (every
        :data:`GROUP_MOST` transactions, or once the oldest is :data:`GROUP_SECONDS` old),
        and :meth:`commit_group` before it waits, so nothing lies uncommitted for long or
        while the process idles. What a killed process had not committed is lost with its
        sources' new fetch state, so those feeds are fetched again: nothing is half stored.
        On leaving (even by an exception) what the group holds is committed."""
        if self.grouped_count is not None:  # already in one: that one commits
            yield
            return
        self.grouped_count = 0
        try:
            yield
        except BaseException:
            with suppress(*self._errors):  # the error that ends the group is the one to see
                self.commit_group()
            raise
        else:
            self.commit_group()
        finally:
            if self.db.in_transaction:  # the commit failed: nothing of the group is kept
                with suppress(*self._errors):
                    self.db.execute("ROLLBACK")
            self.grouped_count = None

    def commit_group(self) -> None:
        """Make the open group's transactions durable (a new group starts with the next one)."""
        if self.grouped_count is None:
            return
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self.grouped_count = 0

    def commit_group_if_due(self) -> None:
        """:meth:`commit_group` once the open group holds :data:`GROUP_MOST` transactions,
        or its oldest began :data:`GROUP_SECONDS` ago."""
        held = self.grouped_count
        if held and (held >= GROUP_MOST or time.monotonic() - self._group_began >= GROUP_SECONDS):
            self.commit_group()

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
            self._group_began = time.monotonic()
        self.db.execute("SAVEPOINT grouped")
        try:
            yield
            self.db.execute("RELEASE grouped")
        except BaseException:
            # SQLite may have rolled the whole transaction back (a full disk): then the
            # group's earlier transactions are gone too, and the error says so to the caller.
            if self.db.in_transaction:
                with suppress(*self._errors):
                    self.db.execute("ROLLBACK TO grouped")
                    self.db.execute("RELEASE grouped")
            raise
        assert self.grouped_count is not None
        self.grouped_count += 1

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute(SET_META, (key, value))


def _entry(r: Sequence[Any]) -> Entry:
    return Entry(
        id=r[0], source_id=r[1], role=r[2], key=r[3], link=r[4], title=r[5], summary=r[6], content=r[7],
        author=r[8], categories=tuple(json.loads(r[9] or "[]")), published=from_iso(r[10]),
        updated=from_iso(r[11]), first_seen=from_iso(r[12]),  # type: ignore[arg-type]
        language=r[13], image=r[14], published_offset=r[15], canonical_link=r[16], source_site=r[17],
        page_text=r[18], page_from=r[19], page_fetched=from_iso(r[20]),
    )


_reported: set[tuple[str, int]] = set()


def _readable(rows: Iterable[Sequence[Any]], path: str) -> list[Entry]:
    """The entries of ``rows``; a row that cannot be read (a date no version of us wrote,
    broken JSON) is logged once per process and left out, so that one bad row never
    stops a publication (``status`` lists them: :meth:`EntriesStore.unreadable_entries`)."""
    out = []
    for r in rows:
        try:
            out.append(_entry(r))
        except (ValueError, TypeError, OverflowError) as e:
            if (path, r[0]) not in _reported:
                _reported.add((path, r[0]))
                log.warning("cannot read stored entry %s (%s: %s): %s; skipped", r[0], r[1], r[4] or r[3], e)
    return out


_MAX_IDS = 500  # ids in one IN (...): SQLite's bound on parameters is 999 in old builds


def _chunks(items: Sequence[Any], n: int = _MAX_IDS) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``n``: by default as many as one ``IN (...)`` may hold."""
    for i in range(0, len(items), n):
        yield items[i:i + n]
