"""Retention: the pure policy, the store shell on a real SQLite file, and a cycle
through the CLI that prunes what no post cites and keeps what readers need."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from test_pipeline_e2e import write_config

from aggregator.config import parse_config
from aggregator.exceptions import ConfigError
from aggregator.models import EntryData, Match
from aggregator.running.retention import (
    ArticleAge,
    articles_to_prune,
    compact_if_due,
    compaction_due,
    derived_hashes,
    prune_articles,
)
from aggregator.store import EntryTranslation, Publication, Store

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY = timedelta(days=1)


# -- policy ----------------------------------------------------------------------------


def test_only_articles_old_by_date_and_by_last_sighting_and_uncited_are_pruned() -> None:
    arts = [
        ArticleAge(1, NOW - 100 * DAY, NOW - 99 * DAY),  # old, gone from its feed: pruned
        ArticleAge(2, NOW - 100 * DAY, NOW - 99 * DAY),  # old but cited: kept
        ArticleAge(3, NOW - 100 * DAY, NOW - 1 * DAY),  # old but its feed still carries it: kept
        ArticleAge(4, NOW - 10 * DAY, NOW - 10 * DAY),  # young: kept
        ArticleAge(5, NOW - 90 * DAY - timedelta(seconds=1), NOW - 90 * DAY - timedelta(seconds=1)),  # just over
        ArticleAge(6, NOW - 90 * DAY, NOW - 90 * DAY),  # exactly the age: kept
    ]
    assert articles_to_prune(arts, {2}, now=NOW, keep=90 * DAY) == [1, 5]


def test_no_retention_age_keeps_everything() -> None:
    assert articles_to_prune([ArticleAge(1, NOW - 1000 * DAY, NOW - 1000 * DAY)], set(), now=NOW, keep=None) == []


def test_compaction_is_due_at_most_every_period_and_only_with_space_to_give_back() -> None:
    week = 7 * DAY
    assert compaction_due(None, NOW, week, free_pages=10)
    assert not compaction_due(None, NOW, week, free_pages=0)
    assert not compaction_due(NOW - 6 * DAY, NOW, week, free_pages=10)
    assert compaction_due(NOW - 7 * DAY, NOW, week, free_pages=10)


def test_retention_shorter_than_the_matching_windows_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config("retention:\n  articles: 10d\nsources: [{id: b, url: 'https://b.example/', role: blog}]\n",
                     filename="c.yaml")
    assert e.value.errors == ["c.yaml:2: retention.articles: 10d is shorter than matching.window + "
                              "matching.late_window (21d): articles could be pruned before the posts that cite "
                              "them are matched"]
    cfg = parse_config("retention: {articles: null}\nsources: [{id: b, url: 'https://b.example/', role: blog}]\n")
    assert cfg.retention.articles is None and cfg.retention.compact_every == 7 * DAY


# -- the shell, on a real store ----------------------------------------------------------

CONFIG = parse_config("""translation: {glossary: {キーウ: Kyiv}}
sources:
  - {id: blog, url: 'https://blog.example.jp/feed', role: blog, language: ja}
  - {id: out, url: 'https://out.example/feed', role: outlet}
""")


def _article(key: str, published: datetime) -> EntryData:
    return EntryData(key=key, link=f"https://out.example/{key}", title=f"Headline {key}",
                     summary=f"<p>Summary of {key}.</p>", published=published)


def test_pruning_forgets_old_uncited_articles_with_everything_hanging_off_them(store_url: str) -> None:
    with Store(store_url) as s:
        s.sync_sources([("blog", "https://blog.example.jp/feed", "blog"), ("out", "https://out.example/feed", "outlet")])
        old = NOW - 200 * DAY
        # seen last 200 days ago: the feed dropped them long since
        s.record_success("out", "outlet", [_article("old1", old), _article("old2", old), _article("cited", old)],
                         now=old, next_fetch=old + DAY, status=200, etag=None, last_modified=None)
        s.record_success("out", "outlet", [_article("young", NOW - 5 * DAY), _article("evergreen", old)],
                         now=NOW - DAY, next_fetch=NOW, status=200, etag=None, last_modified=None)
        post = EntryData(key="p", link="https://blog.example.jp/p", title="記事", published=old, language="ja")
        s.record_success("blog", "blog", [post], now=old, next_fetch=old + DAY, status=200, etag=None,
                         last_modified=None)
        ids = {e.key: e.id for e in s.newest_entries(["blog", "outlet"], 100)}
        s.set_matches(ids["p"], [Match(ids["p"], ids["cited"], 1.0, "link", "link")], "matched", old)
        entries = s.entries_by_ids(ids.values())
        for key in ("old1", "cited", "young"):
            e = entries[ids[key]]
            s.set_entry_translation(EntryTranslation(e.id, "ja", "h", "done", "libre", None, 1, None, old,
                                                     "見出し", "[]", "[]"))
            s.save_publications([Publication(e.id, f"tag:x,2025:{key}", old, old, "v")])
            s.put_embeddings([(h, b"\0" * 8) for h in derived_hashes(e, {"キーウ": "Kyiv"})])
            s.cache_translation(e.title, "en", "ja", "見出し", "libre", old)

        assert prune_articles(s, CONFIG, NOW) == 2

        left = {e.key for e in s.newest_entries(["blog", "outlet"], 100)}
        assert left == {"p", "cited", "young", "evergreen"}
        gone = [ids["old1"], ids["old2"]]
        assert s.entry_translations(gone, "ja") == {} and s.publications(gone) == {}
        assert set(s.entry_translations([ids["cited"], ids["young"]], "ja")) == {ids["cited"], ids["young"]}
        assert s.embeddings(derived_hashes(entries[ids["old1"]], {})) == {}
        assert s.embeddings(derived_hashes(entries[ids["cited"]], {}))
        assert s.cached_translations(["Headline old1"], "en", "ja") == {}
        assert s.cached_translations(["Headline cited"], "en", "ja")
        assert [m.article_id for m in s.all_matches()] == [ids["cited"]]
        # nothing more to prune
        assert prune_articles(s, CONFIG, NOW) == 0


def test_pruning_forgets_the_embeddings_the_matcher_stored(store_url: str) -> None:
    """Keys computed the way the matcher computes them (its Article text, cut by its
    embedding function, hashed as the Embedder hashes), not retention's own: a long
    summary is where a key made from the whole text would differ."""
    from aggregator.citing import match
    from aggregator.entryview import text_hash

    long_summary = "<p>" + " ".join(f"Sentence {i} of a long article about air defence." for i in range(60)) + "</p>"
    with Store(store_url) as s:
        s.sync_sources([("out", "https://out.example/feed", "outlet")])
        old = NOW - 200 * DAY
        item = EntryData(key="long", link="https://out.example/long", title="Headline long", summary=long_summary,
                         published=old)
        s.record_success("out", "outlet", [item], now=old, next_fetch=old + DAY, status=200, etag=None,
                         last_modified=None)
        s.record_success("out", "outlet", [], now=old + DAY, next_fetch=old + DAY, status=200, etag=None,
                         last_modified=None)  # the feed moved on
        (entry,) = s.newest_entries(["outlet"], 10)
        article = match.article_from_entry(entry)
        assert len(article.text) > 400  # the case where the whole text and the embedded part differ
        keys = [text_hash(match._embed_text(t)) for t in (article.title, article.text)]
        s.put_embeddings([(k, b"\0" * 8) for k in keys])
        assert len(s.embeddings(keys)) == 2

        assert prune_articles(s, CONFIG, NOW) == 1
        assert s.embeddings(keys) == {}


def test_delete_never_removes_a_cited_article_whatever_it_is_told(store_url: str) -> None:
    with Store(store_url) as s:
        s.sync_sources([("out", "https://out.example/feed", "outlet")])
        s.record_success("out", "outlet", [_article("a", NOW)], now=NOW, next_fetch=NOW, status=200, etag=None,
                         last_modified=None)
        (a,) = s.newest_entries(["outlet"], 10)
        s.set_matches(999, [Match(999, a.id, 1.0, "link", "link")], "matched", NOW)
        assert s.delete_articles([a.id]) == 0
        assert s.get_entry(a.id) is not None


def test_compaction_gives_space_back_at_most_once_a_period(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3") as s:
        s.sync_sources([("out", "https://out.example/feed", "outlet")])
        old = NOW - 200 * DAY
        big = [EntryData(key=f"k{i}", link=f"https://out.example/{i}", title=f"t{i}", summary="x" * 4000,
                         published=old) for i in range(300)]
        s.record_success("out", "outlet", big, now=old, next_fetch=old, status=200, etag=None, last_modified=None)
        # then the feed moves on: a 200 without them
        s.record_success("out", "outlet", [], now=old + DAY, next_fetch=old, status=200, etag=None, last_modified=None)
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert prune_articles(s, CONFIG, NOW) == 300
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = s.size_bytes()
        assert s.free_pages() > 0

        assert compact_if_due(s, CONFIG, NOW)
        assert s.size_bytes() < before / 4
        assert s.free_pages() == 0
        assert s.get_meta("last_compaction") == "2026-06-01T00:00:00Z"
        # a few days later, with space to give back again: not yet
        s.record_success("out", "outlet", big[:50], now=old, next_fetch=old, status=200, etag=None, last_modified=None)
        s.record_success("out", "outlet", [], now=old + DAY, next_fetch=old, status=200, etag=None, last_modified=None)
        prune_articles(s, CONFIG, NOW + 3 * DAY)
        assert s.free_pages() > 0
        assert not compact_if_due(s, CONFIG, NOW + 3 * DAY)
        assert compact_if_due(s, CONFIG, NOW + 7 * DAY)


def test_postgresql_leaves_compaction_to_autovacuum(pg_url: str) -> None:
    """PostgreSQL reclaims deleted rows itself: retention never compacts it, and a
    compaction asked for anyway is a plain VACUUM that keeps everything."""
    with Store(pg_url) as s:
        s.sync_sources([("out", "https://out.example/feed", "outlet")])
        s.record_success("out", "outlet", [_article("a", NOW)], now=NOW, next_fetch=NOW, status=200, etag=None,
                         last_modified=None)
        assert s.free_pages() == 0
        assert not compact_if_due(s, CONFIG, NOW)
        s.compact()
        assert s.count_entries() == {"outlet": 1} and s.size_bytes() > 0


# -- through the CLI ---------------------------------------------------------------------

EMPTY_RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>POLITICO</title>
<link>https://www.politico.com/</link><description>x</description></channel></rss>"""


def test_a_cycle_prunes_old_articles_no_post_cites_and_keeps_posts_and_cited_ones(tmp_path: Path,
                                                                                    dev_gold: list[dict]) -> None:
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        for f in (DEV / "feeds").iterdir():
            feeds.add_file(f"/{f.name}", f)
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, libre.url)

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg), *args),
                                  capture_output=True, text=True, timeout=300)

        assert run().returncode == 0
        # The dev articles are from spring 2024, long past the default 90 days, but
        # their feeds still carry them: nothing is pruned.
        db = sqlite3.connect(tmp_path / "data" / "store.sqlite3")
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 334
        # POLITICO drops them from its feed, and 100 days pass since they were last seen
        feeds.add("/politico.xml", EMPTY_RSS)
        db.execute("UPDATE entries SET last_seen='2024-06-01T00:00:00Z' WHERE source_id='politico'")
        db.commit()
        r = run("--all", "-v")
        assert r.returncode == 0, r.stderr
        cited = {u for g in dev_gold for u in g["cited"] if "politico.com" in u}
        assert cited  # the dev set has posts citing POLITICO
        left = {row[0] for row in db.execute("SELECT link FROM entries WHERE source_id='politico'")}
        db.close()
        assert left == cited
        assert f"retention: pruned {45 - len(cited)} outlet articles older than" in r.stderr
        assert f", {45 - len(cited)} old articles pruned in" in r.stdout
        # every post is still published, with its POLITICO sources
        d = feedparser.parse(str(tmp_path / "output" / "feed.atom"))
        assert len(d.entries) == 334 - (45 - len(cited))
        related = {l.href for e in d.entries for l in e.get("links", []) if l.rel == "related"}
        assert cited <= related
        st = json.loads(subprocess.run(aggregator_cmd("status", "--json", "--config", str(cfg)), capture_output=True,
                                       text=True, timeout=300).stdout)
        assert {s["id"]: s["entries"] for s in st["sources"]}["politico"] == len(cited)
