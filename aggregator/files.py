"""Replacing a file the user owns (the config): atomically, durably, through symlinks.

A config is often a symlink (into a dotfiles repository, /etc, a mounted secret). Renaming
a new file over the link would replace the link by a regular file beside it, and the
paths the config gives relative to its own folder would then point elsewhere (the
default store ``../data/...``: the next run would start on a new, empty store). So the
file the link points to is what is replaced, in its own folder; the link stays.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_replace(target: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``target`` (fsynced, ``mode``) and rename
    it over ``target``: a reader sees the old file or the new one, never a mix. The
    folder's fsync (making the rename durable) is the caller's."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_file(path: Path, data: bytes, *, mode: int = 0o644) -> Path:
    """Replace the file ``path`` names (following symlinks) with ``data``, atomically:
    a temporary file in the target's folder, fsynced, renamed over it, the folder
    fsynced. An existing file keeps its permissions (a config may hold keys); a new one
    gets ``mode``. Returns the path written (the link's target)."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        mode = target.stat().st_mode & 0o777
    write_replace(target, data, mode)
    try:  # make the rename itself durable
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return target
