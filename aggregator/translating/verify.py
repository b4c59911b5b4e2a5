"""Is an answer a translation? Pure checks of what a translator gave back, made before
anything is cached or published: a language model may answer with prose instead of the
structure it was given, drop, add or merge items, give a text back untranslated,
refuse, obey an instruction hidden in the text, or stop half-way.

:func:`parse_items` reads a model's answer into the texts it was asked for (or says
why it cannot); :func:`check_translation` says what is wrong with one translation, or
None. See docs/translation.md ("What a model's answer must pass").
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.language import detect, same_language

# Characters that carry about two Latin letters' worth of meaning: CJK ideographs,
# kana, hangul, full-width forms. Used to compare lengths across scripts.
_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
# An answer whose length (in Latin-letter equivalents) is outside these multiples of the
# text's is no translation of it. On the dev set, ja->en is 0.97-2.0 and en->ja
# 0.56-1.38: the bounds are far outside that, to catch only what is clearly wrong
# (a text cut short, an essay instead of a headline).
MIN_RATIO, MAX_RATIO = 0.25, 4.0
# Shorter texts (headings, names) vary too much to judge by length.
MIN_LENGTH_CHECKED = 40
# How models say no. Only counted when the text itself does not say the same.
_REFUSAL = re.compile(
    r"^\W*(i['’]?m sorry|i am sorry|sorry, (but )?i|i can(no|')t|i cannot|i am unable|i['’]?m unable|"
    r"as an ai|i won['’]?t be able|unfortunately,? i)", re.IGNORECASE)


class AnswerError(ValueError):
    """The answer as a whole is unusable (not the structure asked for)."""


def parse_items(content: str, keys: Sequence[str]) -> dict[str, str]:
    """The texts of an answer that must be a JSON object with exactly ``keys``, each
    value a string. Chatter around the object ("Sure! Here is...", a ```json fence) is
    tolerated when exactly one JSON object can be read from the answer; two different
    ones are ambiguous. Raises :class:`AnswerError` saying what is wrong."""
    objects = [c for c in _json_values(content) if isinstance(c, dict)]
    if not objects:
        raise AnswerError("no JSON object in the answer" + (f": {_quote(content)}" if content.strip() else ""))
    distinct: list[dict[str, Any]] = []
    for o in objects:
        if o not in distinct:
            distinct.append(o)
    if len(distinct) > 1:
        raise AnswerError(f"{len(distinct)} different JSON objects in the answer: ambiguous")
    data = distinct[0]
    # {"translations": {...}}: one wrapping key around exactly what was asked.
    if set(data) != set(keys) and len(data) == 1:
        inner = next(iter(data.values()))
        if isinstance(inner, dict) and set(inner) == set(keys):
            data = inner
    if set(data) != set(keys):
        missing = [k for k in keys if k not in data]
        added = [k for k in data if k not in keys]
        raise AnswerError(f"{len(data)} items for {len(keys)} texts (missing {missing[:5] or 'none'}, "
                          f"added {added[:5] or 'none'}): items added, dropped or merged")
    wrong = [k for k in keys if not isinstance(data[k], str)]
    if wrong:
        raise AnswerError(f"items {wrong[:5]} are not strings")
    return {k: data[k] for k in keys}


def _json_values(content: str) -> list[Any]:
    """Every JSON object or array the text holds at its top level: the whole text, or
    the values that start at a '{' or '[' outside any value read before."""
    text = content.strip()
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    found: list[Any] = []
    i = 0
    while True:
        starts = [p for p in (text.find("{", i), text.find("[", i)) if p >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            i = start + 1
            continue
        if isinstance(value, (dict, list)) and value:
            found.append(value)
        i = end


def check_translation(text: str, answer: str, *, source: str, target: str,
                      glossary: Mapping[str, str] | None = None) -> str | None:
    """What is wrong with ``answer`` as the ``target`` translation of ``text`` (in
    ``source``, or "auto"), or None if nothing is.

    Empty; a refusal; the text given back when it is in another language (an echo); an
    answer in another language than the target; a glossary term not rendered as
    required; a length no translation of the text would have."""
    if not answer.strip():
        return "empty translation"
    if _REFUSAL.search(answer) and not _REFUSAL.search(text):
        return f"refused: {_quote(answer)}"
    if _norm(answer) == _norm(text):
        text_lang = detect(text)
        if text_lang is not None and not same_language(text_lang, target):
            return "not translated (the text came back as it was)"
        return None  # names, numbers, a heading already in the target language
    answer_lang = detect(answer)
    if answer_lang is not None and not same_language(answer_lang, target):
        return f"not in {target} (reads as {answer_lang}): {_quote(answer)}"
    for term, rendering in (glossary or {}).items():
        if term in text and rendering.casefold() not in answer.casefold():
            return f"glossary: {term!r} must be rendered as {rendering!r}"
    size, got = weight(text), weight(answer)
    if size >= MIN_LENGTH_CHECKED and not MIN_RATIO <= got / size <= MAX_RATIO:
        return f"implausible length ({len(answer)} characters for {len(text)})"
    return None


def weight(text: str) -> int:
    """Length in Latin-letter equivalents: a CJK character or kana counts two."""
    return len(text) + len(_WIDE.findall(text))


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _quote(text: str, size: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= size else text[: size - 1] + "…")
