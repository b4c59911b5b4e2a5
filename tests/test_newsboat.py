"""A real feed reader subscribed to the merged feed: newsboat (Debian package) reads
feed.atom from ``aggregator serve``'s server on 127.0.0.1 after each of two real cycles.
Between them one blog post is added and one post's translation changes; newsboat's cache
(sqlite3, table ``rss_item``) must then hold every post exactly once, with the new title.

Fails, never skips, when newsboat is missing: ``scripts/test`` installs it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import feedparser
import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from lxml import etree
from test_pipeline_e2e import write_config

from aggregator.publishing.serve import make_server

A = "{http://www.w3.org/2005/Atom}"
CHANGED = "https://blog.example.jp/us-related/senate-passes-ukraine-aid-package/"
NEW_TITLE_EN = "US Senate passes Ukraine aid bill (updated)"
NEW_POST = """<item>
<title>新着：防衛装備移転の新方針</title>
<link>https://blog.example.jp/japan/new-transfer-policy/</link>
<dc:creator><![CDATA[軍事ニュース解説ブログ管理人]]></dc:creator>
<pubDate>Wed, 22 May 2024 03:00:00 +0000</pubDate>
<guid isPermaLink="false">https://blog.example.jp/?p=50001</guid>
<content:encoded><![CDATA[<p>政府は防衛装備移転の新方針を決めた。</p>]]></content:encoded>
</item>
"""
NEW_TRANSLATIONS = {"新着：防衛装備移転の新方針": "New: a new policy on defence equipment transfers",
                    "政府は防衛装備移転の新方針を決めた。": "The government decided a new policy on defence equipment transfers."}


def newsboat_binary() -> str:
    found = shutil.which("newsboat")
    if not found:
        pytest.fail("newsboat is needed for this test and was not found: "
                    "apt-get install -y newsboat   (scripts/test does this)")
    return found


def reload(binary: str, home: Path, url: str) -> list[tuple[str, str]]:
    """``newsboat -x reload`` with its own HOME; the (guid, title) rows of its cache for ``url``."""
    (home / "urls").write_text(url + "\n", encoding="utf-8")
    (home / "config").write_text("reload-threads 1\nshow-read-feeds yes\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CACHE_HOME": str(home / ".cache"),
           "LANG": "C.UTF-8", "TERM": "dumb", "NO_PROXY": "*", "no_proxy": "*"}
    r = subprocess.run([binary, "-u", str(home / "urls"), "-c", str(home / "cache.db"), "-C", str(home / "config"),
                        "-x", "reload"], env=env, capture_output=True, text=True, timeout=300, cwd=home)
    assert r.returncode == 0, (r.stdout, r.stderr)
    db = sqlite3.connect(home / "cache.db")
    try:
        return db.execute("SELECT guid, title FROM rss_item WHERE feedurl = ? ORDER BY guid", (url,)).fetchall()
    finally:
        db.close()


def atom_ids(out: Path) -> dict[str, str]:
    root = etree.parse(str(out / "feed.atom")).getroot()
    return {e.find(f"{A}link[@rel='alternate']").get("href"): e.findtext(f"{A}id") for e in root.findall(f"{A}entry")}


def test_newsboat_holds_every_post_once_with_the_new_title_after_two_cycles(tmp_path: Path) -> None:
    binary = newsboat_binary()
    home = tmp_path / "home"
    home.mkdir()
    blog = (DEV / "feeds" / "blog.xml").read_bytes()
    old_ja = next(e.title for e in feedparser.parse(blog).entries if e.link == CHANGED)
    new_ja = old_ja + "（更新）"
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        for f in (DEV / "feeds").iterdir():
            feeds.add_file(f"/{f.name}", f)
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, libre.url)
        out = tmp_path / "output"
        out.mkdir()
        server = make_server(out, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}/feed.atom"
        try:
            # cycle 1
            r = subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg)), capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            ids1 = atom_ids(out)
            rows1 = reload(binary, home, url)
            titles1 = dict(rows1)
            old_title = titles1[ids1[CHANGED]]

            # between the cycles: a new post, and a post whose title (so translation) changes
            text = blog.decode("utf-8")
            text = text.replace(f"<title>{old_ja}</title>", f"<title>{new_ja}</title>", 1)
            first = text.index("<item>")
            feeds.add("/blog.xml", (text[:first] + NEW_POST + text[first:]).encode("utf-8"))
            libre.table[("ja", "en", new_ja)] = NEW_TITLE_EN
            for ja, en in NEW_TRANSLATIONS.items():
                libre.table[("ja", "en", ja)] = en

            # cycle 2
            r = subprocess.run(aggregator_cmd("run", "--once", "--all", "--config", str(cfg)),
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            ids2 = atom_ids(out)
            rows2 = reload(binary, home, url)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    print(f"newsboat cache: {len(rows1)} items after cycle 1, {len(rows2)} after cycle 2; "
          f"changed post title before: {old_title!r}, after: {dict(rows2)[ids2[CHANGED]]!r}")
    assert len(rows1) == len(ids1) == 40 + 294
    # every entry exactly once: as many rows as entries, no guid twice, the same guids as the feed
    guids2 = [g for g, _ in rows2]
    assert len(guids2) == len(set(guids2)) == len(ids2) == 40 + 294 + 1
    assert set(guids2) == set(ids2.values())
    # ids never changed: the first cycle's items are the same items, not copies
    assert {link: ids2[link] for link in ids1} == ids1
    titles2 = dict(rows2)
    assert old_title.startswith("U.S. Senate passes Ukraine aid")
    assert titles2[ids2[CHANGED]] == NEW_TITLE_EN
    assert titles2[ids2["https://blog.example.jp/japan/new-transfer-policy/"]] == NEW_TRANSLATIONS["新着：防衛装備移転の新方針"]
    # nothing else changed its title
    assert {g: t for g, t in titles2.items() if g in titles1 and g != ids1[CHANGED]} == \
        {g: t for g, t in titles1.items() if g != ids1[CHANGED]}
