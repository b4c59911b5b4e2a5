"""Translation memory: human translations from a TMX 1.4 file (the CAT-tool exchange
format), used before any provider.

Looked up by exact source text (runs of whitespace count as one space): a memory is a list of
translations someone checked, not a fuzzy matcher. Parsing is translate-toolkit's
(``translate.storage.tmx``, a safe lxml parser); this module only indexes the units.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.exceptions import ConfigError

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


_WS = re.compile(r"\s+")


def _key(text: str) -> str:
    """Source text as looked up: runs of whitespace (the ideographic space too, which
    feeds and parsers often turn into a plain one) as one space, none at the ends."""
    return _WS.sub(" ", text).strip()


def _base(lang: str) -> str:
    """``en-US`` -> ``en``: a memory written for a regional variant serves the language."""
    return lang.strip().lower().replace("_", "-").split("-")[0]


@dataclass(frozen=True)
class Memory:
    """Translations keyed by (source language, target language, source text)."""

    path: Path
    digest: str  # of the file's bytes: a changed memory is a changed translation setup
    units: int
    _index: dict[tuple[str, str, str], str] = field(repr=False)
    _by_text: dict[tuple[str, str], str] = field(repr=False)  # (target, text) -> translation, any source

    def lookup(self, text: str, source: str, target: str) -> str | None:
        """The memory's translation of ``text`` from ``source`` (``auto``: any) into ``target``."""
        key = _key(text)
        if source and source != "auto":
            hit = self._index.get((_base(source), _base(target), key))
            if hit is not None:
                return hit
        return self._by_text.get((_base(target), key))

    def __len__(self) -> int:
        return len(self._index)


def load_memory(path: Path) -> Memory:
    """Read a TMX file. Raises :class:`ConfigError` when it cannot be read or is not TMX."""
    from translate.storage import tmx

    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"translation.memory: cannot read {path}: {e.strerror or e}") from None
    try:
        store = tmx.tmxfile.parsestring(data)  # type: ignore[no-untyped-call]  # translate-toolkit: partly typed
    except Exception as e:  # lxml's XMLSyntaxError, or translate-toolkit's assertion on the root
        raise ConfigError(f"translation.memory: {path} is not a TMX file: {e or type(e).__name__}") from None
    index: dict[tuple[str, str, str], str] = {}
    by_text: dict[tuple[str, str], str] = {}
    units = 0
    for unit in store.units:
        segs: list[tuple[str, str]] = []
        for node in unit.getlanguageNodes():
            lang = node.get(_XML_LANG) or node.get("lang") or ""
            text = unit.getNodeText(node)
            if lang and text and text.strip():
                segs.append((_base(lang), _key(text)))
        if len(segs) < 2:
            continue
        units += 1
        for src_lang, src in segs:
            for tgt_lang, tgt in segs:
                if tgt_lang != src_lang:
                    index.setdefault((src_lang, tgt_lang, src), tgt)
                    by_text.setdefault((tgt_lang, src), tgt)
    return Memory(path, hashlib.sha1(data).hexdigest()[:16], units, index, by_text)


_loaded: dict[Path, tuple[tuple[int, int], Memory]] = {}


def memory_for(path: Path | None) -> Memory | None:
    """The memory at ``path``, read again only when the file changed (the daemon asks
    every cycle)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError as e:
        raise ConfigError(f"translation.memory: cannot read {path}: {e.strerror or e}") from None
    key = (st.st_mtime_ns, st.st_size)
    cached = _loaded.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    memory = load_memory(path)
    _loaded[path] = (key, memory)
    return memory
