"""What keeps matching cheap with hundreds of outlets and thousands of stored articles:
one pass to find the outlets a text names, and article text read only as far as the
matcher reads it. Each gives the same answer as the plain way."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.citing.extract import NameFinder, Outlet, extract, find_mentions
from aggregator.citing.match import article_from_entry, article_from_head, outlets_named
from aggregator.entryview import ARTICLE_CHARS
from aggregator.models import EntryData
from aggregator.store import Store

T = datetime(2024, 5, 1, tzinfo=UTC)


def test_name_finder_agrees_with_a_substring_test_for_each_name() -> None:
    rng = random.Random(7)
    alphabet = "abKyiv Indeßẞİ米ロイタ"
    for _ in range(2000):
        names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 8))]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        want = {n.casefold() for n in names if n.casefold() in text.casefold()}
        assert NameFinder(names).find(text) == want, (names, text)


def test_names_inside_and_at_the_start_of_longer_names_are_all_found() -> None:
    found = NameFinder(["Kyiv Independent", "Independent", "Kyiv", "POLITICO"]).find("米紙キーウ: the KYIV INDEPENDENT said")
    assert found == {"kyiv independent", "independent", "kyiv"}


def test_a_mention_is_found_among_hundreds_of_outlets() -> None:
    outlets = [Outlet(f"o{i}", (f"Outlet {i}", f"アウトレット{i}")) for i in range(600)]
    outlets.append(Outlet("politico", ("POLITICO", "ポリティコ")))
    html = "<p>米ポリティコは13日、国防総省が弾薬の追加調達を決めたと報じた。</p><p>管理人の見解。</p>"
    text = extract(html, outlets=outlets)
    assert [(c.kind, c.outlet, c.day) for c in text.citations] == [("mention", "politico", 13)]
    # Japanese names have no word edges: アウトレット1 is found inside アウトレット12 too, but
    # what follows it ("2は…") attributes nothing to it; only アウトレット12 is cited.
    assert {c.outlet for c in find_mentions(["アウトレット12は5日、…と伝えた。"], outlets)} == {"o12"}
    names = {o.id: o.names for o in outlets}
    assert outlets_named(["Outlet 12 and POLITICO"], names) == {"o1", "o12", "politico"}


def test_matching_reads_the_same_article_text_without_loading_full_content(tmp_path: Path) -> None:
    long_content = "<p>" + "word " * 3000 + "</p>"
    entries = [EntryData("a", "https://o.example/a", "Summary only", summary="<p>Lead.</p>", published=T),
               EntryData("b", "https://o.example/b", "Content only", content=long_content, published=T),
               EntryData("c", "https://o.example/c", "Both", summary="<p>Short.</p>", content=long_content,
                         published=T)]
    with Store(tmp_path / "s.sqlite3") as store:
        store.sync_sources([("o", "https://o.example/feed", "outlet")])
        store.record_success("o", "outlet", entries, now=T, next_fetch=T, status=200, etag=None, last_modified=None)
        window = (T - timedelta(days=1), T + timedelta(days=1))
        full = {e.id: e for e in store.articles_between(*window)}
        heads = store.article_heads(*window)  # what the match stage reads: no text at all
        assert {full[h[0]].key for h in heads} == {"a", "b", "c"}
        for head in heads:
            a = article_from_entry(full[head[0]])
            c = article_from_head(*head, load=lambda i: store.article_text(i, ARTICLE_CHARS))
            assert (c.text, c.canonical, c.days, c.variants) == (a.text, a.canonical, a.days, a.variants)
        assert store.article_text(10**9, ARTICLE_CHARS) == ""
