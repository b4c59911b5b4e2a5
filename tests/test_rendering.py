"""Tests for aggregator.publishing.render: parse every output back and check the contract (CONTRACT.md §3)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import lxml.html
import pytest
from lxml import etree

from aggregator.publishing import render as rendering
from aggregator.publishing.render import (
    FeedItem,
    FeedMeta,
    SourceLink,
    render_atom,
    render_html,
    render_json,
    render_rss,
    write_output,
)

NS = {"a": "http://www.w3.org/2005/Atom", "dc": "http://purl.org/dc/elements/1.1/"}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
T0 = datetime(2024, 5, 19, 12, 0, tzinfo=UTC)
TEMPLATES = Path(rendering.__file__).parent / "templates"

SPECIAL_TITLE = "Tanks <b>&\"' & more"

POLITICO = SourceLink(
    url="https://www.politico.com/news/2024/05/18/ukraine-aid-00158812?utm_source=rss&x=1",
    outlet="POLITICO", outlet_id="politico", headline="Ukraine aid bill stalls",
    headline_translated=None, evidence="link", score=1.0, summary="The House left for recess.",
    published=datetime(2024, 5, 18, 9, 0, tzinfo=UTC))
REUTERS = SourceLink(
    url="https://www.reuters.com/world/japan-defence-2024-05-18/",
    outlet="Reuters", outlet_id="reuters", headline="Japan boosts defence <budget> & more",
    headline_translated=None, evidence="mention Reuters 13日 + content 0.71", score=0.71)


def _item(n: int, **kw: object) -> FeedItem:
    base: dict[str, object] = dict(
        id=f"tag:example.org,2024-05-19:blog/{n:04x}", kind="post",
        link=f"https://blog.example.jp/archives/{n}", title=f"Post {n}", title_original=f"記事 {n}",
        summary_html=f"<p>Summary {n}</p>", content_html=None, language="en", original_language="ja",
        translated=True, translation_status="done by google", source_id="blog",
        source_name="軍事ニュース解説ブログ", author="管理人", categories=("defence", "us"),
        published=T0 - timedelta(hours=n), updated=T0 - timedelta(hours=n) + timedelta(minutes=5),
        image=None, sources=())
    base.update(kw)
    return FeedItem(**base)  # type: ignore[arg-type]


ITEMS: list[FeedItem] = [
    _item(1, title="US Congress stalls Ukraine aid", title_original="米議会、ウクライナ支援で停滞",
          sources=(POLITICO, REUTERS), content_html="<p>Longer body</p>",
          image="https://blog.example.jp/img/1.jpg"),
    _item(2, title="ウクライナ情勢まとめ", title_original="ウクライナ情勢まとめ", language="ja",
          original_language="ja", translated=False,
          translation_status="not available yet", author=None),
    _item(3, kind="article", id="tag:example.org,2024-05-19:politico/77", link=POLITICO.url,
          title="Ukraine aid bill stalls", title_original="Ukraine aid bill stalls",
          original_language=None, translated=False, translation_status="not needed",
          source_id="politico", source_name="POLITICO", author="Jane Doe", categories=()),
    _item(4, title=SPECIAL_TITLE, title_original="<戦車> & \"引用\"",
          summary_html="<p>5 &lt; 6 &amp; &quot;quoted&quot;</p>"),
]
META = FeedMeta(title="Merged defence news", link="https://example.org/",
                base_url="https://example.org/feeds/", description="Blog posts and what they cite",
                language="en", updated=max(i.updated for i in ITEMS), generator="aggregator 0.1.0")


@pytest.fixture(scope="module")
def atom() -> bytes:
    return render_atom(META, ITEMS)


@pytest.fixture(scope="module")
def rss() -> bytes:
    return render_rss(META, ITEMS)


@pytest.fixture(scope="module")
def json_feed() -> dict:
    return json.loads(render_json(META, ITEMS))


@pytest.fixture(scope="module")
def html_doc() -> lxml.html.HtmlElement:
    return lxml.html.fromstring(render_html(META, ITEMS))


# ---------------------------------------------------------------------------- Atom


def test_atom_entry_links_per_contract(atom: bytes) -> None:
    root = etree.fromstring(atom)
    entries = root.findall("a:entry", NS)
    assert len(entries) == len(ITEMS)
    for entry, item in zip(entries, ITEMS):
        alternates = entry.findall("a:link[@rel='alternate']", NS)
        assert [(l.get("href"), l.get("type")) for l in alternates] == [(item.link, "text/html")]
        related = entry.findall("a:link[@rel='related']", NS)
        assert [(l.get("href"), l.get("title")) for l in related] == \
            [(s.url, f"{s.outlet}: {s.headline}") for s in item.sources]
        # feedgen's attribute-less duplicates (issue #135) must be gone
        assert all(l.get("rel") for l in entry.findall("a:link", NS))


def test_atom_entry_fields(atom: bytes) -> None:
    root = etree.fromstring(atom)
    for entry, item in zip(root.findall("a:entry", NS), ITEMS):
        assert entry.get(XML_LANG) == item.language
        assert entry.findtext("a:id", namespaces=NS) == item.id
        assert entry.findtext("a:title", namespaces=NS) == item.title
        assert entry.find("a:summary", NS).get("type") == "html"
        for tag in ("id", "title", "updated", "published", "summary", "author"):
            assert len(entry.findall(f"a:{tag}", NS)) == 1, tag
        assert len(entry.findall("a:content", NS)) == (1 if item.content_html else 0)
        assert RFC3339.match(entry.findtext("a:updated", namespaces=NS))
        assert RFC3339.match(entry.findtext("a:published", namespaces=NS))
        assert [c.get("term") for c in entry.findall("a:category", NS)] == list(item.categories)


def test_atom_feed_level(atom: bytes) -> None:
    assert b'<?xml-stylesheet type="text/xsl" href="feed.atom.xsl"?>' in atom
    root = etree.fromstring(atom)
    assert root.get(XML_LANG) == "en"
    selfs = root.findall("a:link[@rel='self']", NS)
    assert [(l.get("href"), l.get("type")) for l in selfs] == \
        [("https://example.org/feeds/feed.atom", "application/atom+xml")]
    assert [l.get("href") for l in root.findall("a:link[@rel='alternate']", NS)] == ["https://example.org/"]
    assert root.findtext("a:generator", namespaces=NS) == "aggregator 0.1.0"
    for tag in ("id", "title", "updated", "generator"):
        assert len(root.findall(f"a:{tag}", NS)) == 1, tag
    assert datetime.fromisoformat(root.findtext("a:updated", namespaces=NS)) == META.updated


def test_atom_with_feedparser(atom: bytes) -> None:
    parsed = feedparser.parse(atom)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert [e.id for e in parsed.entries] == [i.id for i in ITEMS]  # order and ids preserved
    assert [e.title for e in parsed.entries] == [i.title for i in ITEMS]  # special chars round-trip
    first = parsed.entries[0]
    assert first.link == ITEMS[0].link
    related = [(l.href, l.title) for l in first.links if l.rel == "related"]
    assert related == [(POLITICO.url, "POLITICO: Ukraine aid bill stalls"),
                       (REUTERS.url, "Reuters: Japan boosts defence <budget> & more")]
    assert parsed.entries[1].author == ITEMS[1].source_name  # no author: the source stands in


def test_summary_shows_sources_original_title_and_status(atom: bytes) -> None:
    parsed = feedparser.parse(atom)
    post = parsed.entries[0].summary
    assert POLITICO.headline in post and "Reuters" in post
    assert "The House left for recess." in post and "2024-05-18" in post  # the article's summary and date
    assert "mention Reuters" not in post and "score" not in post  # matching detail is the operator's
    assert 'href="https://www.politico.com/news/2024/05/18/ukraine-aid-00158812?utm_source=rss&amp;x=1"' in post
    assert "米議会、ウクライナ支援で停滞" in post
    assert "Machine translation" not in post  # done: no status line
    untranslated = parsed.entries[1].summary
    assert "Machine translation not available yet." in untranslated
    # the retry time changes on every failed retry: the feeds must not show it
    assert "13:00" not in untranslated
    assert "Machine translation" not in parsed.entries[2].summary  # "not needed"
    assert "Original title" not in parsed.entries[2].summary


def test_special_characters_escaped(atom: bytes, rss: bytes) -> None:
    for data in (atom, rss):
        parsed = feedparser.parse(data)
        assert not parsed.bozo
        assert parsed.entries[3].title == SPECIAL_TITLE
    root = etree.fromstring(atom)
    summary = root.findall("a:entry", NS)[3].findtext("a:summary", namespaces=NS)
    assert summary.startswith('<p>5 &lt; 6 &amp; &quot;quoted&quot;</p>')  # passed through untouched
    assert "&lt;戦車&gt; &amp; &quot;引用&quot;" in summary  # original title escaped into the HTML


# ----------------------------------------------------------------------------- RSS


def test_rss_items(rss: bytes) -> None:
    assert b'<?xml-stylesheet type="text/xsl" href="feed.rss.xsl"?>' in rss
    root = etree.fromstring(rss)
    channel = root.find("channel")
    assert channel.findtext("language") == "en"
    assert channel.findtext("link") == META.link
    assert channel.xpath("atom:link[@rel='self']/@href", namespaces={"atom": NS["a"]}) == \
        ["https://example.org/feeds/feed.rss"]
    items = channel.findall("item")
    assert len(items) == len(ITEMS)
    for el, item in zip(items, ITEMS):
        guid = el.find("guid")
        assert guid.text == item.id and guid.get("isPermaLink") == "false"
        assert el.findtext("link") == item.link
        related = el.xpath("atom:link[@rel='related']", namespaces={"atom": NS["a"]})
        assert [(l.get("href"), l.get("title")) for l in related] == \
            [(s.url, f"{s.outlet}: {s.headline}") for s in item.sources]
        assert el.xpath("dc:creator/text()", namespaces=NS) == [item.author or item.source_name]
        assert el.find("author") is None
        assert [c.text for c in el.findall("category")] == list(item.categories)
        pub = parsedate_to_datetime(el.findtext("pubDate"))  # RFC 822 / 2822
        assert pub == item.published


def test_rss_description_matches_atom_summary(atom: bytes, rss: bytes) -> None:
    summaries = [e.findtext("a:summary", namespaces=NS) for e in etree.fromstring(atom).findall("a:entry", NS)]
    descriptions = [i.findtext("description") for i in etree.fromstring(rss).iter("item")]
    assert summaries == descriptions


def test_rss_with_feedparser(rss: bytes) -> None:
    parsed = feedparser.parse(rss)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert [e.id for e in parsed.entries] == [i.id for i in ITEMS]
    assert parsed.entries[0].link == ITEMS[0].link


# ---------------------------------------------------------------------------- JSON


def test_json_feed(json_feed: dict) -> None:
    assert json_feed["version"] == "https://jsonfeed.org/version/1.1"
    assert json_feed["title"] == META.title
    assert json_feed["home_page_url"] == META.link
    assert json_feed["feed_url"] == "https://example.org/feeds/feed.json"
    assert json_feed["language"] == "en"
    assert [i["id"] for i in json_feed["items"]] == [i.id for i in ITEMS]
    for out, item in zip(json_feed["items"], ITEMS):
        assert out["url"] == item.link and out["title"] == item.title
        assert isinstance(out["content_html"], str) and out["content_html"]
        assert RFC3339.match(out["date_published"]) and RFC3339.match(out["date_modified"])
        assert datetime.fromisoformat(out["date_published"]) == item.published
        assert out["authors"] == [{"name": item.author or item.source_name}]
        assert out["tags"] == list(item.categories)
        assert out["language"] == item.language
        assert out.get("image") == item.image
        ext = out["_aggregator"]
        assert ext["kind"] == item.kind and ext["translation_status"] == item.translation_status
        assert [s["url"] for s in ext["sources"]] == [s.url for s in item.sources]
    assert json_feed["items"][0]["summary"] == "Summary 1"
    assert json_feed["items"][3]["summary"] == '5 < 6 & "quoted"'
    assert json_feed["items"][0]["_aggregator"]["sources"][1] == {
        "url": REUTERS.url, "outlet": "Reuters", "outlet_id": "reuters", "headline": REUTERS.headline,
        "headline_translated": None, "evidence": REUTERS.evidence, "score": 0.71}


def test_json_is_utf8_not_ascii_escaped() -> None:
    data = render_json(META, ITEMS)
    assert "軍事ニュース解説ブログ".encode() in data


# ---------------------------------------------------------------------------- HTML


def test_html_page(html_doc: lxml.html.HtmlElement) -> None:
    assert html_doc.get("lang") == "en"
    feeds = {l.get("type"): l.get("href") for l in html_doc.xpath("//head/link[@rel='alternate']")}
    assert feeds == {"application/atom+xml": "feed.atom", "application/rss+xml": "feed.rss",
                     "application/feed+json": "feed.json"}
    articles = html_doc.xpath("//article")
    # posts only: the article item 1 cites is inside its card, not a card of its own
    posts = [i for i in ITEMS if i.kind == "post"]
    assert [a.get("data-id") for a in articles] == [i.id for i in posts]
    assert [a.get("id") for a in articles] == [f"post-{n}" for n in range(1, len(posts) + 1)]
    assert {a.get("class") for a in articles} == {"post"}
    assert not html_doc.xpath("//section[@class='others']")
    assert not html_doc.xpath("//script")


def test_html_uncited_articles_in_their_own_section() -> None:
    other = _item(9, kind="article", id="tag:example.org,2024-05-19:politico/99",
                  link="https://www.politico.com/news/other", title="Unrelated", title_original="Unrelated",
                  original_language="en", translated=False, translation_status="not needed",
                  source_id="politico", source_name="POLITICO")
    doc = lxml.html.fromstring(render_html(META, [*ITEMS, other]))
    main_cards = doc.xpath("//main/article")
    assert all(a.get("class") == "post" for a in main_cards)
    others = doc.xpath("//section[@class='others']/article")
    assert [a.get("data-id") for a in others] == [other.id]


def test_html_item_details(html_doc: lxml.html.HtmlElement) -> None:
    first = html_doc.get_element_by_id("post-1")
    assert first.xpath(".//h2/a/@href") == [ITEMS[0].link]
    assert first.xpath("string(.//*[@class='title-original'])") == ITEMS[0].title_original
    assert first.xpath(".//ul[@class='sources']/li/a[@rel='related']/@href") == [POLITICO.url, REUTERS.url]
    # a source: outlet, date, headline, summary; no matching detail (evidence, score)
    pol = first.xpath(".//ul[@class='sources']/li")[0]
    assert pol.xpath("string(.//*[@class='outlet'])") == "POLITICO"
    assert pol.xpath(".//time/@datetime") == ["2024-05-18T09:00:00Z"]
    assert pol.xpath("string(.//*[@class='source-summary'])") == "The House left for recess."
    assert "score" not in first.text_content() and "link (" not in first.text_content()
    assert first.xpath(".//time[@class='published']/@datetime") == ["2024-05-19T11:00:00Z"]
    assert first.xpath(".//img/@src") == [ITEMS[0].image]
    assert first.xpath("string(.//div[@class='summary'])") == "Summary 1"  # inserted as HTML
    assert "translat" not in first.xpath("string(.//p[@class='meta'])").lower()  # done: no note
    second = html_doc.get_element_by_id("post-2")
    assert not second.xpath(".//*[@class='title-original']")  # untranslated: no duplicate title
    assert second.xpath("string(.//*[contains(@class,'translation')])") == "Machine translation not available yet"
    assert not second.xpath(".//ul[@class='sources']")


def test_html_escapes_text() -> None:
    page = render_html(META, ITEMS).decode()
    assert "Tanks &lt;b&gt;&amp;&#34;&#39; &amp; more" in page
    doc = lxml.html.fromstring(page)
    assert doc.get_element_by_id("post-3").xpath("string(.//h2)") == SPECIAL_TITLE


def test_html_empty_feed() -> None:
    doc = lxml.html.fromstring(render_html(META, []))
    assert not doc.xpath("//article") and doc.xpath("//p[@class='empty']")


# ----------------------------------------------------------------------------- XSL


@pytest.mark.parametrize("name", ["feed.atom.xsl", "feed.rss.xsl"])
def test_xsl_well_formed(name: str) -> None:
    etree.XSLT(etree.parse(str(TEMPLATES / name)))


@pytest.mark.parametrize(("name", "render"), [("feed.atom.xsl", render_atom), ("feed.rss.xsl", render_rss)])
def test_xsl_renders_feed(name: str, render: object) -> None:
    transform = etree.XSLT(etree.parse(str(TEMPLATES / name)))
    result = str(transform(etree.fromstring(render(META, ITEMS))))  # type: ignore[operator]
    page = lxml.html.fromstring(result)
    titles = [t.strip() for t in page.xpath("//article/h2/a/text()")]
    assert titles == [i.title for i in ITEMS]
    # the summary's HTML (sources with evidence, original title) comes back as HTML, once
    assert page.xpath("//article[1]//ul[@class='sources']/li/a/@href") == [POLITICO.url, REUTERS.url]
    assert "The House left for recess." in page.xpath("string(//article[1]//ul[@class='sources'])")
    assert page.xpath("//article[1]//div[@class='summary']/p")
    assert page.xpath("//article[1]//img[@class='thumb']/@src") == [ITEMS[0].image]
    assert not page.xpath("//ul[@class='related']")


# --------------------------------------------------------------------------- output


def test_renderers_are_deterministic() -> None:
    for render in (render_atom, render_rss, render_json, render_html):
        assert render(META, ITEMS) == render(META, ITEMS)


def test_write_output(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "output"
    written = write_output(out, META, ITEMS)
    names = {"feed.atom", "feed.rss", "feed.json", "index.html", "feed.atom.xsl", "feed.rss.xsl"}
    assert {p.name for p in written} == names
    assert {p.name for p in out.iterdir()} == names  # no temp files left behind
    assert (out / "feed.atom").read_bytes() == render_atom(META, ITEMS)
    assert (out / "feed.atom.xsl").read_bytes() == (TEMPLATES / "feed.atom.xsl").read_bytes()
    assert (out / "index.html").stat().st_mode & 0o044 == 0o044  # readable by a web server


def test_write_output_skips_unchanged_files(tmp_path: Path) -> None:
    write_output(tmp_path, META, ITEMS)
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in tmp_path.iterdir()}
    past = 1_000_000_000_000_000_000
    for p in tmp_path.iterdir():  # make any rewrite visible even on coarse-mtime filesystems
        os.utime(p, ns=(past, past))
    assert write_output(tmp_path, META, ITEMS) == []
    assert all(p.stat().st_mtime_ns == past for p in tmp_path.iterdir())
    assert {p.name: p.stat().st_ino for p in tmp_path.iterdir()} == {k: v[1] for k, v in before.items()}

    changed = [ITEMS[0], ITEMS[1]]
    meta = dataclasses.replace(META, updated=ITEMS[0].updated)
    written = {p.name for p in write_output(tmp_path, meta, changed)}
    assert written == {"feed.atom", "feed.rss", "feed.json", "index.html"}
    assert len(feedparser.parse(tmp_path / "feed.atom").entries) == 2


def test_write_atomic_replaces_by_rename(tmp_path: Path) -> None:
    target = tmp_path / "feed.atom"
    target.write_bytes(b"old")
    old_ino = target.stat().st_ino
    assert rendering.write_atomic(target, b"new") is True
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != old_ino  # a new file renamed over the old one, not rewritten in place
    assert rendering.write_atomic(target, b"new") is False
    assert [p.name for p in tmp_path.iterdir()] == ["feed.atom"]


def test_write_atomic_keeps_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "feed.json"
    target.write_bytes(b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(rendering.os, "replace", boom)
    with pytest.raises(OSError):
        rendering.write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["feed.json"]  # temp file cleaned up


def test_write_output_unwritable_raises_publish_error(tmp_path: Path) -> None:
    from aggregator.exceptions import PublishError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PublishError):
        write_output(blocker / "out", META, ITEMS)


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError):
        render_json(META, [_item(9, published=datetime(2024, 5, 19, 12, 0))])


def test_each_published_format_reads_back_through_our_own_parser() -> None:
    """An aggregator can subscribe to another's output: Atom, RSS and JSON Feed alike."""
    from aggregator.html_text import strip_tags
    from aggregator.sources.parse import parse_feed

    for data in (render_atom(META, ITEMS), render_rss(META, ITEMS), render_json(META, ITEMS)):
        parsed = parse_feed(data, now=datetime(2030, 1, 1, tzinfo=UTC))
        # titles are read as plain text (markup in a title is dropped, as readers do)
        assert [(e.key, e.link, e.title) for e in parsed.entries] == [(i.id, i.link, strip_tags(i.title))
                                                                       for i in ITEMS]
