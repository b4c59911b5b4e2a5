"""Rendering of the merged feed: data in, bytes out (Atom, RSS, JSON Feed, HTML), plus
the atomic writer that publishes them. No store, no network, no clock.

Every renderer is deterministic: the same ``FeedMeta`` and items give the same bytes, so
``write_output`` can skip unchanged files and a cycle that changed nothing moves neither
mtime nor ETag (CONTRACT.md section 3).
"""

from __future__ import annotations

import dataclasses
import errno
import html
import json
import mimetypes
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jinja2
import markupsafe
from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from aggregator.exceptions import PublishError
from aggregator.files import write_replace
from aggregator.html_text import BIDI_CONTROLS, strip_tags
from aggregator.models import iso, utc
from aggregator.publishing.labels import labels


@dataclass(frozen=True, slots=True)
class SourceLink:
    """One outlet article a blog post cites."""

    url: str  # the article's link exactly as the outlet's feed gives it
    outlet: str  # outlet display name, e.g. "POLITICO"
    outlet_id: str
    headline: str  # the article's title as the outlet gives it
    headline_translated: str | None
    evidence: str  # e.g. "link", "headline 0.93", "mention POLITICO 13日 + content 0.71"
    score: float
    summary: str = ""  # the article's summary as plain text, in the readers' language when translated
    published: datetime | None = None  # the article's date
    language: str | None = None  # the headline's language (marked when not the entry's)


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of the merged feed: a blog post or an outlet article."""

    id: str  # fixed forever: a tag: URI, e.g. "tag:example.org,2024-05-19:blog/1a2b3c"
    kind: str  # "post" (blog post) | "article" (outlet article)
    link: str  # the entry's own link (absolute)
    title: str  # in the readers' language when translated, else the original
    title_original: str
    summary_html: str  # ALREADY sanitized HTML; in readers' language when translated
    content_html: str | None  # already sanitized, optional longer body
    language: str  # language of title/summary as published
    original_language: str | None
    translated: bool  # True when title/summary were machine translated
    translation_status: str  # "done by google", "not needed", "not available yet" (reader-facing only)
    source_id: str
    source_name: str
    author: str | None
    categories: tuple[str, ...]
    published: datetime  # aware UTC
    updated: datetime  # aware UTC
    image: str | None
    sources: tuple[SourceLink, ...]  # only for posts; empty for articles


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """Feed-level data; ``updated`` is computed by the caller so output stays deterministic."""

    title: str
    link: str  # the site the feed belongs to (absolute)
    base_url: str  # where output/ is served, ends with "/"
    description: str
    language: str  # readers' language (translation.target)
    updated: datetime  # max of items' updated; never now()
    generator: str  # e.g. "aggregator 0.1.0"


ATOM_NAME = "feed.atom"
RSS_NAME = "feed.rss"
JSON_NAME = "feed.json"
HTML_NAME = "index.html"
ATOM_XSL_NAME = "feed.atom.xsl"
RSS_XSL_NAME = "feed.rss.xsl"

ATOM_NS = "http://www.w3.org/2005/Atom"
# Documentation of the ``_aggregator`` JSON Feed extension (JSON Feed 1.1 "Extensions").
EXTENSION_ABOUT = "https://github.com/aggregator-project/aggregator/blob/main/docs/output.md"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_EXT = "aggregator"  # feedgen extension namespace: reachable as fg.aggregator / fe.aggregator


# ---------------------------------------------------------------------------- helpers


def _time(dt: datetime) -> datetime:
    """UTC, whole seconds: feeds carry second precision, and it keeps output stable."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime in feed data: {dt!r}")
    return utc(dt).replace(microsecond=0)


def rfc3339(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, the same form the store uses."""
    return iso(_time(dt)) or ""


def translation_ok(status: str) -> bool:
    """Whether a reader gets the text in their language (nothing to warn about)."""
    return status.startswith(("done", "not needed"))


def translation_note(item: FeedItem, edition: str | None = None) -> str:
    """What the feeds tell a reader about an untranslated entry, in the edition's
    language. Deliberately coarse: the detail (provider, error, next retry) is the
    operator's (status, explain, the log), and the feeds must not change while nothing a
    reader cares about did."""
    return labels(edition)["translation_unavailable_note"]


def _lang_attr(text_language: str | None, around: str | None) -> str:
    """`` lang="xx"`` for text in another language than what surrounds it."""
    if text_language and text_language.split("-")[0].lower() != (around or "").split("-")[0].lower():
        return f' lang="{html.escape(text_language)}"'
    return ""


# Characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF) and
# the C1 controls and DEL it discourages: lxml refuses the former outright, so one
# stray control character in a source feed would otherwise stop the whole publication.
# And the bidirectional-text controls, which would reorder what readers see.
_BAD_CHARS = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff{BIDI_CONTROLS}]")


def clean_text(text: str) -> str:
    return _BAD_CHARS.sub("", text) if text else text


# What the W3C validator accepts in a URI (RFC 2396 characters; IRIs are checked the same
# way after IDNA): anything else is percent-encoded (RFC 3987 3.1, the same resource).
_URI_OK = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[0-9A-Za-z;/?:@&=+$.\-_!~*'()%,#\[\]]+\Z")
_URI_SAFE = ";/?:@&=+$,-_.!~*'()%#[]"


def feed_uri(url: str | None) -> str | None:
    """``url`` as an absolute http(s) URI in plain ASCII, or None when it is not one
    (relative, another scheme, unparsable): feeds carry absolute links only."""
    if not url:
        return None
    url = url.strip()
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https") or not urlsplit(url).hostname:
        return None
    if _URI_OK.match(url):
        return url  # the common case: exactly as the source gave it
    try:
        url = str(httpx.URL(url))  # IDNA host, UTF-8 percent-encoding
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return None
    return quote(url, safe=_URI_SAFE)


def image_type(url: str) -> str | None:
    """The image's media type as its file name tells it, or None."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path, strict=False)
    return guessed if guessed and guessed.startswith("image/") else None


def clean_item(item: FeedItem) -> FeedItem:
    """``item`` fit for any output: no forbidden characters, only absolute http(s) links
    (sources whose link is not one are left out: there is nothing to link to)."""
    sources = tuple(
        dataclasses.replace(s, url=url, outlet=clean_text(s.outlet), headline=clean_text(s.headline),
                            headline_translated=clean_text(s.headline_translated or "") or None,
                            evidence=clean_text(s.evidence))
        for s in item.sources if (url := feed_uri(s.url)))
    return dataclasses.replace(
        item, link=feed_uri(item.link) or "", title=clean_text(item.title),
        title_original=clean_text(item.title_original), summary_html=clean_text(item.summary_html),
        content_html=clean_text(item.content_html or "") or None, author=clean_text(item.author or "") or None,
        categories=tuple(c for c in (clean_text(c).strip() for c in item.categories) if c),
        source_name=clean_text(item.source_name), translation_status=clean_text(item.translation_status),
        image=feed_uri(item.image), sources=sources)


def clean_meta(meta: FeedMeta) -> FeedMeta:
    return dataclasses.replace(meta, title=clean_text(meta.title), description=clean_text(meta.description))


def _author_name(item: FeedItem) -> str:
    # Atom requires an author per entry (the feed has none of its own): fall back to the source.
    return item.author or item.source_name


def _related_title(src: SourceLink) -> str:
    return f"{src.outlet}: {src.headline}"


def full_html(item: FeedItem) -> str:
    """The entry's whole text: the summary (a post's lead) followed by the rest."""
    return "\n".join(p for p in (item.summary_html, item.content_html) if p)


def _prepare(meta: FeedMeta, items: Sequence[FeedItem]) -> tuple[FeedMeta, list[FeedItem]]:
    return clean_meta(meta), [clean_item(i) for i in items]


def body_html(item: FeedItem, fragment: str, edition: str | None = None) -> str:
    """``fragment`` (pre-sanitized) followed by what feed readers would otherwise not show:
    the original title of a translated item, why it is untranslated, and the cited sources;
    labelled in the edition's language (``translation.target``), and text in another
    language than the entry's marked with its own ``lang``."""
    esc = html.escape
    lab = labels(edition)
    parts = [fragment] if fragment else []
    if item.translated and item.title_original != item.title:
        lang = item.original_language or ""
        label = lab["original_title_in"].format(lang=esc(lang)) if lang else lab["original_title"]
        parts.append(f'<p class="original-title">{label}: '
                     f'<span lang="{esc(lang)}">{esc(item.title_original)}</span></p>')
    if not translation_ok(item.translation_status):
        parts.append(f'<p class="translation-status">{esc(translation_note(item, edition))}</p>')
    if item.sources:
        lis = []
        for s in item.sources:
            also = (f' (<span class="headline-translated"{_lang_attr(edition, item.language)}>'
                    f'{esc(s.headline_translated)}</span>)' if s.headline_translated else "")
            when = f" <small>{esc(_human_date(s.published))}</small>" if s.published else ""
            summary = f"<br>{esc(s.summary)}" if s.summary else ""
            lis.append(f'<li>{esc(s.outlet)}: <a href="{esc(s.url)}" rel="related"'
                       f'{_lang_attr(s.language, item.language)}>{esc(s.headline)}</a>'
                       f"{also}{when}{summary}</li>")
        parts.append(f'<p class="sources-label">{esc(lab["sources_colon"])}</p><ul class="sources">'
                     + "".join(lis) + "</ul>")
    return "\n".join(parts)


def _human_date(dt: datetime) -> str:
    return _time(dt).strftime("%Y-%m-%d")


# ------------------------------------------------------------------ feedgen extension


class _FeedExtension(BaseExtension):
    """Feed level: the ``<?xml-stylesheet?>`` instruction (feedgen has no API for it)."""

    def __init__(self) -> None:
        self.stylesheet: str | None = None

    def _add_stylesheet(self, root: etree._Element) -> etree._Element:
        if self.stylesheet:
            pi = etree.ProcessingInstruction(
                "xml-stylesheet", f'type="text/xsl" href="{html.escape(self.stylesheet)}"')
            root.addprevious(pi)  # a sibling before the root: serialised ahead of it
        return root

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        return self._add_stylesheet(feed)

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        return self._add_stylesheet(feed)


class _EntryExtension(BaseEntryExtension):
    """Entry level: links with their attributes, and ``xml:lang``.

    feedgen 1.0.0 writes entry links with ``href`` only (it reads rel/type/title from the
    element it has just created: upstream issue #135), so this extension owns them.
    """

    def __init__(self) -> None:
        self.alternate: str | None = None
        self.language: str | None = None
        self.related: list[tuple[str, str]] = []  # (href, title)
        self.enclosure: tuple[str, str | None] | None = None  # (href, media type): the post's image

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        # feedgen's attribute-less copies exist only because it insists on an alternate link
        # or content before building the entry; replace them with complete ones.
        for old in entry.findall("link"):
            entry.remove(old)
        if self.alternate:
            etree.SubElement(entry, "link", rel="alternate", href=self.alternate, type="text/html")
        for href, title in self.related:
            etree.SubElement(entry, "link", rel="related", href=href, title=title)
        if self.enclosure:
            href, mime = self.enclosure
            link = etree.SubElement(entry, "link", rel="enclosure", href=href)
            if mime:
                link.set("type", mime)
        if self.language:
            entry.set(_XML_LANG, self.language)
        return entry

    def extend_rss(self, item: etree._Element) -> etree._Element:
        for href, title in self.related:
            etree.SubElement(item, f"{{{ATOM_NS}}}link", rel="related", href=href, title=title)
        return item


def _generator(meta: FeedMeta, stylesheet: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.register_extension(_EXT, _FeedExtension, _EntryExtension)  # before add_entry: entries copy it
    getattr(fg, _EXT).stylesheet = stylesheet
    fg.title(meta.title)
    fg.updated(_time(meta.updated))  # also RSS lastBuildDate; feedgen's default is now()
    fg.generator(meta.generator)
    fg.language(meta.language)
    fg.load_extension("media")  # media:thumbnail, the post's image (Media RSS, read by most readers)
    return fg


def _add_entry(fg: FeedGenerator, item: FeedItem, edition: str) -> FeedEntry:
    fe: FeedEntry = fg.add_entry(order="append")  # feedgen prepends by default
    fe.id(item.id)  # RSS: <guid isPermaLink="false">
    fe.title(item.title)
    if item.link:
        fe.link(href=item.link, rel="alternate")  # RSS <link>; Atom: rewritten by the extension
    fe.published(_time(item.published))
    fe.updated(_time(item.updated))
    fe.summary(body_html(item, item.summary_html, edition), type="html")  # also the RSS description
    if item.content_html or not item.link:
        # The whole text, lead included: readers show content in preference to the summary.
        # (Atom also needs content in an entry without an alternate link.)
        fe.content(body_html(item, full_html(item), edition), type="html")  # RSS content:encoded
    for term in item.categories:
        fe.category(term=term)
    ext: _EntryExtension = getattr(fe, _EXT)
    ext.alternate = item.link or None
    ext.language = item.language
    ext.related = [(s.url, _related_title(s)) for s in item.sources]
    if item.image:
        mime = image_type(item.image)
        fe.media.thumbnail(url=item.image, group=None)
        ext.enclosure = (item.image, mime)
        if mime:  # RSS requires a type (and a length: 0 is the RSS Board's "unknown")
            fe.enclosure(item.image, 0, mime)
    return fe


# ------------------------------------------------------------------------- renderers


def render_atom(meta: FeedMeta, items: Sequence[FeedItem]) -> bytes:
    """Atom 1.0, entries in the given order."""
    meta, items = _prepare(meta, items)
    fg = _generator(meta, ATOM_XSL_NAME)
    fg.id(meta.link)
    if meta.description:
        fg.subtitle(meta.description)
    fg.link(href=meta.base_url + ATOM_NAME, rel="self", type="application/atom+xml")
    fg.link(href=meta.link, rel="alternate", type="text/html")
    for item in items:
        _add_entry(fg, item, meta.language).author(name=_author_name(item))
    return bytes(fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True))


def render_rss(meta: FeedMeta, items: Sequence[FeedItem]) -> bytes:
    """RSS 2.0 with ``atom:link`` self/related links and ``dc:creator`` authors."""
    meta, items = _prepare(meta, items)
    fg = _generator(meta, RSS_XSL_NAME)
    fg.load_extension("dc", atom=False, rss=True)  # RSS <author> must be an e-mail address
    fg.description(meta.description or meta.title)  # mandatory in RSS
    fg.link(href=meta.base_url + RSS_NAME, rel="self", type="application/rss+xml")
    fg.link(href=meta.link)  # the channel <link> is the *last* link given to feedgen
    for item in items:
        _add_entry(fg, item, meta.language).dc.dc_creator(_author_name(item))
    return bytes(fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True))


def render_json(meta: FeedMeta, items: Sequence[FeedItem]) -> bytes:
    """JSON Feed 1.1 with an ``_aggregator`` extension object per item."""
    meta, items = _prepare(meta, items)
    feed: dict[str, Any] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": meta.title,
        "home_page_url": meta.link,
        "feed_url": meta.base_url + JSON_NAME,
        "description": meta.description,
        "language": meta.language,
        "_aggregator": {"about": EXTENSION_ABOUT, "generator": meta.generator},
        "items": [_json_item(item, meta.language) for item in items],
    }
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _json_item(item: FeedItem, edition: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "url": item.link or None,
        "title": item.title,
        "content_html": body_html(item, full_html(item), edition),
        "summary": strip_tags(item.summary_html),
        "date_published": rfc3339(item.published),
        "date_modified": rfc3339(item.updated),
        "authors": [{"name": _author_name(item)}],
        "tags": list(item.categories),
        "language": item.language,
    }
    if item.image:
        out["image"] = item.image
    if not out["url"]:
        del out["url"]  # an entry without a usable link has no url, rather than an invalid one
    out["_aggregator"] = {
        "kind": item.kind,
        "source_id": item.source_id,
        "source_name": item.source_name,
        "title_original": item.title_original,
        "original_language": item.original_language,
        "translated": item.translated,
        "translation_status": item.translation_status,
        "sources": [
            {"url": s.url, "outlet": s.outlet, "outlet_id": s.outlet_id, "headline": s.headline,
             "headline_translated": s.headline_translated, "evidence": s.evidence, "score": s.score}
            for s in item.sources
        ],
    }
    return out


def _human_time(dt: datetime) -> str:
    return _time(dt).strftime("%Y-%m-%d %H:%M UTC")


@cache
def _jinja() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("aggregator.publishing", "templates"),
        autoescape=True,  # the template name ends in .j2, so select_autoescape would not apply
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["rfc3339"] = rfc3339
    env.filters["human_time"] = _human_time
    env.filters["human_date"] = _human_date
    env.tests["translation_ok"] = translation_ok
    return env


def render_html(meta: FeedMeta, items: Sequence[FeedItem]) -> bytes:
    """index.html: a readable page of the same entries, with feed autodiscovery links."""
    meta, items = _prepare(meta, items)
    # Posts are cards holding their sources; an article a post cites is shown there, and
    # only the others (include: all) get a section of their own.
    cited = {s.url for i in items for s in i.sources}
    posts = [i for i in items if i.kind == "post"]
    others = [i for i in items if i.kind != "post" and i.link not in cited]
    page = _jinja().get_template("index.html.j2").render(
        meta=meta, posts=posts, others=others, atom=ATOM_NAME, rss=RSS_NAME, json_feed=JSON_NAME,
        L=labels(meta.language),
        lang_attr=lambda text_language, around: markupsafe.Markup(_lang_attr(text_language, around)))
    return page.encode("utf-8")


# ---------------------------------------------------------------------------- output


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` unless it already holds exactly those bytes.

    Writes a temporary file in the same directory, fsyncs it and renames it over ``path``,
    so a reader sees the old file or the new one, never a mix. Returns whether it wrote.
    """
    try:
        if path.read_bytes() == data:
            return False
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644  # mkstemp's 0600 would hide the file from a web server running as another user
    write_replace(path, data, mode)
    return True


def _fsync_dir(directory: Path) -> None:
    # Makes the renames themselves durable across a power cut.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stylesheet(name: str) -> bytes:
    return (resources.files("aggregator.publishing") / "templates" / name).read_bytes()


def write_output(out_dir: Path, meta: FeedMeta, items: Sequence[FeedItem]) -> list[Path]:
    """Render the three feeds and index.html and copy the two XSL stylesheets into
    ``out_dir`` (created if needed). Returns the paths actually (re)written: files whose
    bytes did not change are left alone. Raises ``PublishError`` when it cannot write."""
    files = {
        ATOM_NAME: render_atom(meta, items),
        RSS_NAME: render_rss(meta, items),
        JSON_NAME: render_json(meta, items),
        HTML_NAME: render_html(meta, items),
        ATOM_XSL_NAME: _stylesheet(ATOM_XSL_NAME),
        RSS_XSL_NAME: _stylesheet(RSS_XSL_NAME),
    }
    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in files:
            # A run killed while writing leaves its temporary file; only one run
            # publishes at a time (the store lock), so any found now is stale.
            for stale in out_dir.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
        for name, data in files.items():
            path = out_dir / name
            if write_atomic(path, data):
                written.append(path)
        if written:
            _fsync_dir(out_dir)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise PublishError(f"cannot write output to {out_dir}: the disk is full ({e.strerror}); the previous "
                               "output is left as it was: free some space, then run again") from None
        raise PublishError(f"cannot write output to {out_dir}: {e}") from e
    return written
