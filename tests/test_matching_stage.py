"""The match stage over a real store: every post is matched, published or not, and a
cycle's new articles are matched again only against the posts whose window holds them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.config import parse_config
from aggregator.models import EntryData
from aggregator.running.matching import match_stage
from aggregator.store import Store

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
CONFIG = """
output: {{max_entries: 1, include: blog}}
storage: {{url: 'sqlite:///{db}'}}
sources:
  - {{id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}}
  - {{id: wire, name: Wire, url: 'https://wire.example/feed', role: outlet}}
  - {{id: gnews, name: Reuters, url: 'https://news.google.com/rss/search?q=site:reuters.com', role: outlet,
      site: 'https://www.reuters.com'}}
"""


def _post(key: str, when: datetime, headline: str) -> EntryData:
    return EntryData(key=key, link=f"https://blog.example.jp/{key}/", title=key, published=when, language="ja",
                     content=f"<p>リード。</p><p>参考:{headline}</p>")


def _store(tmp_path: Path) -> tuple[Store, object]:
    config = parse_config(CONFIG.format(db=tmp_path / "s.sqlite3"))
    store = Store(config.db_path)
    store.sync_sources((s.id, s.url, s.role) for s in config.sources)
    return store, config


def test_new_articles_are_matched_only_against_the_posts_whose_window_holds_them(tmp_path: Path) -> None:
    store, config = _store(tmp_path)
    recent = _post("recent", NOW - timedelta(hours=3), "Finland orders two more minelayers for the Gulf")
    older = _post("older", NOW - timedelta(days=30), "Estonia opens a new naval base on Saaremaa island")
    store.record_success("blog", "blog", [recent, older], now=NOW, next_fetch=NOW, status=200, etag=None,
                         last_modified=None)
    store.record_success("wire", "outlet", [EntryData(key="w0", link="https://wire.example/0", title="Unrelated",
                                                      published=NOW - timedelta(days=2))],
                         now=NOW, next_fetch=NOW, status=200, etag=None, last_modified=None)
    # Both posts are matched though the publication shows one; both stay unresolved.
    assert match_stage(store, config, now=lambda: NOW) == (2, 0)  # type: ignore[arg-type]
    later = NOW + timedelta(hours=1)
    store.record_success("wire", "outlet", [EntryData(
        key="w1", link="https://wire.example/1", title="Finland orders two more minelayers for the Gulf",
        published=NOW - timedelta(days=1))], now=later, next_fetch=later, status=200, etag=None, last_modified=None)
    # The new article falls in the recent post's window only: the older one is not matched again.
    assert match_stage(store, config, now=lambda: later) == (1, 1)  # type: ignore[arg-type]
    # Nothing new: nothing is matched.
    assert match_stage(store, config, now=lambda: later) == (0, 0)  # type: ignore[arg-type]


def test_a_link_to_a_site_an_aggregated_feed_carries_matches_its_item(tmp_path: Path) -> None:
    store, config = _store(tmp_path)
    url = "https://www.reuters.com/world/europe/norway-buy-long-range-rocket-artillery-2025-03-19/"
    store.record_success("gnews", "outlet", [
        EntryData(key="g1", link="https://news.google.com/rss/articles/CBMi1", published=NOW - timedelta(hours=9),
                  title="Norway to buy long-range rocket artillery, minister says - Reuters"),
        EntryData(key="g2", link="https://news.google.com/rss/articles/CBMi2", published=NOW - timedelta(hours=8),
                  title="Norway to buy new submarines from Germany - Reuters")],
        now=NOW, next_fetch=NOW, status=200, etag=None, last_modified=None)
    post = EntryData(key="p", link="https://blog.example.jp/p/", title="p", published=NOW, language="ja",
                     content=f'<p>リード。</p><p>参考:<a href="{url}">Norway to buy long-range rocket artillery, '
                             'minister says</a></p>')
    store.record_success("blog", "blog", [post], now=NOW, next_fetch=NOW, status=200, etag=None, last_modified=None)
    match_stage(store, config, now=lambda: NOW)  # type: ignore[arg-type]
    [m] = store.all_matches()
    assert store.entries_by_ids([m.article_id])[m.article_id].link == "https://news.google.com/rss/articles/CBMi1"
    assert m.evidence == "headline 1.00, carried by gnews"


def test_the_site_is_also_learned_from_the_items_source_element(tmp_path: Path) -> None:
    store, config = _store(tmp_path)
    url = "https://www.reuters.com/world/europe/sweden-moves-air-defence-to-gotland-2025-03-19/"
    store.record_success("wire", "outlet", [  # a source with no ``site``: the items say where they come from
        EntryData(key="g1", link="https://news.google.com/rss/articles/CBMi9", published=NOW - timedelta(hours=9),
                  title="Sweden moves air defence to Gotland - Reuters", source_site="https://www.reuters.com")],
        now=NOW, next_fetch=NOW, status=200, etag=None, last_modified=None)
    assert store.entries_by_ids([1])[1].source_site == "https://www.reuters.com"
    post = EntryData(key="p", link="https://blog.example.jp/p/", title="p", published=NOW, language="ja",
                     content=f'<p>リード。</p><p>参考:<a href="{url}">{url}</a></p>')
    store.record_success("blog", "blog", [post], now=NOW, next_fetch=NOW, status=200, etag=None, last_modified=None)
    match_stage(store, config, now=lambda: NOW)  # type: ignore[arg-type]
    [m] = store.all_matches()
    assert m.evidence == "slug 1.00, carried by wire"
