"""A publication whose inputs did not change (a cycle where every feed answered 304)
renders nothing: the files stay as they are. Any change a reader could see (an entry,
a match, a translation, the config) renders them again, and so does a missing file."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.config import Config, parse_config
from aggregator.models import EntryData, Match
from aggregator.publishing.publish import publish
from aggregator.store import EntryTranslation, Store

T = datetime(2024, 5, 1, 12, tzinfo=UTC)


def _config(tmp_path: Path, title: str = "Merged") -> Config:
    return parse_config(f"storage: {{url: 'sqlite:///{tmp_path}/s.sqlite3'}}\n"
                        f"output: {{dir: '{tmp_path}/out', title: {title}, include: all}}\n"
                        "translation: {target: en, providers: []}\n"
                        "sources:\n"
                        "  - {id: blog, url: 'https://blog.example.jp/feed', role: blog, language: ja}\n"
                        "  - {id: wire, url: 'https://wire.example/feed', role: outlet}\n")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "s.sqlite3") as s:
        s.sync_sources([("blog", "https://blog.example.jp/feed", "blog"), ("wire", "https://wire.example/feed", "outlet")])
        s.record_success("wire", "outlet", [EntryData("a1", "https://wire.example/a1", "Ministers agree on aid",
                                                      summary="<p>Lead.</p>", published=T)],
                         now=T, next_fetch=T, status=200, etag=None, last_modified=None)
        s.record_success("blog", "blog", [EntryData("p1", "https://blog.example.jp/p1", "支援で合意",
                                                    content="<p>本文。</p><p>参考:Ministers agree on aid</p>",
                                                    published=T + timedelta(hours=3), language="ja")],
                         now=T, next_fetch=T, status=200, etag=None, last_modified=None)
        yield s


def _rendered(caplog: pytest.LogCaptureFixture) -> bool:
    return not any("nothing changed since the last one" in r.getMessage() for r in caplog.records)


def test_an_unchanged_publication_is_not_rendered_again(tmp_path: Path, store: Store,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator.publishing.publish")
    config = _config(tmp_path)
    paths, n = publish(store, config, now=T)
    assert n == 2 and {p.name for p in paths} >= {"feed.atom", "feed.rss", "feed.json", "index.html"}
    atom = (tmp_path / "out" / "feed.atom").read_bytes()
    caplog.clear()
    paths, n = publish(store, config, now=T + timedelta(minutes=30))
    assert (paths, n) == ([], 2) and not _rendered(caplog)
    assert (tmp_path / "out" / "feed.atom").read_bytes() == atom
    assert store.get_meta("last_publication") == (T + timedelta(minutes=30)).isoformat()


def test_what_a_reader_could_see_changing_renders_again(tmp_path: Path, store: Store,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator.publishing.publish")
    config = _config(tmp_path)
    publish(store, config, now=T)
    post, article = (store.newest_entries([role], 1)[0] for role in ("blog", "outlet"))
    later = T + timedelta(hours=1)

    def changes(now: datetime, cfg: Config = config) -> bool:
        caplog.clear()
        publish(store, cfg, now=now)
        return _rendered(caplog)

    store.set_matches(post.id, [Match(post.id, article.id, 1.0, "headline", "headline")], "resolved", later)
    assert changes(later)
    assert not changes(later + timedelta(minutes=1))
    store.set_entry_translation(EntryTranslation(post.id, "en", "h", "done", "libre", None, 1, None, later,
                                                 "Agreement on aid", '["Body."]', "[]"))
    assert changes(later + timedelta(minutes=2))
    assert "Agreement on aid" in (tmp_path / "out" / "feed.atom").read_text(encoding="utf-8")
    store.record_success("wire", "outlet", [EntryData("a1", "https://wire.example/a1", "Ministers agree on more aid",
                                                      summary="<p>Lead.</p>", published=T)],
                         now=later, next_fetch=later, status=200, etag=None, last_modified=None)
    assert changes(later + timedelta(minutes=3))
    assert changes(later + timedelta(minutes=4), _config(tmp_path, title="Renamed"))
    assert not changes(later + timedelta(minutes=5), _config(tmp_path, title="Renamed"))
    (tmp_path / "out" / "index.html").unlink()
    assert changes(later + timedelta(minutes=6))
    assert (tmp_path / "out" / "index.html").is_file()
