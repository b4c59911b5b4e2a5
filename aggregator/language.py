"""Offline language detection for sources declared ``language: auto``. Pure.

By script first (kana → ja, hangul → ko, Cyrillic → ru/uk, ...), then, for Latin
script, by the most frequent function words of the languages feeds mostly use."""

from __future__ import annotations

import re
import unicodedata

_WORDS = {
    "en": "the and of to in is that for on with as was by it from at are this be have",
    "de": "der die und das ist nicht mit den von zu auf für ein eine im sich dem des auch",
    "fr": "le la les et des est une pour dans que qui sur pas par au du avec ce sont",
    "es": "el la los las y de que en del por con para una es se al lo como más",
    "it": "il la che di e per un una non sono del della con è le gli si nel",
    "pt": "o a os as e de do da que em para um uma com não por no na se",
    "nl": "de het een en van is dat op te in voor met zijn niet aan er ook",
    "pl": "i w na nie z się do że to jest o jak po ale od za przez",
}
_WORDSETS = {k: set(v.split()) for k, v in _WORDS.items()}
_TOKEN = re.compile(r"[^\W\d_]+", re.U)


def detect(text: str) -> str | None:
    """An ISO 639-1 code, or None when the text says too little."""
    counts: dict[str, int] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        name = unicodedata.name(ch, "")
        script = name.split(" ")[0]
        if script in ("HIRAGANA", "KATAKANA"):
            script = "KANA"
        counts[script] = counts.get(script, 0) + 1
    if letters < 3:
        return None
    if counts.get("KANA"):
        return "ja"
    if counts.get("HANGUL"):
        return "ko"
    if counts.get("CJK"):
        return "zh"
    if counts.get("CYRILLIC", 0) > letters / 2:
        return "uk" if re.search(r"[іїєґІЇЄҐ]", text) else "ru"
    if counts.get("ARABIC", 0) > letters / 2:
        return "ar"
    if counts.get("HEBREW", 0) > letters / 2:
        return "he"
    if counts.get("GREEK", 0) > letters / 2:
        return "el"
    words = [w.lower() for w in _TOKEN.findall(text)]
    if not words:
        return None
    scores = {lang: sum(1 for w in words if w in ws) for lang, ws in _WORDSETS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else "en"
