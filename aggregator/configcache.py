"""The config file's YAML, parsed, kept between runs: keyed by the file's text.

Reading YAML is the largest part of reading a config (45 of 53 ms for 1,000 sources with
ruamel's C parser; its constructor is Python), and a ``run --once`` from cron reads the
same file every few minutes. The tree the parser gives, before ``${VAR}`` expansion, is
a pure function of the text (and of the parser's version), so it is kept as JSON under
the SHA-256 of both: an edited file, whatever its size and time stamps, is parsed anew,
and the environment is read afresh on every run. Only a file whose config was valid is
kept, so what is kept is bounded like any config (no alias bomb reaches the disk), and
only a tree JSON gives back exactly (string keys, finite numbers; no dates, no sets).

Where: ``$XDG_CACHE_HOME/aggregator`` (default ``~/.cache/aggregator``), one file per
config path, made private to the user. A cache that cannot be read or written is no
error: the file is parsed as if there were none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import ruamel.yaml

log = logging.getLogger("aggregator")

# Bumped when what is kept changes meaning (the resolver, the JSON layout).
_FORMAT = "1"


def _dir() -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME")
    if base and os.path.isabs(base):
        return Path(base) / "aggregator"
    home = os.environ.get("HOME")
    return Path(home) / ".cache" / "aggregator" if home else None


def _key(text: str) -> str:
    h = hashlib.sha256(f"{_FORMAT}\x00{ruamel.yaml.__version__}\x00".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _file(path: Path) -> Path | None:
    where = _dir()
    if where is None:
        return None
    name = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return where / f"config-{name}.json"


def load(path: Path, text: str) -> tuple[Any, bool] | None:
    """The tree kept for this text of the file at ``path``, and whether any of its strings
    holds a ``${`` to expand; or None."""
    try:
        f = _file(path)
        if f is None:
            return None
        raw = f.read_text(encoding="utf-8")
        kept = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(kept, dict) or kept.get("key") != _key(text) or not isinstance(kept.get("tree"), dict):
        return None
    # JSON writes "$" and "{" as themselves, in keys and values alike.
    return kept["tree"], "${" in raw


def as_json(tree: Any) -> str | None:
    """``tree`` as JSON, when JSON gives it back exactly; else None."""
    if not _plain(tree, 0):
        return None
    try:
        return json.dumps(tree, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None


def save(path: Path, text: str, tree_json: str) -> None:
    """Keep ``tree_json`` (from :func:`as_json`) as the tree of this text; quietly not, when
    the cache cannot be written."""
    f = _file(path)
    if f is None:
        return
    tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
    try:
        f.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(f'{{"key": "{_key(text)}", "tree": {tree_json}}}')
        os.replace(tmp, f)
    except OSError as e:
        log.debug("config cache not written (%s): %s", f, e)
        with contextlib.suppress(OSError):
            tmp.unlink()


def _plain(node: Any, depth: int) -> bool:
    if depth > 100:  # a config is a few levels deep
        return False
    kind = type(node)  # exact types: a subclass (a str that remembers its line) is not JSON's
    if kind in (str, bool, int, type(None)):
        return True
    if kind is float:
        return math.isfinite(node)
    if kind is list:
        return all(_plain(x, depth + 1) for x in node)
    if kind is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in node.items())
    return False
