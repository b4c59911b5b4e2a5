#!/usr/bin/env python3
"""Writes aggregator/demo/sample/ from scripts/demo_sample_data.py: the blog's feed
(WordPress RSS 2.0), one feed per outlet (RSS 2.0, Google News RSS, Atom, WordPress RSS),
sources.json, and memory.tmx (TMX 1.4: the English of every text of every post).

Run it after editing the data:  .venv/bin/python scripts/build_demo_sample.py
"""

from __future__ import annotations

import html
import json
import re
import sys
import zlib
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from demo_sample_data import ARTICLES, BLOG, CITES, OUTLETS, POSTS

OUT = Path(__file__).resolve().parent.parent / "aggregator" / "demo" / "sample"
BLOG_NAME = "軍事ニュース解説ブログ(デモ)"


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _rfc822(s: str) -> str:
    return format_datetime(_dt(s))


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def blog_feed() -> str:
    items = []
    for n, p in enumerate(reversed(POSTS)):
        link = f"{BLOG}/{p['slug']}/"
        body = [f"<p>{_esc(ja)}</p>" if kind == "body" else f"<p>{ja}</p>" for kind, ja, _ in p["paras"]]
        title = p["title"][0]
        body.append(f'<p>The post <a href="{link}">{_esc(title)}</a> appeared first on '
                    f'<a href="{BLOG}">{BLOG_NAME}</a>.</p>')
        lead = next(ja for kind, ja, _ in p["paras"] if kind == "body")
        items.append(f"""	<item>
		<title>{_esc(title)}</title>
		<link>{link}</link>
		<comments>{link}#respond</comments>
		<dc:creator><![CDATA[管理人]]></dc:creator>
		<pubDate>{_rfc822(p['date'])}</pubDate>
		<category><![CDATA[{p['cat']}]]></category>
		<guid isPermaLink="false">{BLOG}/?p={50100 + len(POSTS) - n}</guid>
		<description><![CDATA[{lead[:80]} [&#8230;]]]></description>
		<content:encoded><![CDATA[{chr(10).join(body)}]]></content:encoded>
		<slash:comments>{(n * 7) % 23}</slash:comments>
	</item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"
	xmlns:content="http://purl.org/rss/1.0/modules/content/"
	xmlns:dc="http://purl.org/dc/elements/1.1/"
	xmlns:atom="http://www.w3.org/2005/Atom"
	xmlns:slash="http://purl.org/rss/1.0/modules/slash/">
<channel>
	<title>{BLOG_NAME}</title>
	<atom:link href="{BLOG}/feed/" rel="self" type="application/rss+xml" />
	<link>{BLOG}</link>
	<description>海外の軍事・安全保障ニュースを日本語で紹介し解説するブログ(aggregator のデモ用サンプル)</description>
	<lastBuildDate>{_rfc822(POSTS[-1]['date'])}</lastBuildDate>
	<language>ja</language>
	<generator>https://wordpress.org/?v=6.8</generator>
{chr(10).join(items)}
</channel>
</rss>
"""


def outlet_feed(oid: str) -> str:
    name, kind, site, _ = OUTLETS[oid]
    arts = sorted((a for a in ARTICLES if a[0] == oid), key=lambda a: a[2], reverse=True)
    if kind == "atom":
        entries = "\n".join(f"""  <entry>
    <title>{_esc(t)}</title>
    <link rel="alternate" type="text/html" href="{_esc(link)}"/>
    <id>{_esc(link)}</id>
    <published>{d}</published>
    <updated>{d}</updated>
    <author><name>{_esc(au or name)}</name></author>
    <summary type="html">{_esc(f"<p>{_esc(s)}</p>")}</summary>
  </entry>""" for _, _, d, t, link, s, au in arts)
        return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>{_esc(name)}</title>
  <link rel="alternate" href="{site}/"/>
  <id>{site}/</id>
  <updated>{arts[0][2]}</updated>
{entries}
</feed>
"""
    items = []
    for _, key, d, t, link, s, au in arts:
        if kind == "googlenews":
            # Google News: no summary, only the headline linked again and the outlet's name.
            desc = f'<a href="{link}" target="_blank">{_esc(t)}</a>&nbsp;&nbsp;<font color="#6f6f6f">{name}</font>'
            items.append(f"""<item><title>{_esc(t)}</title><link>{_esc(link)}</link>
<guid isPermaLink="false">{key}-{zlib.crc32(link.encode()):010d}</guid><pubDate>{_rfc822(d)}</pubDate>
<description>{_esc(desc)}</description>
<source url="{site}">{_esc(name)}</source></item>""")
            continue
        summary = f"<p>{_esc(s)}</p>"
        if kind == "wordpress":
            summary += (f'<p>The post <a href="{_esc(link)}">{_esc(t)}</a> appeared first on '
                        f'<a href="{site}">{_esc(name)}</a>.</p>')
        items.append(f"""<item>
<title>{_esc(t)}</title>
<link>{_esc(link)}</link>
<guid isPermaLink="false">{site}/?p={key}</guid>
<pubDate>{_rfc822(d)}</pubDate>
<dc:creator>{_esc(au or name)}</dc:creator>
<description><![CDATA[{summary}]]></description>
</item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
<title>{_esc(name)}</title>
<link>{site}</link>
<description>{_esc(name)}: latest news</description>
<language>en</language>
{chr(10).join(items)}
</channel>
</rss>
"""


def memory() -> bytes:
    from translate.storage import tmx

    f = tmx.tmxfile(sourcelanguage="ja", targetlanguage="en")
    seen: set[str] = set()
    for p in POSTS:
        pairs = [p["title"]] + [(ja, en) for kind, ja, en in p["paras"] if kind == "body"]
        for ja, en in pairs:
            if ja not in seen:
                seen.add(ja)
                f.addtranslation(ja, "ja", en, "en")
    return bytes(f)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "blog.xml").write_text(blog_feed(), encoding="utf-8")
    for oid in OUTLETS:
        (OUT / f"{oid}.xml").write_text(outlet_feed(oid), encoding="utf-8")
    (OUT / "memory.tmx").write_bytes(memory())
    sources = [{"id": "blog", "name": BLOG_NAME, "file": "blog.xml", "role": "blog", "language": "ja"}]
    sources += [{"id": oid, "name": name, "file": f"{oid}.xml", "role": "outlet", "language": "en",
                 "site": site, "aliases": aliases} for oid, (name, _, site, aliases) in OUTLETS.items()]
    (OUT / "sources.json").write_text(json.dumps(sources, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    links = {a[1]: a[4] for a in ARTICLES}
    cases = [{"link": f"{BLOG}/{p['slug']}/", "case": p["case"], "cites": sorted(links[k] for k in CITES[p["slug"]])}
             for p in POSTS]
    (OUT / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(POSTS)} posts, {len(ARTICLES)} articles in {len(OUTLETS)} outlet feeds to {OUT}")
    assert not re.search(r"[\x00-\x08]", blog_feed())


if __name__ == "__main__":
    main()
