"""Feed bytes in, :class:`ParsedFeed` out: feedparser plus our normalisation. Pure.

feedparser's own HTML sanitiser is switched off here: it is the slowest part of
parsing, and most stored entries are never published. What we publish is
sanitised at publication (:mod:`aggregator.html_text`), so nothing unsafe reaches
the output either way. Its resolution of relative links in HTML is applied only to
the HTML it can change (see :func:`_resolved`).
"""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import feedparser.api
import feedparser.urls

from aggregator import _compat
from aggregator.exceptions import ParseError
from aggregator.html_text import strip_tags
from aggregator.models import EntryData, ParsedFeed
from aggregator.sources.decide import derive

MAX_TITLE = 1_000
MAX_SUMMARY = 100_000
MAX_CONTENT = 1_000_000
# A date this far ahead of "now" is a publisher's mistake, not a schedule.
FUTURE_SLACK = timedelta(days=1)

_XML_START = re.compile(rb"<\?xml|<rss|<feed|<rdf:RDF|<RDF", re.I)
_HTML_SNIFF = re.compile(rb"<!doctype html|<html[\s>]", re.I)
_ALT_LINK = re.compile(r"<link\b[^>]*>", re.I)


def clean_prefix(data: bytes) -> bytes:
    """Drop junk before the XML start: whitespace before the declaration (a classic
    WordPress plugin bug) or a cache file's ``<?php die(); ?>`` line. Strict XML parsers
    reject both, and feedparser then falls back to its slower, lossier loose parser."""
    head = data[:2048]
    if head.startswith(b"<?xml") or head.startswith(b"\xef\xbb\xbf<?xml"):
        return data
    m = _XML_START.search(head)
    if m and m.start() > 0 and not _HTML_SNIFF.search(head[: m.start()]):
        return data[m.start():]
    return data


def parse_feed(data: bytes, *, url: str = "", headers: dict[str, str] | None = None,
               now: datetime | None = None) -> ParsedFeed:
    """Parse a feed document. Raises :class:`ParseError` when it holds no feed at all."""
    if not isinstance(data, bytes):
        # feedparser.parse(str) reads a local file or fetches a URL: never give it one.
        raise TypeError(f"parse_feed takes the fetched bytes, not {type(data).__name__}")
    if not data or not data.strip():
        raise ParseError("empty document (0 bytes of content)")
    now = now or datetime.now(UTC)
    if data.lstrip()[:1] == b"{":  # feedparser reads XML only
        return _parse_json_feed(data, now)
    data = clean_prefix(data)
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    _compat.install_feedparser_safe_xml()  # entity declarations refused (safexml)
    _compat.install_feedparser_zoneless_dates()  # "Wed, 01 Jan 2025 10:00:00" read as UTC
    _compat.install_feedparser_common_dates()  # RFC 3339 and RFC 822 dates read first, fast
    _compat.install_feedparser_fast_paths()  # its dictionaries, copies and C1 table
    # feedparser would read a local path or URL if handed a str: always hand it bytes.
    d = feedparser.parse(data, response_headers=hdrs, sanitize_html=False,
                         resolve_relative_uris=False)
    feed = d.get("feed", {})
    warnings: list[str] = []
    if d.get("bozo"):
        exc = d.get("bozo_exception")
        if isinstance(exc, feedparser.CharacterEncodingOverride):
            # Common and harmless: the server's Content-Type (or the XML declaration)
            # names the wrong charset; feedparser found the right one.
            warnings.append(f"wrong declared charset: {exc}")
        else:
            warnings.append(f"feed is not well-formed: {type(exc).__name__}: {exc}")
    if not d.get("version") and not d.get("entries"):
        if _HTML_SNIFF.search(data[:4096]):
            links = advertised_feeds(data, url)
            hint = (" It advertises these feeds: " + ", ".join(links)) if links else \
                " It advertises no feed links."
            raise ParseError("got an HTML page, not a feed." + hint)
        reason = warnings[0] if warnings else "no RSS, Atom or RDF root element"
        raise ParseError(f"not a feed: {reason}")

    if d.get("bozo") and not d.get("entries"):
        # A document that breaks off before its first entry (a truncated download, a
        # server error page in the middle) is an error, not an empty feed.
        raise ParseError(f"malformed feed with no entries: {warnings[0].split(': ', 1)[1]}")

    language = _lang(feed.get("language")) or _lang(_detail_lang(feed.get("title_detail")))
    entries = _entries(d.get("entries", []), lambda raw: _entry(raw, language, now), warnings)
    return ParsedFeed(
        title=_text(feed.get("title")) or None,
        link=feed.get("link") or None,
        language=language,
        entries=tuple(entries),
        warnings=tuple(warnings),
    )


def _entries(raws: Any, make: Any, warnings: list[str]) -> list[EntryData]:
    """Entries made from a feed's raw items: a broken item is skipped (and said), an id
    seen before in the same feed kept once."""
    entries: list[EntryData] = []
    seen: set[str] = set()
    duplicates = 0
    for raw in raws:
        try:
            entry = make(raw)
        except Exception as e:  # one broken entry must not cost the others
            warnings.append(f"skipped an entry: {type(e).__name__}: {e}")
            continue
        if entry is None:
            continue
        if entry.key in seen:
            duplicates += 1
            continue
        seen.add(entry.key)
        derive(entry)  # here, in the parsing process, not on the storing thread
        entries.append(entry)
    if duplicates:
        warnings.append("1 entry repeats an id already in this feed; kept the first" if duplicates == 1 else
                        f"{duplicates} entries repeat ids already in this feed; kept the first of each")
    return entries


def _parse_json_feed(data: bytes, now: datetime) -> ParsedFeed:
    """JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1), which feedparser does not read."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ParseError(f"not a feed: malformed JSON: {e}") from None
    if not isinstance(doc, dict) or "jsonfeed.org/version/" not in str(doc.get("version", "")):
        raise ParseError("not a feed: JSON without a JSON Feed version")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("not a feed: a JSON Feed without items")
    language = _lang(doc.get("language"))
    warnings: list[str] = []
    entries = _entries(items, lambda item: _json_entry(item, language, now), warnings)
    return ParsedFeed(title=_text(doc.get("title")) or None, link=doc.get("home_page_url") or None,
                      language=language, entries=tuple(entries), warnings=tuple(warnings))


def _json_entry(item: Any, language: str | None, now: datetime) -> EntryData | None:
    if not isinstance(item, dict):
        raise ValueError("an item that is not an object")
    title = _text(item.get("title"))[:MAX_TITLE]
    link = str(item.get("url") or item.get("external_url") or "").strip() or None
    content = str(item.get("content_html") or "") or html.escape(str(item.get("content_text") or ""))
    summary = html.escape(str(item.get("summary") or ""))
    if not (title or link or summary or content):
        return None
    published, offset = _json_date(item.get("date_published"))
    updated, _ = _json_date(item.get("date_modified"))
    if published and published > now + FUTURE_SLACK:
        published, offset = None, None
    if updated and updated > now + FUTURE_SLACK:
        updated = None
    authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
    author = next((_text(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")), None)
    guid = item.get("id")
    return EntryData(
        key=entry_key(str(guid) if guid is not None else None, link, title, item.get("date_published")),
        link=link, title=title, summary=summary[:MAX_SUMMARY], content=content[:MAX_CONTENT],
        author=author[:300] if author else None,
        categories=tuple(dict.fromkeys(_text(t) for t in item.get("tags") or () if isinstance(t, str) and t))[:30],
        published=published or updated, updated=updated, published_offset=offset,
        image=str(item.get("image") or item.get("banner_image") or "") or None,
        language=_lang(item.get("language")) or language,
    )


def _json_date(value: Any) -> tuple[datetime | None, int | None]:
    if not isinstance(value, str) or not value.strip():
        return None, None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None, None
    if dt.utcoffset() is None:
        return dt.replace(tzinfo=UTC), None
    return dt.astimezone(UTC), int(dt.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]


def advertised_feeds(data: bytes, base: str = "") -> list[str]:
    """Feed URLs an HTML page advertises with ``<link rel="alternate" type=...>``."""
    from urllib.parse import urljoin

    text = data[:200_000].decode("utf-8", "replace")
    out = []
    for tag in _ALT_LINK.findall(text):
        low = tag.lower()
        if "alternate" in low and re.search(r"application/(rss|atom|feed)\+xml|application/json", low):
            m = re.search(r"""href\s*=\s*["']([^"']+)["']""", tag, re.I)
            if m:
                out.append(urljoin(base, m.group(1)))
    return out


def entry_key(guid: str | None, link: str | None, title: str, date: str | None) -> str:
    """Identity of an entry within its source: guid, else link, else a content hash."""
    if guid and guid.strip():
        return guid.strip()[:2000]
    if link and link.strip():
        return link.strip()[:2000]
    digest = hashlib.sha1(f"{title}\x00{date or ''}".encode()).hexdigest()
    return f"urn:sha1:{digest}"


def _entry(raw: Any, feed_language: str | None, now: datetime) -> EntryData | None:
    title = _text(raw.get("title"))[:MAX_TITLE]
    link = _link(raw)
    summary = _resolved(raw.get("summary_detail"), raw.get("summary") or "")[:MAX_SUMMARY]
    content = ""
    for c in raw.get("content") or ():
        if c.get("value"):
            content = _resolved(c, c["value"])[:MAX_CONTENT]
            break
    if not (title or link or summary or content):
        return None
    if summary and content and summary == content:
        summary = ""
    published, offset = _date(raw, "published")
    updated, uoffset = _date(raw, "updated")
    if published is None:
        published, offset = updated, uoffset
    # A date in the future is kept as "unknown": it would pin the entry to the top.
    if published and published > now + FUTURE_SLACK:
        published, offset = None, None
    if updated and updated > now + FUTURE_SLACK:
        updated = None
    key = entry_key(raw.get("id"), link, title, dict.get(raw, "published") or dict.get(raw, "updated"))
    author = _text(raw.get("author")) or None
    cats = tuple(dict.fromkeys(
        _text(t.get("term") or t.get("label")) for t in raw.get("tags") or () if (t.get("term") or t.get("label"))
    ))
    language = _lang(_detail_lang(raw.get("title_detail"))) or feed_language
    return EntryData(
        key=key, link=link, title=title, summary=summary, content=content,
        author=author[:300] if author else None, categories=cats[:30],
        published=published, updated=updated, published_offset=offset,
        image=_image(raw, content or summary), language=language, source_site=_source_site(raw),
    )


def _source_site(raw: Any) -> str | None:
    """The site an aggregator's item comes from: RSS ``<source url=…>`` (Google News puts
    the publisher's home page there), or an Atom ``<source>``'s alternate link."""
    src = raw.get("source")
    if not isinstance(src, dict):
        return None
    url = src.get("href") or src.get("link")
    if isinstance(url, str) and re.match(r"^https?://[^/\s]+", url.strip(), re.I):
        return url.strip()[:500]
    return None


# An attribute feedparser resolves whose value has no scheme (relative, or //host/...).
_RELATIVE_REF = re.compile(
    r"""\b(?:href|src|cite|action|background|codebase|classid|data|longdesc|usemap|profile|poster)"""
    r"""\s*=\s*(?!["']?\s*[a-z][a-z0-9+.\-]*:)""", re.I)
_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _resolved(detail: Any, html: str) -> str:
    """``html`` with its relative links resolved against the base feedparser found for
    it (xml:base, Content-Location), as ``resolve_relative_uris=True`` would give it.

    Done here, only for HTML that has both a base and a relative link: feedparser's
    resolver re-serialises every HTML field through its SGML parser, about a third of
    the parsing time, and without a base (most RSS) it changes no link at all."""
    base = detail.get("base") if detail else None
    if not base or not html or detail.get("type") not in _HTML_TYPES or not _RELATIVE_REF.search(html):
        return html
    return str(feedparser.urls.resolve_relative_uris(html, base, "utf-8", detail["type"]))


def _link(raw: Any) -> str | None:
    for link in raw.get("links") or ():
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return str(link["href"]).strip()
    link = raw.get("link")
    if link:
        return str(link).strip()
    guid = raw.get("id")
    if raw.get("guidislink") and guid:
        return str(guid).strip()
    return None


def _date(raw: Any, name: str) -> tuple[datetime | None, int | None]:
    # dict.get: feedparser's own get() maps updated->published with a warning.
    parsed = dict.get(raw, f"{name}_parsed")
    if not parsed:
        return None, None
    try:
        dt = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None, None
    return dt, _offset_minutes(dict.get(raw, name))


def _offset_minutes(text: str | None) -> int | None:
    """The UTC offset the publisher wrote, so "the 13th" can be read in its local day."""
    if not text:
        return None
    t = text.strip()
    try:
        tup = email.utils.parsedate_tz(t)
    except (TypeError, ValueError, IndexError):
        tup = None
    if tup and tup[9] is not None:
        return tup[9] // 60
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
        if dt.utcoffset() is not None:
            return int(dt.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    except ValueError:
        pass
    return None


_IMG = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']([^"']+)["']""", re.I)


def _image(raw: Any, html: str) -> str | None:
    for key in ("media_content", "media_thumbnail"):
        for m in raw.get(key) or ():
            url = m.get("url")
            if url and (m.get("medium") in (None, "image") or key == "media_thumbnail"):
                return str(url)
    for enc in raw.get("enclosures") or ():
        if str(enc.get("type", "")).startswith("image/") and enc.get("href"):
            return str(enc["href"])
    m = _IMG.search(html[:50_000]) if html else None
    if m and m.group(1).startswith(("http://", "https://")):
        return m.group(1)
    return None


def _text(value: Any) -> str:
    if not value:
        return ""
    return strip_tags(str(value)).strip()


def _detail_lang(detail: Any) -> str | None:
    return detail.get("language") if detail else None


def _lang(value: str | None) -> str | None:
    if not value:
        return None
    v = value.strip().replace("_", "-").split("-")[0].lower()
    return v if re.fullmatch(r"[a-z]{2,3}", v) else None
