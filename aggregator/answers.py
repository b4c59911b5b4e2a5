"""Whether a translation provider's answer is a translation at all. Pure.

Providers answer some failures with HTTP 200 and a text: MyMemory's quota warning
(``MYMEMORY WARNING: YOU USED ALL AVAILABLE FREE TRANSLATIONS FOR TODAY...``), its
``QUERY LENGTH LIMIT`` and ``INVALID ... LANGUAGE`` texts, an error object or an HTML
error page, or the input handed back unchanged. Taken as translations, they would be
published as the entry's title and cached for good. :func:`not_a_translation` says why an
answer is not one; the chain then treats it as that provider's failure. The store uses
the same rule to drop such answers that earlier versions cached (docs/translation.md).
"""

from __future__ import annotations

import json
import re

from aggregator.language import classify, detect, same_language

# Texts providers send instead of a translation (upper-cased by MyMemory; matched in any case).
BANNERS = (
    ("MYMEMORY WARNING", "quota"),
    ("YOU USED ALL AVAILABLE FREE TRANSLATIONS", "quota"),
    ("AVAILABLE FREE TRANSLATIONS FOR TODAY", "quota"),
    ("QUERY LENGTH LIMIT EXCEEDED", "too_long"),
    ("QUERY LENGTH LIMIT EXCEDEED", "too_long"),  # MyMemory's own spelling
    ("MAX ALLOWED QUERY", "too_long"),
    ("INVALID SOURCE LANGUAGE", "language"),
    ("INVALID TARGET LANGUAGE", "language"),
    ("INVALID LANGUAGE PAIR", "language"),
    ("IS AN INVALID SOURCE LANGUAGE", "language"),
    ("PLEASE SELECT TWO DISTINCT LANGUAGES", "language"),
    ("NO QUERY SPECIFIED", "bad_answer"),
    ("INVALID EMAIL PROVIDED", "bad_answer"),
    ("TOO MANY REQUESTS", "rate"),
    ("SERVICE UNAVAILABLE", "server"),
    ("INTERNAL SERVER ERROR", "server"),
    ("THAT\u2019S AN ERROR", "server"),  # Google's error pages
    ("THAT'S AN ERROR", "server"),
)
_HTML = re.compile(r"^\s*(?:<!doctype\s+html|<html\b|<head\b|<body\b)|</html>\s*$", re.I)
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)
_WS = re.compile(r"\s+")
# An answer this many times longer (or shorter) than its input, in characters, is not
# its translation: Japanese to English grows about 2.5x, English to Japanese shrinks to 0.4x.
MAX_GROWTH = 8
MAX_SHRINK = 12
# py3langid is sure of longer texts only; below this many letters, and below this
# confidence, an answer is not judged by its language (names and numbers are language-less).
MIN_LETTERS_TO_JUDGE = 25
MIN_CONFIDENCE_TO_REFUSE = 0.9


def banner_kind(text: str, answer: str) -> str | None:
    """The kind of provider failure an answer's banner reports (quota, too_long, ...),
    when the answer carries one that the input does not."""
    upper, source = answer.upper(), text.upper()
    for banner, kind in BANNERS:
        if banner in upper and banner not in source:
            return kind
    return None


def not_a_translation(text: str, answer: str, source: str, target: str) -> str | None:
    """Why ``answer`` is not a translation of ``text`` from ``source`` (``auto``: unknown)
    into ``target``; None when it may well be one."""
    if not answer.strip():
        return "an empty answer"
    if banner_kind(text, answer) is not None:
        return f"a provider message, not a translation ({_quote(answer)})"
    stripped = answer.strip()
    if stripped[:1] in "{[" and text.strip()[:1] not in "{[":
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, (dict, list)):
            return f"an error object, not a translation ({_quote(answer)})"
    if _HTML.search(answer) and not _HTML.search(text):
        return "an HTML page, not a translation"
    n_in, n_out = len(text.strip()), len(stripped)
    if n_in >= 20 and (n_out > MAX_GROWTH * n_in + 100 or n_out * MAX_SHRINK < n_in):
        return f"{n_out} characters for {n_in}: not its translation"
    if same_language(source, target):
        return None
    if _norm(answer) == _norm(text):
        # What the text itself reads as, not what its source declares: "NATO" or "F-35"
        # in a Japanese post stays "NATO" in English.
        lang = detect(text)
        if lang and not same_language(lang, target):
            return f"the input handed back untranslated ({lang}, not {target})"
    letters = len(_LETTERS.findall(answer))
    if letters >= MIN_LETTERS_TO_JUDGE:
        # Only a long enough text the detector is sure of: headlines full of names are not.
        lang, sure = classify(answer)
        if sure >= MIN_CONFIDENCE_TO_REFUSE and not same_language(lang, target):
            return f"not in {target} (reads as {lang})"
    return None


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip().casefold()


def _quote(answer: str) -> str:
    one = _WS.sub(" ", answer).strip()
    return repr(one[:80] + ("..." if len(one) > 80 else ""))
