"""The shared dev set turned excerpt-only (the blog's feed set to "Summary": no
content:encoded), its posts' original content inside WordPress pages on loopback with
trap comments and widgets: matching must equal the full-feed run, take no citation from
the chrome, and a further cycle must download no page again."""

from __future__ import annotations

from pathlib import Path

from conftest import DEV
from wordpress import dev_run


def test_excerpt_feed_with_pages_matches_exactly_as_the_full_feed(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "excerpt").mkdir()
    full = dev_run(DEV, tmp_path / "full", excerpt=False, cycles=1)
    # 40 posts, 20 pages a cycle: two cycles to read them all, a third asks for none
    run = dev_run(DEV, tmp_path / "excerpt", excerpt=True, cycles=3)
    want, got = full.results[-1], run.results[-1]
    assert want.overall.precision >= 0.98 and want.overall.recall >= 0.95
    assert (got.overall.tp, got.overall.fp, got.overall.fn) == (want.overall.tp, want.overall.fp, want.overall.fn)
    assert {(e.kind, e.post.rsplit("/posts", 1)[-1], e.article) for e in got.errors} == \
        {(e.kind, e.post.split("blog.example.jp", 1)[-1], e.article) for e in want.errors}
    assert [sum(c.values()) for c in run.page_requests] == [20, 20, 0]
    assert run.feed_requests == [7, 7, 7]
    # after the first cycle only half the posts had their text: fewer matches, none wrong
    assert run.results[0].overall.fp == 0 and run.results[0].overall.tp < want.overall.tp

    # the stored bodies hold no line of the pages' chrome
    import sqlite3

    db = sqlite3.connect(run.store)
    bodies = {link: text for link, text in db.execute("SELECT link, page_text FROM entries WHERE role='blog'")}
    assert len(bodies) == 40 and all(bodies.values())
    leaks = []
    for _, page in run.pages.values():
        body = bodies[page.url]
        chrome = [t.headline for t in page.traps] + [r.excerpt[:40] for r in page.related]
        chrome += ["名無し", "シェアする", "最近のコメント", "コメントを残す", "前の投稿"]
        leaks += [(page.url, c) for c in chrome if c in body]
    assert leaks == []


def test_without_pages_an_excerpt_feed_loses_most_matches(tmp_path: Path) -> None:
    """What the issue is about: with full_text: never the excerpts are all there is."""
    run = dev_run(DEV, tmp_path, excerpt=True, cycles=1, full_text="never", translate=False)
    assert sum(run.page_requests[0].values()) == 0
    assert run.results[0].overall.recall < 0.6
