"""What is not a translation: provider banners, echoes, the wrong language, absurd lengths;
and no good translation of the dev sets mistaken for one of those."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED

from aggregator.answers import not_a_translation

TITLE = "米下院共和党がウクライナ支援法案を公表、20日に採決へ"
LEAD = ("米下院のジョンソン議長は17日、ウクライナ、イスラエル、インド太平洋向けの支援を個別に審議する法案を"
        "公表し、20日(土曜日)に採決を行う方針を示した。")
QUOTA = ("MYMEMORY WARNING: YOU USED ALL AVAILABLE FREE TRANSLATIONS FOR TODAY. NEXT AVAILABLE IN  10 HOURS 20 "
         "MINUTES 40 SECONDS VISIT HTTPS://MYMEMORY.TRANSLATED.NET/DOC/USAGELIMITS.PHP TO TRANSLATE MORE")


@pytest.mark.parametrize("text, answer, source, why", [
    (TITLE, QUOTA, "ja", "a provider message"),
    (TITLE, "QUERY LENGTH LIMIT EXCEDEED. MAX ALLOWED QUERY : 500 CHARS", "ja", "a provider message"),
    (TITLE, "'AUTO' IS AN INVALID SOURCE LANGUAGE . EXAMPLE: LANGPAIR=EN|IT USING 2 LETTER ISO", "auto",
     "a provider message"),
    (TITLE, TITLE, "ja", "the input handed back untranslated (ja, not en)"),
    (LEAD, LEAD, "auto", "the input handed back untranslated"),
    (LEAD, LEAD + "。", "ja", "not in en (reads as ja)"),
    (LEAD, "Der Sprecher des US-Repräsentantenhauses, Johnson, hat am 17. Gesetzentwürfe veröffentlicht", "ja",
     "not in en (reads as de)"),
    (LEAD, "Johnson " * 200, "ja", "characters for"),
    (LEAD, "Aid.", "ja", "4 characters for 75"),  # a truncated answer
    (LEAD, "Johnson announced the bills.", "ja", None),  # short, but within 1/12 of the input
    (TITLE, '{"responseStatus": 403, "responseDetails": "INVALID KEY"}', "ja", "an error object"),
    (TITLE, "<!DOCTYPE html><html><body>Error 502</body></html>", "ja", "an HTML page"),
    (TITLE, "   ", "ja", "an empty answer"),
])
def test_answers_that_are_not_translations(text: str, answer: str, source: str, why: str | None) -> None:
    got = not_a_translation(text, answer, source, "en")
    if why is None:
        assert got is None
    else:
        assert got is not None and why in got, got


@pytest.mark.parametrize("text, answer", [
    ("NATO", "NATO"),  # names and numbers stay what they are
    ("F-35A", "F-35A"),
    ("ロイター", "Reuters"),
    ("「MYMEMORY WARNING」という表示が出た", "The message 'MYMEMORY WARNING' appeared"),  # quoted, not a banner
    (TITLE, "House Republicans unveil Ukraine aid bill, vote set for the 20th"),
])
def test_translations_that_are_translations(text: str, answer: str) -> None:
    assert not_a_translation(text, answer, "ja", "en") is None


def test_no_translation_of_the_dev_sets_is_refused() -> None:
    refused = []
    n = 0
    for name in ("dev", "dev2"):
        for line in (SHARED / "matchbench" / name / "translations.jsonl").read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            n += 1
            why = not_a_translation(d["text"], d["translation"], d["source"], d["target"])
            if why:
                refused.append((d["text"][:40], why))
    assert n > 1000 and not refused, refused
