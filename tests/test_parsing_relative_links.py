"""Relative links in entry HTML: resolved where the feed gives a base (xml:base), as
feedparser's own resolver does, and left as written where there is nothing to resolve
against (aggregator.sources.parse resolves only the HTML that needs it)."""

from __future__ import annotations

import feedparser

from aggregator.sources.parse import parse_feed

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://news.example/world/">
<title>t</title><id>urn:t</id><updated>2024-05-01T00:00:00Z</updated>
<entry><id>urn:1</id><title>One</title><link href="2024/one"/><updated>2024-05-01T00:00:00Z</updated>
<summary type="html">&lt;p&gt;&lt;a href="related/two"&gt;two&lt;/a&gt; &lt;img src="/img/1.jpg"&gt;
&lt;a href="https://elsewhere.example/x"&gt;abs&lt;/a&gt;&lt;/p&gt;</summary>
<content type="html" xml:base="https://cdn.example/">&lt;a href="//static.example/p.pdf"&gt;pdf&lt;/a&gt;</content>
</entry></feed>"""

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://blog.example/</link>
<description>d</description><item><title>A</title><link>https://blog.example/a</link>
<description>&lt;p&gt;See &lt;a href="/b"&gt;b&lt;/a&gt;&lt;br&gt;&lt;/p&gt;</description></item></channel></rss>"""


def test_relative_links_are_resolved_against_the_base_the_feed_gives() -> None:
    e = parse_feed(ATOM).entries[0]
    assert e.link == "https://news.example/world/2024/one"
    assert 'href="https://news.example/world/related/two"' in e.summary
    assert 'src="https://news.example/img/1.jpg"' in e.summary
    assert 'href="https://elsewhere.example/x"' in e.summary
    assert 'href="https://static.example/p.pdf"' in e.content  # the content's own xml:base


def test_the_result_is_feedparsers_own_resolution() -> None:
    d = feedparser.parse(ATOM, sanitize_html=False, resolve_relative_uris=True)
    e = parse_feed(ATOM).entries[0]
    assert e.summary == d.entries[0].summary and e.content == d.entries[0].content[0].value


def test_html_without_a_base_is_kept_as_the_feed_wrote_it() -> None:
    # No xml:base nor Content-Location: feedparser would change no link, only re-serialise.
    assert parse_feed(RSS).entries[0].summary == '<p>See <a href="/b">b</a><br></p>'
