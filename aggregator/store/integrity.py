"""Is the store file whole, and a consistent copy of it (``aggregator store check`` / ``backup``).

Both read the store only (``mode=ro``): a damaged store is never written to, and a
backup can be taken while a daemon works on the store (SQLite's online backup API copies
a consistent snapshot, page by page).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.exceptions import StorageError, StoreDamagedError, storage_error

MAX_PROBLEMS = 20  # lines of integrity_check output kept


@dataclass
class CheckResult:
    path: Path
    problems: list[str] = field(default_factory=list)
    schema: int | None = None
    size: int = 0
    entries: int | None = None
    name: str = ""  # how messages name the store (the path, or a URL without its password)
    notes: list[str] = field(default_factory=list)  # said, but the store is fine

    def __post_init__(self) -> None:
        self.name = self.name or str(self.path)

    @property
    def ok(self) -> bool:
        return not self.problems


def quick_check(db: sqlite3.Connection) -> list[str]:
    """SQLite's ``PRAGMA quick_check`` (every page and record readable, no index checked
    against its table: linear in the file, a fraction of a second for our stores)."""
    rows = [str(r[0]) for r in db.execute(f"PRAGMA quick_check({MAX_PROBLEMS})")]
    return [] if rows == ["ok"] else rows


def _open_ro(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StorageError(f"{path}: no store there (a first `aggregator run --once` creates it)")
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.DatabaseError as e:
        raise storage_error(path, e) from None


def check_file(path: Path, *, full: bool = True) -> CheckResult:
    """The store's integrity: ``PRAGMA integrity_check`` (``full``) or ``quick_check``,
    without writing to it."""
    result = CheckResult(Path(path))
    db = _open_ro(result.path)
    try:
        try:
            rows = [str(r[0]) for r in db.execute(
                f"PRAGMA {'integrity_check' if full else 'quick_check'}({MAX_PROBLEMS})")]
        except sqlite3.DatabaseError as e:
            rows = [str(e)]
        result.problems = [] if rows == ["ok"] else rows
        if result.ok:
            try:
                row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                result.schema = int(row[0]) if row else None
                result.entries = int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])
            except sqlite3.DatabaseError:
                pass  # not one of our stores, or an empty one: integrity is what was asked
    finally:
        db.close()
    result.size = sum(os.path.getsize(f"{result.path}{s}") for s in ("", "-wal")
                      if os.path.exists(f"{result.path}{s}"))
    return result


def backup_file(path: Path, dest: Path) -> int:
    """Copy the store at ``path`` to ``dest`` (which must not exist) through SQLite's
    online backup API; the copy is checked. Returns its size in bytes."""
    path, dest = Path(path), Path(dest)
    if dest.exists():
        raise StorageError(f"{dest}: already exists; give a new file name (a backup never overwrites)")
    db = _open_ro(path)
    try:
        problems = quick_check(db)
        if problems:
            raise StoreDamagedError(f"{path}: the store is damaged ({problems[0]}): a copy would be damaged too; "
                                    "restore an earlier backup instead")
        dest.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(dest)
        try:
            db.backup(target)
        except sqlite3.DatabaseError as e:
            target.close()
            dest.unlink(missing_ok=True)
            raise storage_error(dest if "full" in str(e) else path, e) from None
        try:
            copied = quick_check(target)
        finally:
            target.close()
        if copied:
            dest.unlink(missing_ok=True)
            raise StorageError(f"{dest}: the copy did not check out ({copied[0]}); nothing kept")
    except sqlite3.DatabaseError as e:
        raise storage_error(path, e) from None
    except OSError as e:
        raise StorageError(f"{dest}: cannot write the backup: {e.strerror or e}") from None
    finally:
        db.close()
    return dest.stat().st_size
