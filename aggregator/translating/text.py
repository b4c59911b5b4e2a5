"""Pure text helpers for translation: sentence splitting, size limits, the glossary."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote_plus

from aggregator.entryview import apply_glossary

__all__ = ["apply_glossary", "encoded_length", "fit_pieces", "join_pieces", "split_text"]

# -- pure helpers -------------------------------------------------------------------------
# A sentence ends at 。！？!? (with any closing brackets or quotes after it), at .;: followed
# by a space, or at a line break; its trailing punctuation and spaces stay with it.
_SENTENCE = re.compile(r"[。！？!?]+[」』）】〕\"')\]]*\s*|[.;:]+[\"')\]]*\s+|\n+")


def split_text(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` on sentence boundaries
    (Japanese 。！？ included), falling back to spaces, then to a hard cut.
    Joining the pieces gives the text back."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in _split_keep(text) if s):
        if len(current) + len(sentence) <= max_chars:
            current += sentence
            continue
        if current:
            pieces.append(current)
            current = ""
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(sentence[:cut])
            sentence = sentence[cut:]
        current = sentence
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def _split_keep(text: str) -> list[str]:
    """Sentences with their trailing punctuation and whitespace kept, so joining
    the pieces gives the text back."""
    out, start = [], 0
    for m in _SENTENCE.finditer(text):
        out.append(text[start:m.end()])
        start = m.end()
    out.append(text[start:])
    return out


def encoded_length(text: str) -> int:
    """Bytes ``text`` takes in a URL query (as requests encodes it)."""
    return len(quote_plus(text))


def fit_pieces(text: str, max_chars: int, max_encoded: int | None = None) -> list[str]:
    """:func:`split_text`, and for a protocol that puts the text in the URL, pieces whose
    percent-encoded size also fits ``max_encoded`` (a kanji takes 9 bytes there)."""
    pieces = split_text(text, max_chars)
    if max_encoded is None:
        return pieces
    out: list[str] = []
    for p in pieces:
        size = encoded_length(p)
        if size <= max_encoded or len(p) <= 1:
            out.append(p)
        else:
            out.extend(fit_pieces(p, max(1, len(p) * max_encoded // size), max_encoded))
    return out


def join_pieces(pieces: Sequence[str], target: str) -> str:
    if target.split("-")[0] in ("ja", "zh", "ko", "th"):
        return "".join(p.strip() for p in pieces)
    return " ".join(p.strip() for p in pieces)




