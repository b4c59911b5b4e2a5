"""What the match stage reads and writes in bulk, on each back-end: the index's light
rows (Store.article_heads), many posts' matches in one transaction, many posts' states."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.citing.articles import ArticleIndex, article_from_entry, article_from_head
from aggregator.models import EntryData, Match
from aggregator.store import Store

T = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def s(store_url: str) -> Iterator[Store]:
    with Store(store_url) as st:
        st.sync_sources([("o", "https://o.example/feed", "outlet"), ("blog", "https://b.example/feed", "blog")])
        yield st


def outlet_entries() -> list[EntryData]:
    return [
        EntryData("a", "https://www.o.example/a?utm_source=x", "Plain - Outlet", summary="<p>S</p>", published=T,
                  published_offset=-300),
        # No date of its own: its date is when it was first seen.
        EntryData("b", "https://o.example/b", "Undated (Outlet)", content="<p>C</p>"),
        # A date far after it was first seen (a broken clock): first seen counts too.
        EntryData("c", "https://o.example/c", "Future", published=T + timedelta(days=30),
                  source_site="https://www.reuters.com"),
        EntryData("d", "https://o.example/d", "Updated only", updated=T - timedelta(hours=3)),
    ]


def test_article_heads_give_what_entries_give_the_index(s: Store) -> None:
    s.record_success("o", "outlet", outlet_entries(), now=T, next_fetch=T, status=200, etag=None,
                     last_modified=None)
    start, end = T - timedelta(days=1), T + timedelta(days=1)
    heads = s.article_heads(start, end)
    entries = s.articles_between(start, end)
    assert [h[0] for h in heads] == [e.id for e in entries] and len(heads) == 4
    names = ["Outlet"]
    for h, e in zip(heads, entries, strict=True):
        assert h == (e.id, e.source_id, e.title, e.link, e.canonical_link, e.source_site, e.date, e.published_offset)
        a, b = article_from_head(*h, names), article_from_entry(e, names)
        assert (a.id, a.source_id, a.title, a.canonical, a.host, a.date, a.days, a.variants, a.site) == \
            (b.id, b.source_id, b.title, b.canonical, b.host, b.date, b.days, b.variants, b.site)
    # the window is on the stored date, both ends included
    assert [h[2] for h in s.article_heads(T, T)] == ["Plain - Outlet", "Undated (Outlet)", "Future"]


def test_article_heads_leave_out_a_row_whose_date_cannot_be_read(s: Store) -> None:
    s.record_success("o", "outlet", outlet_entries(), now=T, next_fetch=T, status=200, etag=None,
                     last_modified=None)
    with s.transaction() as db:
        db.execute("UPDATE entries SET published='yesterday' WHERE key='a'")
    heads = s.article_heads(T - timedelta(days=1), T + timedelta(days=1))
    assert [h[2] for h in heads] == ["Undated (Outlet)", "Future", "Updated only"]


def test_many_posts_matches_are_written_at_once_and_say_what_changed(s: Store) -> None:
    s.record_success("o", "outlet", outlet_entries(), now=T, next_fetch=T, status=200, etag=None,
                     last_modified=None)
    posts = [EntryData(f"p{i}", f"https://b.example/p{i}", f"post {i}", published=T) for i in range(3)]
    s.record_success("blog", "blog", posts, now=T, next_fetch=T, status=200, etag=None, last_modified=None)
    ids = {e.key: e.id for e in s.iter_entries().__next__()}
    p0, p1, p2, a, b = ids["p0"], ids["p1"], ids["p2"], ids["a"], ids["b"]
    assert s.set_many_matches([], T) == 0
    first = [(p0, [Match(p0, a, 1.0, "link", "link")], "resolved"),
             (p1, [], "unresolved"),
             (p2, [Match(p2, a, 0.9, "headline", "headline 0.90"), Match(p2, b, 1.0, "link", "link")], "resolved")]
    assert s.set_many_matches(first, T) == 2  # p1 had none and has none
    assert s.match_states([p0, p1, p2, 10**9]) == {p0: "resolved", p1: "unresolved", p2: "resolved"}
    assert s.matches_for([p0, p1, p2]) == {p0: [Match(p0, a, 1.0, "link", "link")],
                                           p2: [Match(p2, b, 1.0, "link", "link"),
                                                Match(p2, a, 0.9, "headline", "headline 0.90")]}
    cited = {e.key for batch in s.iter_entries() for e in batch if e.role == "outlet"} & {"a", "b"}
    assert cited == {"a", "b"}
    # Only p2 changes (its evidence); p0's state goes back to "to be matched"; the one-post
    # method says the same as the many-post one.
    again = [(p0, [Match(p0, a, 1.0, "link", "link")], None),
             (p2, [Match(p2, a, 0.95, "headline", "headline 0.95")], "resolved")]
    assert s.set_many_matches(again, T) == 1
    assert s.match_states([p0, p2]) == {p0: None, p2: "resolved"}
    assert s.matches_for([p2]) == {p2: [Match(p2, a, 0.95, "headline", "headline 0.95")]}
    assert s.set_matches(p2, [Match(p2, a, 0.95, "headline", "headline 0.95")], "resolved", T) is False
    assert s.set_matches(p2, [], "unresolved", T) is True
    assert s.matches_for([p2]) == {}
    # the same post twice in one batch: the last word counts, as two calls would say
    twice = [(p1, [Match(p1, a, 1.0, "link", "link")], "resolved"), (p1, [], "unresolved")]
    assert s.set_many_matches(twice, T) == 2
    assert s.matches_for([p1]) == {} and s.match_states([p1]) == {p1: "unresolved"}
    cited_ids = {r[0] for r in s.db.execute("SELECT id FROM entries WHERE cited=1")}
    assert cited_ids == {a, b}  # cited for good, even after the matches went


def _brute(index: ArticleIndex, variants: list[str], start: datetime, end: datetime) -> set[int]:
    """What headline_candidates must return when no more than ``keep`` qualify."""
    from aggregator.citing.articles import _stem, tokens

    toks = {_stem(t) for v in variants for t in tokens(v)}
    known = sorted((len(index.by_token[t]), t) for t in toks if t in index.by_token)
    ids = set().union(*(index.by_token[t] for _, t in known[:4])) if known else set()
    return {i for i in ids if start <= index.by_id[i].date <= end}


def test_headline_candidates_take_the_window_both_ends_included() -> None:
    from aggregator.models import Entry

    def art(i: int, title: str, when: datetime) -> Entry:
        return Entry(id=i, source_id="o", role="outlet", key=str(i), link=f"https://o.example/{i}", title=title,
                     summary="", content="", author=None, categories=(), published=when, updated=None,
                     first_seen=when + timedelta(days=60))

    base = T - timedelta(days=3)
    arts = [art(i, f"Zelensky meets Macron in Paris item{i % 3}", base + timedelta(hours=6 * i)) for i in range(30)]
    index = ArticleIndex(article_from_entry(a) for a in arts)
    for lo, hi in [(0, 29), (4, 4), (3, 17), (29, 40), (-5, -1)]:
        start, end = base + timedelta(hours=6 * lo), base + timedelta(hours=6 * hi)
        for variants in (["zelensky meets macron in paris item1"], ["macron item2"], ["nobody"]):
            got = {a.id for a in index.headline_candidates(variants, start, end)}
            assert got == _brute(index, variants, start, end)
    # more than ``keep``: the ones sharing most rare words, then by id
    many = ArticleIndex(article_from_entry(a) for a in
                        [art(i, f"Macron visit {'Kyiv' if i < 5 else 'Rome'}", base) for i in range(60)])
    best = many.headline_candidates(["macron visit kyiv"], base, base, keep=10)
    assert [a.id for a in best] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    # an article added after a lookup is found by the next one
    many.add(article_from_entry(art(100, "Macron visit Kyiv", base)))
    assert 100 in {a.id for a in many.headline_candidates(["macron visit kyiv"], base, base, keep=10)}
