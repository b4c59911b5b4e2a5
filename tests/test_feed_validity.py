"""The merged feeds are valid by the W3C Feed Validation Service's rules (w3c/feedvalidator)
and the JSON Feed 1.1 spec, pinned here rule by rule.

The validator cannot run in CI, so each test names the validator message it guards
against (``MissingSelf``, ``InvalidRFC3339Date``, ``ContainsRelRef``, ...) and checks the
same condition over the output of one real cycle: the real CLI on the matchbench dev feeds
over loopback, plus a hostile outlet feed and a hostile blog post (HTML special characters,
control characters, a very long title, missing dates and authors, relative and non-ASCII
links, a script, a date in 2099, an item without a link, a guid equal to a blog post's).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import lxml.html
import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from lxml import etree
from test_pipeline_e2e import write_config

A = "{http://www.w3.org/2005/Atom}"
ATOM_NS = {"a": "http://www.w3.org/2005/Atom", "media": "http://search.yahoo.com/mrss/",
           "content": "http://purl.org/rss/1.0/modules/content/", "dc": "http://purl.org/dc/elements/1.1/"}
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# The validator's own patterns (validators.py), restated.
RFC3339 = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*)?(Z|([+-]\d\d:\d\d))$")
RFC2822 = re.compile(r"^(((Mon)|(Tue)|(Wed)|(Thu)|(Fri)|(Sat)|(Sun)), )?\d\d? ((Jan)|(Feb)|(Mar)|(Apr)|(May)|"
                     r"(Jun)|(Jul)|(Aug)|(Sep)|(Oct)|(Nov)|(Dec)) \d\d\d\d \d\d:\d\d(:\d\d)? "
                     r"(([+-]?\d\d[03]0)|(UT)|(GMT)|(EST)|(EDT)|(CST)|(CDT)|(MST)|(MDT)|(PST)|(PDT)|Z)$")
FULL_URI = re.compile(r"^https?://[^/][0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,#\[\]]*$")
TAG_URI = re.compile(r"^tag:([a-z0-9\-._]+?@)?[a-z0-9.\-]+?,\d{4}(-\d{2}(-\d{2})?)?:"
                     r"[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*(#[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,]*)?$")
MIME = re.compile(r'^[^\s()<>,;:"/\[\]?=]+/[^\s()<>,;:"/\[\]?=]+$')
ATOM_RELS = {"alternate", "current", "describedby", "edit", "edit-media", "enclosure", "first", "hub", "last",
             "license", "next", "next-archive", "payment", "prev-archive", "previous", "related", "replies",
             "search", "self", "service", "up", "via"}
# A subset of the validator's HTMLValidator.acceptable_elements: all the feeds may contain.
SAFE_ELEMENTS = {"a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl", "dt",
                 "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li",
                 "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td",
                 "th", "thead", "tr", "u", "ul"}
# XML 1.0 forbids these; C1 controls and DEL are "discouraged" (and invisible garbage to a reader).
BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")

# ------------------------------------------------------------------ hostile inputs

SPECIAL = "5 < 6 & \"AT&T\" — 'quoted' <b>not bold</b>"
# An RSS title is HTML to feedparser (RSS never said): the markup goes, the text stays.
SPECIAL_SHOWN = "5 < 6 & \"AT&T\" — 'quoted' not bold"
LONG = "Very long headline " + "x" * 3000
COLLIDING_GUID = "https://blog.example.jp/?p=42798"  # a dev blog post's guid
HOSTILE_RSS = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Hostile</title><link>https://hostile.example/</link>
<description>x</description>
<item><title>{SPECIAL.replace("&", "&amp;").replace("<", "&lt;")}</title>
  <link>https://hostile.example/special</link><guid>special-1</guid>
  <pubDate>Sun, 19 May 2024 10:00:00 +0000</pubDate>
  <description><![CDATA[<p>Relative <a href="/news/1">link</a> and <img src="img/a.png" alt=""> image.</p>
  <script>alert(1)</script><p onclick="alert(2)" style="background: url(javascript:x)">click</p>]]></description></item>
<item><title>Control\x07 char\x1b in title</title><link>https://hostile.example/control</link>
  <guid>control-1</guid><pubDate>Sun, 19 May 2024 09:00:00 +0000</pubDate>
  <description>Bell\x07 here</description></item>
<item><title>{LONG}</title><link>https://hostile.example/long</link><guid>long-1</guid>
  <pubDate>Sun, 19 May 2024 08:00:00 +0000</pubDate><description>long</description></item>
<item><title>No date and no author</title><link>https://hostile.example/undated</link><guid>undated-1</guid>
  <description>undated</description></item>
<item><title>From the far future</title><link>https://hostile.example/future</link><guid>future-1</guid>
  <pubDate>Thu, 01 Jan 2099 00:00:00 +0000</pubDate><description>future</description></item>
<item><title>Non-ASCII link</title><link>https://hostile.example/記事/1?q=日本 語|x</link><guid>iri-1</guid>
  <pubDate>Sun, 19 May 2024 07:00:00 +0000</pubDate><description>iri</description></item>
<item><title>No link at all</title><guid isPermaLink="false">nolink-1</guid>
  <pubDate>Sun, 19 May 2024 06:00:00 +0000</pubDate><description>nolink</description></item>
<item><title>Same guid as a blog post</title><link>https://hostile.example/collide</link>
  <guid isPermaLink="false">{COLLIDING_GUID}</guid>
  <pubDate>Sun, 19 May 2024 05:00:00 +0000</pubDate><description>collide</description></item>
</channel></rss>
"""
HOSTILE_POST_TITLE = "速報 F-35 < F-22 & \"AT&T\" 配備"
HOSTILE_POST = f"""<item>
<title>{HOSTILE_POST_TITLE.replace("&", "&amp;").replace("<", "&lt;")}</title>
<link>https://blog.example.jp/hostile/special-post/</link>
<guid isPermaLink="false">https://blog.example.jp/?p=99999</guid>
<content:encoded><![CDATA[<p>冒頭の段落。<a href="/archives/1">前の記事</a></p><p>本文\x07の段落。</p>
<figure><img src="/wp-content/uploads/x.jpg" alt=""></figure>]]></content:encoded>
</item>
"""


@dataclass
class Output:
    dir: Path
    atom: etree._Element
    rss: etree._Element
    json: dict
    html: lxml.html.HtmlElement
    raw: dict[str, bytes]


def publish_hostile_cycle(tmp: Path) -> Path:
    """One real cycle (the CLI) on the dev feeds plus the hostile inputs; the output dir."""
    blog = (DEV / "feeds" / "blog.xml").read_text(encoding="utf-8")
    first = blog.index("<item>")
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        for f in (DEV / "feeds").iterdir():
            feeds.add_file(f"/{f.name}", f)
        feeds.add("/blog.xml", (blog[:first] + HOSTILE_POST + blog[first:]).encode("utf-8"))
        feeds.add("/hostile.xml", HOSTILE_RSS.encode("utf-8"))
        cfg = tmp / "aggregator.yaml"
        write_config(cfg, feeds, libre.url)
        with cfg.open("a", encoding="utf-8") as f:
            f.write(f"  - {{id: hostile, name: 'Hostile <Outlet> & Co', url: '{feeds.url('/hostile.xml')}',"
                    " role: outlet, language: en}\n")
        r = subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg)), capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    return tmp / "output"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Output]:
    o = publish_hostile_cycle(tmp_path_factory.mktemp("validity"))
    raw = {n: (o / n).read_bytes() for n in ("feed.atom", "feed.rss", "feed.json", "index.html")}
    yield Output(o, etree.fromstring(raw["feed.atom"]), etree.fromstring(raw["feed.rss"]),
                 json.loads(raw["feed.json"]), lxml.html.fromstring(raw["index.html"]), raw)


def entries(o: Output) -> list[etree._Element]:
    return o.atom.findall(f"{A}entry")


def items(o: Output) -> list[etree._Element]:
    return o.rss.findall("channel/item")


def by_link(o: Output, link: str) -> etree._Element:
    (e,) = [e for e in entries(o) if e.xpath("a:link[@rel='alternate']/@href", namespaces=ATOM_NS) == [link]]
    return e


def json_by_link(o: Output, link: str) -> dict:
    (i,) = [i for i in o.json["items"] if i.get("url") == link]
    return i


def plausible(dt: datetime) -> bool:
    """The validator's ImplausibleDate: before 1990 or after tomorrow."""
    return datetime(1990, 1, 1, tzinfo=UTC) <= dt <= datetime.now(UTC) + timedelta(days=1)


def html_problems(fragment: str) -> list[str]:
    """What the validator's HTMLValidator and absUrlMixin would report in an HTML fragment."""
    problems = []
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for el in root.iter():
        if not isinstance(el.tag, str) or el is root:
            continue
        if el.tag not in SAFE_ELEMENTS:
            problems.append(f"SecurityRisk <{el.tag}>")
        for name, value in el.attrib.items():
            if name.startswith("on") or name == "style":
                problems.append(f"SecurityRiskAttr {name}")
            if name in ("href", "src") and not FULL_URI.match(value):
                problems.append(f"ContainsRelRef/InvalidURI {value!r}")
    return problems


# ============================================================ well-formedness, all formats


def test_every_file_is_utf8_and_free_of_forbidden_xml_characters(out: Output) -> None:
    for name, data in out.raw.items():
        text = data.decode("utf-8")  # strict: raises on anything that is not UTF-8
        assert not BAD_CHARS.search(text), name
    assert out.raw["feed.atom"].startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert out.raw["feed.rss"].startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_the_cycle_published_the_dev_feeds_and_every_hostile_item(out: Output) -> None:
    links = {l for e in entries(out) for l in e.xpath("a:link[@rel='alternate']/@href", namespaces=ATOM_NS)}
    assert len(entries(out)) == 40 + 294 + 1 + 8
    assert "https://blog.example.jp/hostile/special-post/" in links
    assert {"https://hostile.example/special", "https://hostile.example/control", "https://hostile.example/long",
            "https://hostile.example/undated", "https://hostile.example/future",
            "https://hostile.example/collide"} <= links


# ====================================================================== Atom (RFC 4287)


def test_atom_feed_has_exactly_one_id_title_updated_and_generator(out: Output) -> None:
    """MissingElement / DuplicateElement (noduplicates) at feed level."""
    for tag in ("id", "title", "updated", "generator", "subtitle"):
        assert len(out.atom.findall(f"{A}{tag}")) == 1, tag


def test_atom_feed_has_an_absolute_self_link_of_type_atom(out: Output) -> None:
    """MissingSelf, RelativeSelf, SelfNotAtom."""
    (self_link,) = out.atom.findall(f"{A}link[@rel='self']")
    assert self_link.get("href") == "https://news.example.org/feeds/feed.atom"
    assert self_link.get("type") == "application/atom+xml"


def test_atom_feed_metadata_precedes_the_entries(out: Output) -> None:
    """MisplacedMetadata: no feed-level element after the first entry."""
    tags = [c.tag for c in out.atom if isinstance(c.tag, str)]
    first = tags.index(f"{A}entry")
    assert all(t == f"{A}entry" for t in tags[first:])


def test_atom_feed_id_is_a_canonical_uri(out: Output) -> None:
    """NonCanonicalURI: lower-case scheme and host, a path, no default port."""
    fid = out.atom.findtext(f"{A}id")
    assert fid == "https://news.example.org/"


def test_atom_every_entry_has_exactly_one_id_title_updated_author_summary(out: Output) -> None:
    """MissingElement (title, id, updated, author), DuplicateElement, MissingTextualContent."""
    for e in entries(out):
        for tag in ("id", "title", "updated", "published", "author", "summary"):
            assert len(e.findall(f"{A}{tag}")) == 1, (tag, e.findtext(f"{A}id"))
        assert len(e.findall(f"{A}content")) <= 1
        assert (e.findtext(f"{A}author/{A}name") or "").strip()
        assert (e.findtext(f"{A}title") or "").strip()


def test_atom_entry_ids_are_unique_valid_tag_uris(out: Output) -> None:
    """InvalidTAG, DuplicateEntries / DuplicateIds."""
    ids = [e.findtext(f"{A}id") for e in entries(out)]
    assert all(TAG_URI.match(i) for i in ids), [i for i in ids if not TAG_URI.match(i)][:3]
    assert not [i for i, n in Counter(ids).items() if n > 1]


def test_atom_dates_are_rfc3339_and_plausible(out: Output) -> None:
    """InvalidRFC3339Date, ImplausibleDate (before 1990 or after tomorrow); updated >= published."""
    dates = [out.atom.findtext(f"{A}updated")]
    for e in entries(out):
        published, updated = e.findtext(f"{A}published"), e.findtext(f"{A}updated")
        dates += [published, updated]
        assert datetime.fromisoformat(updated) >= datetime.fromisoformat(published)
    for d in dates:
        assert RFC3339.match(d), d
        assert plausible(datetime.fromisoformat(d)), d


def test_atom_every_href_is_an_absolute_ascii_uri(out: Output) -> None:
    """InvalidFullLink, InvalidIRI, InvalidUriChar (links resolved relative to nothing)."""
    hrefs = out.atom.xpath("//a:link/@href | //media:thumbnail/@url", namespaces=ATOM_NS)
    bad = [h for h in hrefs if not FULL_URI.match(h)]
    assert not bad, bad[:5]
    # the IRI was percent-encoded, not dropped
    assert ("https://hostile.example/%E8%A8%98%E4%BA%8B/1?q=%E6%97%A5%E6%9C%AC%20%E8%AA%9E%7Cx"
            in out.atom.xpath("//a:link[@rel='alternate']/@href", namespaces=ATOM_NS))


def test_atom_link_rels_are_registered_and_titles_not_blank(out: Output) -> None:
    """UnregisteredAtomLinkRel, AttrNotBlank, InvalidMIMEType."""
    for link in out.atom.iter(f"{A}link"):
        assert link.get("rel") in ATOM_RELS
        if link.get("title") is not None:
            assert link.get("title").strip()
        if link.get("type") is not None:
            assert MIME.match(link.get("type")), link.get("type")


def test_atom_at_most_one_alternate_link_per_type_and_one_when_the_entry_has_a_link(out: Output) -> None:
    """DuplicateAtomLink; MissingContentOrAlternate."""
    for e in entries(out):
        alternates = e.findall(f"{A}link[@rel='alternate']")
        types = Counter((l.get("type"), l.get("hreflang")) for l in alternates)
        assert all(n == 1 for n in types.values())
        assert alternates or e.find(f"{A}content") is not None
    nolink = [e for e in entries(out) if e.findtext(f"{A}title") == "No link at all"]
    assert len(nolink) == 1 and not nolink[0].findall(f"{A}link[@rel='alternate']")


def test_atom_text_has_a_language_everywhere(out: Output) -> None:
    """MissingDCLanguage: xml:lang on the feed and on every entry (the language shown)."""
    assert out.atom.get(XML_LANG) == "en"
    langs = Counter(e.get(XML_LANG) for e in entries(out))
    assert None not in langs and set(langs) <= {"en", "ja"}
    assert by_link(out, "https://blog.example.jp/hostile/special-post/").get(XML_LANG) == "ja"  # not translated


def test_atom_html_is_escaped_safe_and_links_absolute(out: Output) -> None:
    """NotHtml, SecurityRisk, SecurityRiskAttr, DangerousStyleAttr, ContainsRelRef."""
    for e in entries(out):
        for el in (e.find(f"{A}summary"), e.find(f"{A}content")):
            if el is None:
                continue
            assert el.get("type") == "html"
            assert not html_problems(el.text or ""), (e.findtext(f"{A}id"), html_problems(el.text or ""))
    special = by_link(out, "https://hostile.example/special").findtext(f"{A}summary")
    assert 'href="https://hostile.example/news/1"' in special  # resolved against the entry's link
    assert 'src="https://hostile.example/img/a.png"' in special
    assert "alert" not in special and "onclick" not in special


def test_atom_titles_are_plain_text_with_special_characters_intact(out: Output) -> None:
    """Escaped text: the reader gets the very characters of the source (nothing double-escaped)."""
    parsed = feedparser.parse(out.raw["feed.atom"])
    assert not parsed.bozo, parsed.get("bozo_exception")
    titles = {e.link: e.title for e in parsed.entries if "link" in e}
    assert titles["https://hostile.example/special"] == SPECIAL_SHOWN
    assert titles["https://hostile.example/long"] == LONG[:1000]  # parsing's MAX_TITLE, nothing less
    assert titles["https://hostile.example/control"] == "Control char in title"
    assert titles["https://blog.example.jp/hostile/special-post/"] == HOSTILE_POST_TITLE
    for e in entries(out):
        assert e.find(f"{A}title").get("type") in (None, "text")


def test_atom_missing_dates_and_authors_have_honest_fallbacks(out: Output) -> None:
    undated = by_link(out, "https://hostile.example/undated")
    assert undated.findtext(f"{A}author/{A}name") == "Hostile <Outlet> & Co"  # the source stands in
    first_seen = datetime.fromisoformat(undated.findtext(f"{A}published"))
    assert abs(first_seen - datetime.now(UTC)) < timedelta(hours=1)  # when we first saw it
    future = by_link(out, "https://hostile.example/future")
    assert datetime.fromisoformat(future.findtext(f"{A}published")).year < 2099


def test_atom_images_as_media_thumbnail_and_enclosure(out: Output) -> None:
    post = by_link(out, "https://blog.example.jp/military-technology/fpv-drones-vs-electronic-warfare/")
    img = "https://blog.example.jp/wp-content/uploads/2024/05/fpv-drones-vs-electronic-warfare-1.jpg"
    assert post.xpath("media:thumbnail/@url", namespaces=ATOM_NS) == [img]
    (enc,) = post.findall(f"{A}link[@rel='enclosure']")
    assert (enc.get("href"), enc.get("type")) == (img, "image/jpeg")


# ============================================================================ RSS 2.0


def test_rss_channel_has_its_required_elements_and_an_atom_self_link(out: Output) -> None:
    """MissingDescription, MissingLink, MissingTitle, MissingDCLanguage, MissingAtomSelfLink."""
    assert out.rss.get("version") == "2.0"
    channel = out.rss.find("channel")
    for tag in ("title", "link", "description", "language", "lastBuildDate"):
        assert len(channel.findall(tag)) == 1, tag
        assert channel.findtext(tag).strip()
    assert FULL_URI.match(channel.findtext("link"))
    (self_link,) = channel.xpath("a:link[@rel='self']", namespaces=ATOM_NS)
    assert (self_link.get("href"), self_link.get("type")) == \
        ("https://news.example.org/feeds/feed.rss", "application/rss+xml")


def test_rss_items_have_a_unique_non_numeric_guid_and_no_duplicate_elements(out: Output) -> None:
    """MissingGuid, NotSufficientlyUnique, DuplicateValue (unique guid), noduplicates,
    DuplicateItemSemantics (author + dc:creator), ItemMustContainTitleOrDescription."""
    guids = []
    for item in items(out):
        counts = Counter(c.tag for c in item)
        for tag in ("title", "link", "description", "guid", "pubDate", "enclosure",
                    f"{{{ATOM_NS['content']}}}encoded"):
            assert counts[tag] <= 1, tag
        assert counts["title"] == 1 and counts["description"] == 1 and counts["guid"] == 1
        assert "author" not in counts  # dc:creator instead: RSS <author> must be an e-mail address
        guid = item.find("guid")
        assert guid.get("isPermaLink") == "false" and not guid.text.isdigit()
        guids.append(guid.text)
    assert len(guids) == len(set(guids)) == len(entries(out))


def test_rss_description_comes_before_content_encoded(out: Output) -> None:
    """NeedDescriptionBeforeContent."""
    for item in items(out):
        tags = [c.tag for c in item]
        enc = f"{{{ATOM_NS['content']}}}encoded"
        if enc in tags:
            assert tags.index("description") < tags.index(enc)


def test_rss_dates_are_rfc822_with_the_right_weekday_and_plausible(out: Output) -> None:
    """InvalidRFC2822Date, IncorrectDOW, ImplausibleDate."""
    dates = [out.rss.findtext("channel/lastBuildDate")] + [i.findtext("pubDate") for i in items(out)]
    for d in dates:
        assert RFC2822.match(d), d
        dt = parsedate_to_datetime(d)
        assert d[:3] == dt.strftime("%a"), d
        assert plausible(dt), d


def test_rss_links_and_enclosures_are_absolute_and_complete(out: Output) -> None:
    """InvalidFullLink (link, atom:link, enclosure url), MissingAttribute (enclosure length/type)."""
    for item in items(out):
        link = item.findtext("link")
        assert link is None or FULL_URI.match(link), link
        for href in item.xpath("a:link/@href | media:thumbnail/@url", namespaces=ATOM_NS):
            assert FULL_URI.match(href), href
        enc = item.find("enclosure")
        if enc is not None:
            assert FULL_URI.match(enc.get("url")) and enc.get("length").isdigit() and MIME.match(enc.get("type"))
    post = [i for i in items(out) if i.findtext("link", "").endswith("/fpv-drones-vs-electronic-warfare/")][0]
    assert post.find("enclosure").get("type") == "image/jpeg"


def test_rss_html_is_escaped_safe_and_links_absolute(out: Output) -> None:
    """safeHtml + absUrlMixin on description and content:encoded: SecurityRisk, ContainsRelRef."""
    for item in items(out):
        for text in (item.findtext("description"), item.findtext("content:encoded", namespaces=ATOM_NS)):
            if text:
                assert not html_problems(text), (item.findtext("guid"), html_problems(text))


def test_rss_titles_carry_no_markup_and_round_trip(out: Output) -> None:
    parsed = feedparser.parse(out.raw["feed.rss"])
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    titles = {e.get("link"): e.title for e in parsed.entries}
    assert titles["https://hostile.example/long"] == LONG[:1000]
    assert titles["https://hostile.example/control"] == "Control char in title"


# ======================================================================= JSON Feed 1.1


def test_json_feed_top_level_per_spec(out: Output) -> None:
    """version and title required; URLs absolute; custom keys start with "_" and a letter."""
    j = out.json
    assert j["version"] == "https://jsonfeed.org/version/1.1"
    assert j["title"].strip()
    assert j["feed_url"] == "https://news.example.org/feeds/feed.json"
    assert FULL_URI.match(j["home_page_url"])
    assert isinstance(j["items"], list)
    known = {"version", "title", "home_page_url", "feed_url", "description", "user_comment", "next_url", "icon",
             "favicon", "authors", "language", "expired", "hubs", "items"}
    for key in j:
        assert key in known or re.match(r"^_[A-Za-z]", key), key
    assert FULL_URI.match(j["_aggregator"]["about"])  # a custom object says where it is documented


def test_json_feed_items_per_spec(out: Output) -> None:
    """id required, a unique string; content_html or content_text; RFC 3339 dates; absolute
    url/image; authors objects with a name; tags strings; custom keys with "_"."""
    known = {"id", "url", "external_url", "title", "content_html", "content_text", "summary", "image",
             "banner_image", "date_published", "date_modified", "authors", "tags", "language", "attachments"}
    ids = []
    for i in out.json["items"]:
        assert isinstance(i["id"], str) and i["id"]
        ids.append(i["id"])
        assert i.get("content_html") or i.get("content_text")
        for key in ("url", "image"):
            if key in i:
                assert FULL_URI.match(i[key]), i[key]
        for key in ("date_published", "date_modified"):
            assert RFC3339.match(i[key]) and plausible(datetime.fromisoformat(i[key])), i[key]
        assert i["authors"] and all(isinstance(a.get("name"), str) and a["name"] for a in i["authors"])
        assert all(isinstance(t, str) and t for t in i["tags"])
        assert not html_problems(i["content_html"])
        for key in i:
            assert key in known or re.match(r"^_[A-Za-z]", key), key
        for s in i["_aggregator"]["sources"]:
            assert FULL_URI.match(s["url"])
    assert len(ids) == len(set(ids))
    nolink = [i for i in out.json["items"] if i["title"] == "No link at all"]
    assert len(nolink) == 1 and "url" not in nolink[0]  # absent rather than invalid


def test_index_html_links_are_absolute_and_an_entry_without_link_has_no_empty_one(out: Output) -> None:
    hrefs = out.html.xpath("//main//a/@href | //main//img/@src")
    assert all(FULL_URI.match(h) for h in hrefs), [h for h in hrefs if not FULL_URI.match(h)][:3]
    (nolink,) = [a for a in out.html.xpath("//article") if a.xpath("string(.//h2)") == "No link at all"]
    assert not nolink.xpath(".//h2//a")


def test_json_feed_text_is_exact(out: Output) -> None:
    assert json_by_link(out, "https://hostile.example/special")["title"] == SPECIAL_SHOWN
    assert json_by_link(out, "https://hostile.example/control")["title"] == "Control char in title"


# ================================================================ across the formats


def test_all_formats_carry_the_same_ids_in_the_same_order(out: Output) -> None:
    atom = [e.findtext(f"{A}id") for e in entries(out)]
    assert [i.findtext("guid") for i in items(out)] == atom
    assert [i["id"] for i in out.json["items"]] == atom
    # the page: posts first (in the feeds' order), then the uncited articles (include: all)
    page = [a.get("data-id") for a in out.html.xpath("//article")]
    posts = [a.get("data-id") for a in out.html.xpath("//article[@class='post']")]
    assert page[:len(posts)] == [i for i in atom if i in set(posts)] and set(page) <= set(atom)


def test_an_outlet_article_and_a_post_with_the_same_guid_do_not_collide(out: Output) -> None:
    post = by_link(out, "https://blog.example.jp/indo-pacific/sea-drone-lessons-for-taiwan-strait/")
    article = by_link(out, "https://hostile.example/collide")
    assert post.findtext(f"{A}id") != article.findtext(f"{A}id")
    assert post.findtext(f"{A}id").split(":")[-1].startswith("blog/")
    assert article.findtext(f"{A}id").split(":")[-1].startswith("hostile/")
