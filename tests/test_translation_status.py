"""The translate stage and what it tells readers and users: per-entry status (done by,
pending with retry, failed with the reason), never a partly translated entry shown as
done, plain text only to the engines, language: auto, and `aggregator status`.

Real store (SQLite file), real deep-translator client, a loopback LibreTranslate server,
real publication files read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopback import LibreTranslateServer, pseudo_translation

from aggregator.app import Aggregator
from aggregator.config import Config, parse_config
from aggregator.language import detect, entry_language
from aggregator.models import EntryData
from aggregator.publishing.publish import publish, selection
from aggregator.running.status import render_text
from aggregator.running.translation import translate_stage
from aggregator.store import Store
from aggregator.translating.chain import build_translator
from aggregator.translating.decide import PERMANENT_ATTEMPTS

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)

TITLE = "米上院、ウクライナ支援法案を可決"
LEAD = "米上院は23日、ウクライナ支援法案を可決した。"
SECOND = "ブリンケン国務長官は「歓迎する」と述べた。"
CONTENT = (f"<p>{LEAD} <a href='https://www.politico.com/news/x'>ポリティコ</a>が報じた &amp; 伝えた。</p>"
           f"<p><strong>{SECOND}</strong></p>")


def config(tmp_path: Path, libre_url: str, *, language: str = "ja", glossary: str = "{}") -> Config:
    return parse_config(
        f"storage: {{url: 'sqlite:///{tmp_path}/s.sqlite3'}}\n"
        f"output: {{dir: '{tmp_path}/out', include: blog}}\n"
        f"translation: {{target: en, timeout: 2s, retry_backoff: 5m, glossary: {glossary},"
        f" providers: [{{provider: libre, url: '{libre_url}'}}]}}\n"
        "sources:\n"
        f"  - {{id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: {language}}}\n",
        filename="c.yaml")


def add_posts(store: Store, *posts: EntryData) -> None:
    store.sync_sources([("blog", "https://blog.example.jp/feed/", "blog")])
    store.record_success("blog", "blog", list(posts), now=T0, next_fetch=T0, status=200, etag=None,
                         last_modified=None)


def post(key: str = "p1", title: str = TITLE, content: str = CONTENT, language: str | None = "ja") -> EntryData:
    return EntryData(key=key, link=f"https://blog.example.jp/{key}/", title=title, content=content,
                     published=T0, language=language)


def cycle(store: Store, cfg: Config, when: datetime) -> tuple[int, int]:
    translator = build_translator(cfg.translation, store, now=lambda: when)
    return translate_stage(store, cfg, selection(store, cfg), translator, now=lambda: when)


def row(store: Store) -> tuple[str, str | None, str | None, int]:
    return store.db.execute("SELECT status, provider, error, attempts FROM entry_translations").fetchone()


def published_status(cfg: Config, store: Store, when: datetime) -> dict[str, str]:
    """What each output file says about the one entry's translation."""
    publish(store, cfg, now=when)
    out = cfg.output_dir
    item = json.loads((out / "feed.json").read_text(encoding="utf-8"))["items"][0]
    atom = (out / "feed.atom").read_text(encoding="utf-8")
    page = (out / "index.html").read_text(encoding="utf-8")
    return {"json": item["_aggregator"]["translation_status"], "language": item["language"], "title": item["title"],
            "atom": atom, "html": page}


def test_only_plain_text_reaches_the_engine(tmp_path: Path) -> None:
    with LibreTranslateServer(unknown="echo") as srv, Store(tmp_path / "s.sqlite3") as store:
        cfg = config(tmp_path, srv.url)
        add_posts(store, post())
        assert cycle(store, cfg, T0) == (1, 0)
        assert TITLE in srv.texts and any(q.startswith(LEAD) for q in srv.texts)
        for q in srv.texts:
            assert "<" not in q and ">" not in q and "&amp;" not in q and "href" not in q, q
        assert row(store)[:2] == ("done", "libre")
        shown = published_status(cfg, store, T0)
        assert shown["json"] == "done by libre" and shown["language"] == "en" and shown["title"] == pseudo_translation(TITLE, "en")


def test_a_partly_translated_entry_is_never_done_and_its_retry_sends_only_what_is_missing(tmp_path: Path) -> None:
    with LibreTranslateServer({("ja", "en", TITLE): "US Senate passes Ukraine aid"}) as srv, \
            Store(tmp_path / "s.sqlite3") as store:
        cfg = config(tmp_path, srv.url)
        add_posts(store, post())
        assert cycle(store, cfg, T0) == (0, 1)
        status, provider, error, attempts = row(store)
        assert (status, provider, attempts) == ("pending", None, 1) and "unknown text" in (error or "")
        shown = published_status(cfg, store, T0)
        # published in the original, saying so in reader's words only: the retry time and
        # the error are the operator's (status, explain, the log), never the readers'
        assert shown["language"] == "ja" and shown["title"] == TITLE
        assert shown["json"] == "not available yet"
        assert "Machine translation not available yet." in shown["atom"]
        assert "Machine translation not available yet" in shown["html"]
        for text in (shown["atom"], shown["html"], json.dumps(shown["json"])):
            assert "retry" not in text and "libre" not in text and "unknown text" not in text

        # not due yet: nothing is sent
        sent = srv.requests
        assert cycle(store, cfg, T0 + timedelta(minutes=2)) == (0, 1) and srv.requests == sent
        # the engine learns the rest; once due, only the texts not yet translated go out
        srv.unknown = "echo"
        before = len(srv.texts)
        assert cycle(store, cfg, T0 + timedelta(minutes=6)) == (1, 0)
        assert TITLE not in srv.texts[before:]
        assert row(store)[:2] == ("done", "libre")
        assert published_status(cfg, store, T0)["title"] == "US Senate passes Ukraine aid"


def test_an_entry_every_provider_refuses_fails_after_bounded_attempts_and_says_why(tmp_path: Path) -> None:
    with LibreTranslateServer({}) as srv, Store(tmp_path / "s.sqlite3") as store:
        cfg = config(tmp_path, srv.url)
        add_posts(store, post())
        when = T0
        for attempt in range(1, PERMANENT_ATTEMPTS + 1):
            cycle(store, cfg, when)
            assert row(store)[3] == attempt
            when += timedelta(days=1)  # past any backoff
        status, _, error, _ = row(store)
        assert status == "failed" and error == "libre: HTTP 400: unknown text"
        shown = published_status(cfg, store, when)
        assert shown["json"] == "not available yet" and shown["language"] == "ja"
        assert "Machine translation not available yet." in shown["atom"]
        assert "HTTP 400" not in shown["html"] and "HTTP 400" not in shown["atom"]

        # failed is final: no more requests, however much time passes...
        sent = srv.requests
        assert cycle(store, cfg, when + timedelta(days=30)) == (0, 0) and srv.requests == sent
        # ...until the translation setup changes (here the glossary)
        cfg2 = config(tmp_path, srv.url, glossary="{ブリンケン: Blinken}")
        cycle(store, cfg2, when + timedelta(days=31))
        assert srv.requests > sent and row(store)[:1] == ("pending",)


def test_status_shows_the_backlog_and_which_provider_translated_how_many_texts(tmp_path: Path) -> None:
    table = {("ja", "en", "一つ目"): "First", ("ja", "en", "二つ目"): "Second"}
    with LibreTranslateServer(table) as srv, Store(tmp_path / "s.sqlite3") as store:
        cfg = config(tmp_path, srv.url)
        add_posts(store, post("a", "一つ目", ""), post("b", "二つ目", ""), post("c", "三つ目", ""))
        assert cycle(store, cfg, T0) == (2, 1)
        add_posts(store, post("d", "四つ目", ""), post("e", "English title here", "", language="en"))
    cfg_auto = config(tmp_path, srv.url, language="auto")
    t = Aggregator(cfg_auto).status(now=T0)["translation"]
    assert {k: t[k] for k in ("done", "pending", "failed", "untranslated", "not_needed")} == {
        "done": 2, "pending": 1, "failed": 0, "untranslated": 1, "not_needed": 1}
    assert t["cached_texts"] == {"libre": 2} and t["entries_by_provider"] == {"libre": 2}
    assert t["next_retry"] == "2024-05-01T09:05:00Z"
    text = render_text(Aggregator(cfg_auto).status(now=T0))
    assert "2 done, 1 pending (next retry 2024-05-01T09:05:00Z), 0 failed, 1 not yet attempted, 1 not needed" in text
    assert "texts translated, by provider: libre 2" in text


def test_language_auto_detects_each_entry_from_its_text_not_from_the_feeds_claim(tmp_path: Path) -> None:
    table = {("ja", "en", TITLE): "US Senate passes Ukraine aid"}
    with LibreTranslateServer(table) as srv, Store(tmp_path / "s.sqlite3") as store:
        cfg = config(tmp_path, srv.url, language="auto")
        # a Japanese WordPress blog whose feed says en-US, as many do
        add_posts(store, post("ja", TITLE, "", language="en"),
                  post("en", "Senate passes the Ukraine aid package after months of delay", "", language="en"))
        assert cycle(store, cfg, T0) == (1, 0)
        assert srv.texts == [TITLE]  # sent as Japanese (the table knows it only as ja); English not sent
        publish(store, cfg, now=T0)
        items = {i["url"]: i for i in json.loads((cfg.output_dir / "feed.json").read_text())["items"]}
        ja, en = items["https://blog.example.jp/ja/"], items["https://blog.example.jp/en/"]
        assert (ja["language"], ja["_aggregator"]["original_language"], ja["title"]) == (
            "en", "ja", "US Senate passes Ukraine aid")
        assert (en["language"], en["_aggregator"]["translation_status"]) == ("en", "not needed")


@pytest.mark.parametrize("text,lang", [
    ("米上院、ウクライナ支援法案を可決した。", "ja"), ("美国参议院通过了援助乌克兰的法案。", "zh"),
    ("미국 상원이 우크라이나 지원 법안을 통과시켰다.", "ko"),
    ("Der Bundestag hat das Hilfspaket für die Ukraine verabschiedet.", "de"),
    ("Le Sénat américain adopte le plan d'aide à l'Ukraine.", "fr"),
    ("Верховна Рада України ухвалила закон про додаткову військову допомогу для наших захисників.", "uk"), ("Сенат США одобрил помощь Украине.", "ru"),
    ("The US Senate passed the long-delayed Ukraine aid package on Tuesday.", "en"),
])
def test_detect_finds_the_language_offline(text: str, lang: str) -> None:
    assert detect(text) == lang


def test_detect_is_unsure_on_names_and_the_declared_language_wins() -> None:
    assert detect("NATO") is None and detect("F-35") is None
    assert entry_language("NATO summit", "", "", declared="auto", feed_language="en") == "en"
    assert entry_language("NATO summit", "", "", declared="auto", feed_language=None) is None
    assert entry_language(TITLE, "", "", declared="ko", feed_language="en") == "ko"
