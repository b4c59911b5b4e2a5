"""The language of an entry: what its source declares, or, for ``language: auto``, what
its text says, detected offline by py3langid (langid.py's model, shipped in the wheel:
no download, no network).

Pure apart from loading the model once (lazily: only configs with an ``auto`` source
pay for it, about 0.6 s).
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from aggregator.html_text import strip_tags

# Below this confidence (py3langid's normalised probability) a text is "unsure": short
# headlines made of names ("NATO summit") score 0.1 to 0.3 for some random language.
MIN_CONFIDENCE = 0.5
_KANA = re.compile(r"[\u3040-\u30ff]")

_LOADING = threading.Lock()  # one load, also when the cycle's warm-up thread started it (run_cycle)


def _model() -> Any:
    with _LOADING:
        return _loaded()


@functools.cache
def _loaded() -> Any:
    """py3langid's identifier, loaded on first need."""
    from deep_translator.constants import GOOGLE_LANGUAGES_TO_CODES
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    # Only languages a translator knows by an ISO 639-1 code: langid's model also
    # has dialects and historic languages (wuu, hbo, ...) no engine takes.
    known = {code.split("-")[0].lower() for code in GOOGLE_LANGUAGES_TO_CODES.values()} | {"he", "zh"}
    ident.set_languages([lang for lang in ident.labels if lang in known])
    return ident


def load() -> None:
    """Load the model now (about 0.6 s) rather than at the first :func:`detect`: for
    callers whose first detection runs against a clock."""
    _model()


def detect(text: str) -> str | None:
    """An ISO 639-1 code, or None when the text says too little to be sure."""
    text = text.strip()
    if sum(ch.isalpha() for ch in text) < 3:
        return None
    if _KANA.search(text):  # kana are Japanese only; kanji alone could be Chinese
        return "ja"
    lang, confidence = _model().classify(text[:2000])
    return lang if confidence >= MIN_CONFIDENCE else None


def classify(text: str) -> tuple[str, float]:
    """py3langid's language for ``text`` and its confidence (0 to 1), without shortcuts."""
    lang, confidence = _model().classify(text.strip()[:2000])
    return str(lang), float(confidence)


def entry_language(title: str, summary: str, content: str, *, declared: str, feed_language: str | None) -> str | None:
    """The language an entry is written in.

    A source's declared language wins (feeds often carry their platform's default, a
    Japanese WordPress blog saying en-US). For ``auto``: the entry's text, detected; when
    the text is too short to tell, what the feed says; else None (unknown: translators
    are then asked to detect it themselves)."""
    if declared != "auto":
        return declared
    sample = " ".join(t for t in (title, strip_tags(summary)[:1000], strip_tags(content)[:1000] if len(summary) < 200 else "") if t)  # noqa: E501
    return detect(sample) or feed_language


def same_language(a: str | None, b: str | None) -> bool:
    """en and en-GB are one language for deciding whether to translate."""
    return bool(a and b) and a.split("-")[0].lower() == b.split("-")[0].lower()  # type: ignore[union-attr]
