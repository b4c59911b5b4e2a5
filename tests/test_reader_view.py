"""What a reader gets: posts first (``max_entries`` counts posts, cited articles come
with them), publisher boilerplate removed, the feed's "updated" the publication time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.html_text import strip_boilerplate
from aggregator.models import Entry, Match
from aggregator.publishing.publish import published_at, select_entries

T0 = datetime(2024, 5, 19, 12, 0, tzinfo=UTC)


def _entry(i: int, role: str, hours_ago: float) -> Entry:
    return Entry(id=i, source_id="blog" if role == "blog" else "wire", role=role, key=f"k{i}",  # type: ignore[arg-type]
                 link=f"https://x.example/{i}", title=f"t{i}", summary="", content="", author=None,
                 categories=(), published=T0 - timedelta(hours=hours_ago), updated=None, first_seen=T0)


POSTS = [_entry(i, "blog", 10 * i) for i in range(1, 6)]  # one every 10 hours
# outlets publish far more often than the blog: 300 articles, one a minute
ARTICLES = [_entry(100 + i, "outlet", i / 60) for i in range(300)]
MATCHES = {1: [Match(1, 250, 1.0, "link", "link")], 5: [Match(5, 120, 1.0, "link", "link")]}


@pytest.mark.parametrize("include", ["cited", "all", "blog"])
def test_max_entries_counts_posts_whatever_the_outlets_publish(include: str) -> None:
    chosen = select_entries(POSTS, ARTICLES, MATCHES, include, max_entries=3)
    assert [e.id for e in chosen if e.role == "blog"] == [1, 2, 3]  # the 3 newest posts, never pushed out
    arts = {e.id for e in chosen if e.role == "outlet"}
    if include == "blog":
        assert not arts
    elif include == "cited":
        assert arts == {250}  # cited by post 1 (selected); 120 is cited by post 5 (not selected)
    else:
        assert 250 in arts and len(arts - {250}) == 3  # plus the 3 newest uncited ones
    dates = [e.date for e in chosen]
    assert dates == sorted(dates, reverse=True)


def test_an_old_cited_article_comes_with_its_post() -> None:
    old = dataclasses.replace(ARTICLES[0], id=999, published=T0 - timedelta(days=30))
    chosen = select_entries(POSTS, [*ARTICLES, old], {2: [Match(2, 999, 1.0, "link", "link")]}, "cited", 2)
    assert {e.id for e in chosen} == {1, 2, 999}


@pytest.mark.parametrize(("html", "kept"), [
    ('<p>Body text.</p><p>The post <a href="https://bd.example/a">Army buys drones</a> appeared first on '
     '<a href="https://bd.example">Breaking Defense</a>.</p>', "<p>Body text.</p>"),
    ('Body text. The post <a href="https://bd.example/a">Army buys drones</a> appeared first on '
     '<a href="https://bd.example">Breaking Defense</a>.', "Body text."),
    ('<p>Lead.</p><p><a class="more-link" href="https://x.example/a">Continue reading <span>→</span></a></p>',
     "<p>Lead.</p>"),
    ('Lead… <a href="https://x.example/a">Continue reading</a>', "Lead…"),
    ('<p>Lead.</p><div class="sharedaddy sd-sharing-enabled"><h3>Share this:</h3><ul><li>X</li></ul></div>',
     "<p>Lead.</p>"),
    ('<p>This post was related to the one about the posting of troops.</p>',
     '<p>This post was related to the one about the posting of troops.</p>'),
])
def test_publisher_boilerplate_is_removed(html: str, kept: str) -> None:
    assert strip_boilerplate(html) == kept


def test_updated_is_when_the_content_last_changed() -> None:
    later = T0 + timedelta(hours=1)
    assert published_at(None, None, "k1", T0) == T0
    assert published_at("k1", T0.isoformat(), "k1", later) == T0  # nothing a reader sees changed
    assert published_at("k1", T0.isoformat(), "k2", later) == later
