"""A store found whole is not checked again by the next process while the file is exactly
as aggregator left it (the note beside it); anything else that touches it, an error on the
connection, or a day since the last real check, and SQLite checks it again."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from aggregator.exceptions import StoreDamagedError
from aggregator.store import Store
from aggregator.store import base as store_base


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every quick_check SQLite runs at open, as a new process would (nothing remembered)."""
    seen: list[Path] = []
    real = store_base.quick_check

    def counting(db: sqlite3.Connection) -> list[str]:
        seen.append(Path(db.execute("PRAGMA database_list").fetchone()[2]))
        return real(db)

    monkeypatch.setattr(store_base, "quick_check", counting)
    return seen


def _new_process() -> None:
    store_base._checked.clear()


def _fill(path: Path) -> None:
    with Store(path) as store:
        store.set_meta("filled", "x" * 50_000)


def test_the_next_process_skips_the_check_while_the_file_is_as_we_left_it(tmp_path: Path,
                                                                          checks: list[Path]) -> None:
    path = tmp_path / "store.sqlite3"
    _fill(path)
    assert (tmp_path / "store.sqlite3-whole").is_file()  # created here: whole by construction
    for _ in range(3):
        _new_process()
        with Store(path) as store:
            store.set_meta("k", "v")  # our own writes keep the note true
    assert checks == []
    (tmp_path / "store.sqlite3-whole").unlink()
    _new_process()
    Store(path).close()
    assert len(checks) == 1  # no note: checked, and noted again
    _new_process()
    Store(path).close()
    assert len(checks) == 1


def test_a_file_touched_by_anything_else_is_checked_again_and_its_damage_found(tmp_path: Path,
                                                                              checks: list[Path]) -> None:
    path = tmp_path / "store.sqlite3"
    _fill(path)
    _new_process()
    Store(path).close()
    pages = path.stat().st_size // 4096
    assert pages >= 4
    with open(path, "r+b") as f:  # same size, noise in the middle
        f.seek((pages // 2) * 4096)
        f.write(os.urandom(4096))
    _new_process()
    with pytest.raises(StoreDamagedError):
        Store(path)
    assert len(checks) == 1


def test_a_replaced_file_is_checked_again(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "store.sqlite3"
    _fill(path)
    _new_process()
    Store(path).close()
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(path.read_bytes())
    st = path.stat()
    os.replace(copy, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and time stamp, another inode
    _new_process()
    Store(path).close()
    assert len(checks) == 1


def test_the_check_runs_again_once_the_last_one_is_a_day_old(tmp_path: Path, checks: list[Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.sqlite3"
    _fill(path)
    _new_process()
    Store(path).close()
    assert checks == []
    later = store_base.time.time() + store_base.RECHECK_AFTER + 1
    monkeypatch.setattr(store_base.time, "time", lambda: later)
    _new_process()
    Store(path).close()
    assert len(checks) == 1


def test_a_connection_that_saw_an_error_leaves_no_note(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "store.sqlite3"
    _fill(path)
    _new_process()
    (tmp_path / "store.sqlite3-whole").unlink(missing_ok=True)
    with pytest.raises(sqlite3.OperationalError), Store(path) as store:
        store.db.execute("SELECT * FROM no_such_table")
    assert not (tmp_path / "store.sqlite3-whole").exists()
    store = Store(path)
    with pytest.raises(sqlite3.OperationalError):
        store.db.execute("SELECT * FROM no_such_table")
    store.close()  # closed outside a with: the failed statement still counts
    assert not (tmp_path / "store.sqlite3-whole").exists()


def test_forget_check_drops_the_note(tmp_path: Path, checks: list[Path]) -> None:
    path = tmp_path / "store.sqlite3"
    _fill(path)
    assert (tmp_path / "store.sqlite3-whole").is_file()
    store_base.forget_check(path)
    assert not (tmp_path / "store.sqlite3-whole").exists()
    Store(path).close()
    assert len(checks) == 1
