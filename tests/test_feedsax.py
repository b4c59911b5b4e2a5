"""aggregator.sources.feedsax: expat's events handed straight to feedparser's strict
parser reach it exactly as they do through xml.sax's reader and feedparser's own
startElementNS/endElementNS, event by event."""

from __future__ import annotations

import xml.sax
import xml.sax.handler
from pathlib import Path
from typing import Any

import feedparser.api
import pytest

from aggregator import _compat
from aggregator.sources import safexml

FIXTURES = Path(__file__).parent / "fixtures" / "real-feeds"

# Namespaces feedparser knows and does not know, declared late and on the element itself,
# namespaced and duplicate-qualified attributes, xlink declarations, inline SVG and MathML
# in xhtml content, a userland namespace in another case, an xml:base and xml:lang, and
# an unknown namespace's element named before and after a prefix is declared for it.
CRAFTED = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:x="http://unknown.example/ns"
      xmlns:dc="http://purl.org/dc/elements/1.1/" xml:lang="en" xml:base="http://a.example/b/">
  <title type="text">T</title>
  <x:thing x:attr="1" plain="2" dc:creator="3">X</x:thing>
  <entry xmlns:y="http://other.example/" xmlns:xlink="http://www.w3.org/1999/xlink">
    <y:Mixed y:A="1" xlink:href="h" HREF="4">m</y:Mixed>
    <title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">a <b class="c">b</b>
      <svg xmlns="http://www.w3.org/2000/svg" width="1"><circle r="1"/></svg>
      <math xmlns="http://www.w3.org/1998/Math/MathML"><mi>x</mi></math></div></title>
    <content type="html" xml:base="../c/">&lt;p&gt;hi&lt;/p&gt;</content>
    <link rel="ALTERNATE" type="TEXT/HTML" href="rel/1"/>
    <u:item xmlns:u="http://Backend.Userland.com/RSS2">u</u:item>
    <late xmlns="http://late.example/">before its prefix</late>
    <p:late xmlns:p="http://late.example/">with it</p:late>
    <late xmlns="http://late.example/">after: feedparser names it by the prefix now</late>
  </entry>
</feed>"""


class _Recorder:
    """Records what reaches feedparser's unknown_starttag/unknown_endtag/handle_data."""

    def __init__(self, fast: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[Any] = []
        mixin = feedparser.mixin._FeedParserMixin
        start, end, data = mixin.unknown_starttag, mixin.unknown_endtag, mixin.handle_data
        events = self.events

        def rec_start(p: Any, tag: str, attrs: list[tuple[str, str]]) -> Any:
            events.append(("start", tag, list(attrs)))
            return start(p, tag, attrs)

        def rec_end(p: Any, tag: str) -> Any:
            events.append(("end", tag))
            return end(p, tag)

        def rec_data(p: Any, text: str, escape: int = 1) -> Any:
            events.append(("data", text))
            return data(p, text, escape)

        monkeypatch.setattr(mixin, "unknown_starttag", rec_start)
        monkeypatch.setattr(mixin, "unknown_endtag", rec_end)
        monkeypatch.setattr(mixin, "handle_data", rec_data)
        if not fast:  # the SAX reader's own handlers, as before feedsax
            monkeypatch.setattr(safexml.SafeExpatParser, "reset", _plain_reset)


def _plain_reset(self: safexml.SafeExpatParser) -> None:
    safexml.DefusedExpatParser.reset(self)
    self._parser.buffer_text = True
    self._parser.buffer_size = 1 << 16


def _parse(doc: bytes, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], Any]:
    _compat.install_feedparser_safe_xml()
    with monkeypatch.context() as m:
        rec = _Recorder(fast, m)
        result = feedparser.parse(doc, sanitize_html=False, resolve_relative_uris=False)
    return rec.events, result


@pytest.mark.parametrize("name", ["crafted", *sorted(p.name for p in FIXTURES.glob("*.xml"))])
def test_feedparser_sees_the_same_events_and_gives_the_same_result(name: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    doc = CRAFTED if name == "crafted" else (FIXTURES / name).read_bytes()
    slow_events, slow = _parse(doc, False, monkeypatch)
    fast_events, fast = _parse(doc, True, monkeypatch)
    if not slow.get("bozo") or slow_events:
        assert fast_events == slow_events
    assert fast.get("entries") == slow.get("entries") and fast.get("feed") == slow.get("feed")
    assert fast.get("bozo") == slow.get("bozo") and fast.get("namespaces") == slow.get("namespaces")
    if name == "crafted":
        starts = [e for e in fast_events if e[0] == "start"]
        assert len(starts) >= 15 and any(a for _, _, a in starts)


def test_the_fast_handlers_are_the_ones_feedparser_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    _compat.install_feedparser_safe_xml()
    seen: list[Any] = []
    original = safexml.SafeExpatParser.reset

    def spy(self: safexml.SafeExpatParser) -> None:
        original(self)
        seen.append(self._parser.StartElementHandler)

    monkeypatch.setattr(safexml.SafeExpatParser, "reset", spy)
    feedparser.parse(CRAFTED)
    assert seen and all(getattr(h, "__module__", "") == "aggregator.sources.feedsax" for h in seen)
    # A plain SAX content handler (not feedparser's) keeps the reader's own handlers.
    parser = safexml.create_parser()
    parser.setFeature(xml.sax.handler.feature_namespaces, True)
    names: list[Any] = []

    class Plain(xml.sax.handler.ContentHandler):
        def startElementNS(self, name: Any, qname: Any, attrs: Any) -> None:
            names.append(name)

    parser.setContentHandler(Plain())
    parser.feed(b"<a xmlns='urn:x'><b/></a>")
    parser.close()
    assert names == [("urn:x", "a"), ("urn:x", "b")]
