"""The match stage's shortcuts say what the plain paths say: headline variants of ASCII
and other headlines, the mentions of the named outlets only, the parsed blocks kept."""

from __future__ import annotations

import pytest

from aggregator.citing.articles import headline_variants, normalize_headline
from aggregator.citing.extract import Outlet, Outlets, find_mentions
from aggregator.html_text import blocks


def _norm(s: str) -> str:
    """normalize_headline as defined: NFKC, quotes and dashes, casefold, no quotes, words."""
    import unicodedata

    from aggregator.citing import articles

    t = unicodedata.normalize("NFKC", s).translate(articles._QUOTES).casefold()
    return articles._NONWORD.sub(" ", t.replace("'", "").replace('"', "")).strip()


def _variants(text: str, names: list[str]) -> tuple[str, ...]:
    """headline_variants as defined: every form looked for, every part normalised in full."""
    import unicodedata

    from aggregator.citing import articles

    known = {_norm(n) for n in names}
    t = unicodedata.normalize("NFKC", text).translate(articles._QUOTES).strip()
    out = [_norm(t)]
    m = articles._SUFFIX.search(t)
    if m and (len(_norm(m.group(1)).split()) == 1 or _norm(m.group(1)) in known):
        out.append(_norm(t[: m.start()]))
    m = articles._PAREN_SUFFIX.search(t)
    if m and _norm(m.group(1)) in known:
        out.append(_norm(t[: m.start()]))
    m = articles._PREFIX.match(t)
    if m and _norm(m.group(1)) in known:
        out.append(_norm(t[m.end():]))
    return tuple(dict.fromkeys(v for v in out if v))


@pytest.mark.parametrize("title", [
    "Ukraine says X - Reuters", "Ukraine says X\t-\tReuters", "Ukraine says X -\u00a0Reuters",
    "Reuters: Ukraine says X", "Ukraine says X (Reuters)", "Ukraine says X【Reuters】 ", "Ukraine’s “deal” – AP",
    "Ｕｋｒａｉｎｅ says X | Reuters", "Ukraine war latest - Russia advances near Pokrovsk", "", "  ", "-", "(Reuters)",
    "Reuters: ", "ＡＰ: Ｘ", "Army's 155mm ramp: Scranton plant hits target", "Café: l’“été” (AP)",
])
def test_headline_variants_are_those_of_the_full_normalisation(title: str) -> None:
    assert normalize_headline(title) == _norm(title)
    for names in ([], ["Reuters", "AP"]):
        assert headline_variants(title, names) == _variants(title, names)
        assert headline_variants(title, iter(names)) == _variants(title, names)  # an iterator is read once


def test_mentions_of_named_outlets_come_in_the_outlets_order() -> None:
    outlets = [Outlet("politico", ("POLITICO",)), Outlet("reuters", ("ロイター",)), Outlet("bs", ("Brussels Signal",)),
               Outlet("ft", ("FT",))]
    # sentence by sentence; in one sentence, in the outlets' order
    body = ["Brussels Signalは12日、…と報じた。ロイター通信によると、米POLITICOも13日、…と報じた。"]
    fast = find_mentions(body, Outlets(outlets))
    assert fast == find_mentions(body, outlets)
    assert [c.outlet for c in fast] == ["bs", "politico", "reuters"]


def test_blocks_kept_from_an_earlier_parse_are_fresh_lists() -> None:
    html = "<p>参考:<a href='https://o.example/a'>A headline</a><br>second line</p><script>x()</script><p>本文</p>"
    first = blocks(html)
    first.append(first[0])
    again = blocks(html)
    assert again is not first and len(again) == 3
    assert [b.text for b in again] == ["参考:A headline", "second line", "本文"]
    assert again[0].links == (("https://o.example/a", "A headline"),)
    assert blocks("") == [] and blocks("plain < text") == blocks("plain < text")
