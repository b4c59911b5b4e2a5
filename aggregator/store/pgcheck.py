"""``store check`` and ``store backup`` on a PostgreSQL store.

SQLite's integrity_check has no PostgreSQL equivalent a client can run (amcheck needs an
extension and a superuser: the database's administrator runs ``pg_amcheck``). What the
store itself can check, read-only, in one snapshot: its schema version, that every
entry can be read back, and that what hangs off an entry (matches, translations,
publication records, pages) and every entry's source are there.

A backup of a PostgreSQL store is PostgreSQL's own: ``pg_dump`` (custom format, checked
with ``pg_restore --list``) when it is on PATH; otherwise the error says how to take one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from aggregator.exceptions import StorageError
from aggregator.redaction import mask_url
from aggregator.store.backend import PgDB, as_storage_error, db_errors
from aggregator.store.base import _ENTRY_COLUMNS, _entry
from aggregator.store.integrity import MAX_PROBLEMS, CheckResult
from aggregator.store.migrations import SCHEMA_VERSION, schema_version

# (what is missing, the query that finds the rows that miss it)
_DANGLING = [
    ("matches of a post that is not stored",
     "SELECT post_id, article_id FROM matches WHERE post_id NOT IN (SELECT id FROM entries)"),
    ("matches of an article that is not stored",
     "SELECT post_id, article_id FROM matches WHERE article_id NOT IN (SELECT id FROM entries)"),
    ("translations of an entry that is not stored",
     "SELECT entry_id, target FROM entry_translations WHERE entry_id NOT IN (SELECT id FROM entries)"),
    ("publication records of an entry that is not stored",
     "SELECT entry_id, pub_id FROM publications WHERE entry_id NOT IN (SELECT id FROM entries)"),
    ("entries of a source that is not stored",
     "SELECT id, source_id FROM entries WHERE source_id NOT IN (SELECT id FROM sources)"),
]


def check_postgres(url: str) -> CheckResult:
    """The store's consistency, read-only, in one snapshot (see the module docstring)."""
    name = mask_url(url)
    result = CheckResult(Path(), name=name)
    try:
        db = PgDB(url)
    except db_errors() as e:
        raise as_storage_error(name, e) from None
    try:
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        result.size = int(db.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        version = schema_version(db, "postgresql")
        if version == 0:
            return result  # an empty database: "not an aggregator store", as for an empty SQLite file
        result.schema = version
        if version > SCHEMA_VERSION:
            result.problems.append(f"schema {version} was written by a newer aggregator (this one knows "
                                   f"{SCHEMA_VERSION}): upgrade aggregator")
            return result
        if version < SCHEMA_VERSION:
            result.notes.append(f"schema {version}: the next run migrates it to {SCHEMA_VERSION}")
        for what, query in _DANGLING:
            rows = db.execute(query).fetchall()
            if rows:
                sample = ", ".join(str(tuple(r)) for r in rows[:5])
                result.problems.append(f"{len(rows)} {what}: {sample}{' …' if len(rows) > 5 else ''}")
        result.entries, unreadable = _read_every_entry(db)
        result.notes += unreadable
    except db_errors() as e:
        raise as_storage_error(name, e) from None
    finally:
        try:
            db.execute("ROLLBACK")
            db.close()
        except db_errors():
            pass
    return result


def _read_every_entry(db: Any, batch: int = 2000) -> tuple[int, list[str]]:
    """How many entries, and a line for each (up to MAX_PROBLEMS) that cannot be read back
    (a date or a category list no version of us wrote): left out of publications, listed by status."""
    count, last, out = 0, 0, list[str]()
    while True:
        rows = db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id>? ORDER BY id LIMIT ?",
                          (last, batch)).fetchall()
        if not rows:
            return count, out
        count += len(rows)
        last = rows[-1][0]
        for r in rows:
            try:
                _entry(r)
            except (ValueError, TypeError, OverflowError) as e:
                if len(out) < MAX_PROBLEMS:
                    out.append(f"entry {r[0]} ({r[1]}: {r[4] or r[3]}) cannot be read: {e}; "
                               "left out of the publication")


def backup_postgres(url: str, dest: Path) -> int:
    """``pg_dump --format=custom`` of the store into ``dest`` (a new file), checked with
    ``pg_restore --list``; the password goes through the environment, never argv."""
    from sqlalchemy.engine import make_url

    name = mask_url(url)
    dest = Path(dest)
    if dest.exists():
        raise StorageError(f"{dest}: already exists; give a new file name (a backup never overwrites)")
    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if pg_dump is None or pg_restore is None:
        raise StorageError(f"{name}: a PostgreSQL store is backed up with PostgreSQL's pg_dump, which is not on "
                           "PATH here: install the PostgreSQL client (Debian: postgresql-client) or run "
                           f"`pg_dump --format=custom --file {dest} DATABASE` where it is")
    u = make_url(url.replace("postgresql+psycopg://", "postgresql://", 1))
    env = {**os.environ}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    args = ["--format=custom", f"--file={dest}", "--no-password"]
    for flag, value in (("--host", u.host), ("--port", u.port), ("--username", u.username)):
        if value:
            args.append(f"{flag}={value}")
    for key, given in u.query.items():  # sslmode=…, host=/socket/dir, …
        env[f"PG{key.upper()}"] = given if isinstance(given, str) else given[0]
    args.append(f"--dbname={u.database}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([pg_dump, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        dest.unlink(missing_ok=True)
        detail = " ".join(proc.stderr.split())[-500:]
        raise StorageError(f"{name}: pg_dump failed (exit {proc.returncode}): {detail}; nothing kept")
    listed = subprocess.run([pg_restore, "--list", str(dest)], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, check=False)
    if listed.returncode != 0 or "TABLE DATA" not in listed.stdout:
        dest.unlink(missing_ok=True)
        raise StorageError(f"{dest}: the dump did not check out (pg_restore --list: "
                           f"{' '.join(listed.stderr.split())[-300:] or 'no table data'}); nothing kept")
    return dest.stat().st_size
