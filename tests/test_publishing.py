"""Ids and ``updated`` (aggregator.publishing.publish.build_items, pure): ids fixed at first
publication; ``updated`` moves when, and only when, what a reader sees changes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config import parse_config
from aggregator.models import Entry, Match, plausible
from aggregator.publishing.publish import build_items
from aggregator.publishing.render import FeedItem
from aggregator.store import EntryTranslation, Publication

T0 = datetime(2024, 5, 19, 12, 0, tzinfo=UTC)
SEEN = datetime(2024, 5, 19, 13, 0, tzinfo=UTC)
CONFIG = parse_config("""
output: {link: 'https://news.example.org/'}
sources:
  - {id: blog, name: Blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}
  - {id: politico, name: POLITICO, url: 'https://politico.example/feed', role: outlet, language: en}
""")
POST = Entry(id=1, source_id="blog", role="blog", key="guid-1", link="https://blog.example.jp/p/1",
             title="米議会、支援で停滞", summary="", content="<p>冒頭。</p><p>本文。</p>", author=None,
             categories=("米国",), published=T0, updated=None, first_seen=SEEN, image=None)
ARTICLE = Entry(id=2, source_id="politico", role="outlet", key="guid-1", link="https://politico.example/a",
                title="Aid bill stalls", summary="<p>Aid.</p>", content="", author="Jane Doe",
                categories=(), published=T0 - timedelta(hours=5), updated=None, first_seen=SEEN)
MATCH = Match(post_id=1, article_id=2, score=1.0, method="link", evidence="link")


def done(entry_id: int, title: str, summary: Sequence[str], provider: str = "libre") -> EntryTranslation:
    return EntryTranslation(entry_id, "en", "h", "done", provider, None, 1, None, SEEN, title,
                            json.dumps(list(summary)), json.dumps(["Body."]))


def pending(entry_id: int, retry_at: datetime, error: str) -> EntryTranslation:
    return EntryTranslation(entry_id, "en", "h", "pending", None, error, 1, retry_at, SEEN, None, None, None)


def run(now: datetime, pubs: Mapping[int, Publication], *, post: Entry = POST,
        translation: EntryTranslation | None = None, matches: Sequence[Match] = (MATCH,),
        ) -> tuple[dict[int, FeedItem], dict[int, Publication]]:
    trs = {1: translation} if translation else {}
    items, changed = build_items([post, ARTICLE], config=CONFIG, source_languages={"blog": "ja", "politico": "en"},
                                 matches={1: list(matches)}, articles={2: ARTICLE}, translations=trs,
                                 publications=pubs, now=now)
    new = dict(pubs)
    new.update({p.entry_id: p for p in changed})
    return {1: items[0], 2: items[1]}, new


@pytest.fixture
def first() -> tuple[dict[int, FeedItem], dict[int, Publication]]:
    return run(SEEN, {}, translation=done(1, "US Congress stalls aid", ["Lead."]))


def test_ids_are_tag_uris_of_source_and_key_fixed_at_first_publication(first) -> None:
    items, pubs = first
    assert items[1].id.startswith("tag:news.example.org,2024-05-19:blog/")
    assert items[2].id.startswith("tag:news.example.org,2024-05-19:politico/")
    # same guid string in two sources: two ids
    assert items[1].id != items[2].id
    # the stored id wins, whatever the entry looks like later
    later, _ = run(SEEN + timedelta(days=3), pubs, post=dataclasses.replace(POST, title="別の題", link="https://x/y"),
                   translation=done(1, "Another title", ["Lead."]))
    assert later[1].id == items[1].id


def test_a_run_that_changed_nothing_moves_nothing(first) -> None:
    items, pubs = first
    again, pubs2 = run(SEEN + timedelta(hours=6), pubs, translation=done(1, "US Congress stalls aid", ["Lead."]))
    assert again == items
    assert pubs2 == pubs


@pytest.mark.parametrize("change", [
    pytest.param(dict(translation=done(1, "US Congress stalls Ukraine aid", ["Lead."])), id="translated-title"),
    pytest.param(dict(translation=done(1, "US Congress stalls aid", ["A better lead."])), id="translated-summary"),
    pytest.param(dict(translation=None), id="translation-lost"),
    pytest.param(dict(matches=()), id="sources"),
    pytest.param(dict(post=dataclasses.replace(POST, title="米議会、支援で停滞（更新）")), id="original-title"),
    pytest.param(dict(post=dataclasses.replace(POST, image="https://blog.example.jp/i.jpg")), id="image"),
])
def test_updated_moves_when_what_a_reader_sees_changes(first, change: dict) -> None:
    items, pubs = first
    kwargs = {"translation": done(1, "US Congress stalls aid", ["Lead."]), **change}
    when = SEEN + timedelta(hours=6)
    later, pubs2 = run(when, pubs, **kwargs)
    assert later[1].updated == when
    assert later[1].id == items[1].id
    assert later[2].updated == items[2].updated  # the other entry did not move
    assert pubs2[1].first_published == pubs[1].first_published


def test_a_failed_retry_that_only_changes_the_retry_time_does_not_move_updated() -> None:
    items, pubs = run(SEEN, {}, translation=pending(1, SEEN + timedelta(minutes=5), "HTTP 500"))
    later, _ = run(SEEN + timedelta(hours=1), pubs, translation=pending(1, SEEN + timedelta(hours=2), "timeout"))
    assert later[1].updated == items[1].updated


def test_updated_at_first_publication_is_the_sources_never_before_published(first) -> None:
    items, _ = first
    assert items[1].published == T0 and items[1].updated == T0  # no <updated> in the source
    odd, _ = run(SEEN, {}, post=dataclasses.replace(POST, updated=T0 - timedelta(days=2)))
    assert odd[1].updated == T0


def test_implausible_or_missing_dates_fall_back_to_first_seen() -> None:
    assert plausible(None, SEEN) == SEEN
    assert plausible(datetime(1970, 1, 1, tzinfo=UTC), SEEN) == SEEN
    assert plausible(datetime(2099, 1, 1, tzinfo=UTC), SEEN) == SEEN
    assert plausible(SEEN + timedelta(hours=2), SEEN) == SEEN + timedelta(hours=2)  # clock skew is tolerated
    assert plausible(T0, SEEN) == T0
