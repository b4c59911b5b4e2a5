"""Realistic WordPress single-post pages around a post's HTML, for the full-text tests.

A page has what a real theme puts around a post: a header with the site's navigation, the
article (category, title, date, ``entry-content``), share buttons, a related-posts widget,
post navigation, a comment section and a sidebar. The chrome holds *trap* lines that
would be citations if they were taken for the post: comments that say 参考 and link an
outlet's article, comments that name an outlet with a day (「ロイターも13日…と報じた」),
related-post excerpts that do the same, and a sidebar of recent comments.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SITE_NAME = "軍事ニュース解説ブログ"


@dataclass(frozen=True)
class Trap:
    """An outlet article that the page's chrome cites (and the post does not)."""

    outlet: str  # as the blog writes it: ロイター, 米POLITICO, Defense News
    headline: str
    url: str
    day: int = 13


@dataclass(frozen=True)
class Related:
    title: str
    url: str
    excerpt: str = ""


@dataclass
class Page:
    url: str
    title: str
    content: str  # the post's HTML, as content:encoded holds it
    date: str = "2024-05-13T09:00:00+09:00"
    category: str = "ウクライナ戦況"
    site: str = "https://blog.example.jp"
    traps: Sequence[Trap] = ()
    related: Sequence[Related] = ()
    tags: Sequence[str] = ("ウクライナ", "ロシア")
    charset: str = "utf-8"
    extra_comments: Sequence[str] = field(default_factory=tuple)

    def html(self) -> str:
        e = html.escape
        s = self.site
        day = self.date[:10]
        y, m, d = (int(x) for x in day.split("-"))
        nav = "".join(f'<li class="menu-item"><a href="{s}/category/{slug}/">{name}</a></li>'
                      for slug, name in (("ukraine-war", "ウクライナ戦況"), ("us-related", "米国関連"),
                                         ("europe-related", "欧州関連"), ("indo-pacific", "インド太平洋関連"),
                                         ("military-technology", "軍事技術")))
        share = "".join(
            f'<li class="share-{n}"><a rel="nofollow noopener noreferrer" class="share-{n} sd-button" '
            f'href="{href}" target="_blank" title="{t}"><span>{t}</span></a></li>'
            for n, t, href in (
                ("twitter", "X で共有", f"https://twitter.com/intent/tweet?url={self.url}&text={e(self.title)}"),
                ("facebook", "Facebook で共有", f"https://www.facebook.com/sharer/sharer.php?u={self.url}"),
                ("hatena", "はてなブックマーク", f"https://b.hatena.ne.jp/entry/{self.url}"),
                ("line", "LINEで送る", f"https://social-plugins.line.me/lineit/share?url={self.url}")))
        related = "".join(
            f'<div class="jp-relatedposts-post jp-relatedposts-post{i}"><h4 class="jp-relatedposts-post-title">'
            f'<a class="jp-relatedposts-post-a" href="{r.url}" title="{e(r.title)}">{e(r.title)}</a></h4>'
            f'<p class="jp-relatedposts-post-excerpt">{e(r.excerpt)}</p>'
            f'<p class="jp-relatedposts-post-context">「{e(self.category)}」内</p></div>'
            for i, r in enumerate(self.related))
        comments = []
        recent = []
        for i, t in enumerate(self.traps):
            cid = 9000 + i * 7
            bodies = [
                f'<p>参考:<a href="{t.url}" rel="nofollow ugc">{e(t.headline)}</a></p>'
                f'<p>{e(t.outlet)}も{t.day}日にこの件を報じていますね。管理人さんの見立てとは少し違うようです。</p>',
                f'<p>{e(t.outlet)}は{t.day}日、「{e(t.headline)}」と報じた。こっちの方が正確では?</p>'
                f'<p>ソース:<a href="{t.url}" rel="nofollow ugc">{t.url}</a></p>',
                f'<blockquote><p>参考:{e(t.headline)}</p></blockquote><p>出典がこれだけでは弱いと思う。</p>',
            ]
            comments.append(
                f'<li id="comment-{cid}" class="comment {"even" if i % 2 else "odd"} thread-even depth-1">'
                f'<article id="div-comment-{cid}" class="comment-body"><footer class="comment-meta">'
                f'<div class="comment-author vcard"><b class="fn">名無しの{i + 1}</b> <span class="says">より:</span></div>'
                f'<div class="comment-metadata"><a href="{self.url}#comment-{cid}"><time datetime="{day}T1{i}:31:00+09:00">'
                f'{y}年{m}月{d}日 1{i}:31 AM</time></a></div></footer>'
                f'<div class="comment-content">{bodies[i % len(bodies)]}</div>'
                f'<div class="reply"><a rel="nofollow" class="comment-reply-link" href="{self.url}?replytocom={cid}#respond">'
                f'返信</a></div></article>'
                f'<ol class="children"><li id="comment-{cid + 1}" class="comment byuser depth-2"><article class="comment-body">'
                f'<footer class="comment-meta"><div class="comment-author vcard"><b class="fn">匿名</b> '
                f'<span class="says">より:</span></div></footer><div class="comment-content">'
                f'<p>参考:{e(t.outlet)} {e(t.headline)}</p><p>出典:{e(t.outlet)}</p></div></article></li></ol></li>')
            recent.append(f'<li class="recentcomments"><span class="comment-author-link">名無しの{i + 1}</span> より '
                          f'<a href="{self.url}#comment-{cid}">{e(self.title)}</a>: 参考:{e(t.headline)}</li>')
        for j, text in enumerate(self.extra_comments):
            comments.append(f'<li id="comment-{8000 + j}" class="comment depth-1"><article class="comment-body">'
                            f'<div class="comment-content">{text}</div></article></li>')
        n_comments = len(comments) + len(self.traps)
        ld = json.dumps({"@context": "https://schema.org", "@type": "BlogPosting", "headline": self.title,
                         "datePublished": self.date, "author": {"@type": "Person", "name": "管理人"},
                         "mainEntityOfPage": self.url}, ensure_ascii=False)
        return f"""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="{self.charset}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(self.title)} | {SITE_NAME}</title>
<link rel="canonical" href="{self.url}">
<meta property="og:type" content="article">
<meta property="og:title" content="{e(self.title)}">
<meta property="og:url" content="{self.url}">
<meta property="og:site_name" content="{SITE_NAME}">
<meta property="article:published_time" content="{self.date}">
<link rel="alternate" type="application/rss+xml" title="{SITE_NAME} &raquo; フィード" href="{s}/feed/">
<script type="application/ld+json">{ld}</script>
<script>window.adsbygoogle = window.adsbygoogle || []; var ajaxurl = "{s}/wp-admin/admin-ajax.php";</script>
<style>.entry-content p{{margin:0 0 1em}} .sd-button{{display:inline-block}}</style>
</head>
<body class="post-template-default single single-post postid-42798 single-format-standard">
<div id="page" class="site">
<a class="skip-link screen-reader-text" href="#content">コンテンツへスキップ</a>
<header id="masthead" class="site-header">
<div class="site-branding"><p class="site-title"><a href="{s}/" rel="home">{SITE_NAME}</a></p>
<p class="site-description">海外の軍事・安全保障ニュースを日本語で紹介し解説するブログ</p></div>
<nav id="site-navigation" class="main-navigation"><button class="menu-toggle">メニュー</button>
<ul id="primary-menu" class="menu">{nav}<li class="menu-item"><a href="{s}/contact/">お問い合わせ</a></li></ul></nav>
<div class="header-ad"><ins class="adsbygoogle" data-ad-client="ca-pub-0000"></ins><script>(adsbygoogle=window.adsbygoogle||[]).push({{}});</script></div>
</header>
<div id="content" class="site-content">
<div id="primary" class="content-area"><main id="main" class="site-main">
<nav class="breadcrumbs"><a href="{s}/">ホーム</a> &gt; <a href="{s}/category/x/">{e(self.category)}</a> &gt; <span>{e(self.title)}</span></nav>
<article id="post-42798" class="post-42798 post type-post status-publish format-standard has-post-thumbnail hentry">
<header class="entry-header">
<div class="cat-links"><a href="{s}/category/x/" rel="category tag">{e(self.category)}</a></div>
<h1 class="entry-title">{e(self.title)}</h1>
<div class="entry-meta"><span class="posted-on"><a href="{self.url}" rel="bookmark"><time class="entry-date published" datetime="{self.date}">{y}年{m}月{d}日</time></a></span>
<span class="byline"> <span class="author vcard"><a class="url fn n" href="{s}/author/admin/">管理人</a></span></span>
<span class="comments-link"><a href="{self.url}#comments">{n_comments}件のコメント</a></span></div>
</header>
<div class="entry-content">
{self.content}
<div class="ad-in-article"><ins class="adsbygoogle" data-ad-slot="123"></ins></div>
</div>
<div class="sharedaddy sd-sharing-enabled"><div class="robots-nocontent sd-block sd-social sd-social-icon-text sd-sharing">
<h3 class="sd-title">シェアする:</h3><div class="sd-content"><ul>{share}</ul></div></div></div>
<div id="jp-relatedposts" class="jp-relatedposts"><h3 class="jp-relatedposts-headline"><em>関連記事</em></h3>
<div class="jp-relatedposts-items jp-relatedposts-items-visual">{related}</div></div>
<footer class="entry-footer"><span class="cat-links">カテゴリー: <a href="{s}/category/x/" rel="category tag">{e(self.category)}</a></span>
<span class="tags-links">タグ: {"、".join(f'<a href="{s}/tag/{e(t)}/" rel="tag">{e(t)}</a>' for t in self.tags)}</span></footer>
</article>
<nav class="navigation post-navigation" aria-label="投稿"><h2 class="screen-reader-text">投稿ナビゲーション</h2>
<div class="nav-links"><div class="nav-previous"><a href="{s}/ukraine-war/previous-post/" rel="prev"><span class="meta-nav">前の投稿</span> ウクライナ軍、東部戦線で防衛線を再構築</a></div>
<div class="nav-next"><a href="{s}/us-related/next-post/" rel="next"><span class="meta-nav">次の投稿</span> 米議会、追加支援の採決日程を発表</a></div></div></nav>
<div id="comments" class="comments-area">
<h2 class="comments-title">「{e(self.title)}」への{n_comments}件のフィードバック</h2>
<ol class="comment-list">{"".join(comments)}</ol>
<div id="respond" class="comment-respond"><h3 id="reply-title" class="comment-reply-title">コメントを残す</h3>
<form action="{s}/wp-comments-post.php" method="post" id="commentform" class="comment-form">
<p class="comment-notes">メールアドレスが公開されることはありません。</p>
<p class="comment-form-comment"><label for="comment">コメント</label><textarea id="comment" name="comment"></textarea></p>
<p class="form-submit"><input name="submit" type="submit" id="submit" class="submit" value="コメントを送信"></p></form></div>
</div>
</main></div>
<aside id="secondary" class="widget-area">
<section id="search-2" class="widget widget_search"><form role="search" method="get" class="search-form" action="{s}/"><input type="search" class="search-field" name="s"></form></section>
<section id="recent-posts-2" class="widget widget_recent_entries"><h2 class="widget-title">最近の投稿</h2>
<ul>{"".join(f'<li><a href="{r.url}">{e(r.title)}</a></li>' for r in self.related)}</ul></section>
<section id="recent-comments-2" class="widget widget_recent_comments"><h2 class="widget-title">最近のコメント</h2>
<ul id="recentcomments">{"".join(recent)}</ul></section>
<section id="archives-2" class="widget widget_archive"><h2 class="widget-title">アーカイブ</h2>
<ul><li><a href="{s}/2024/05/">2024年5月</a></li><li><a href="{s}/2024/04/">2024年4月</a></li></ul></section>
</aside>
</div>
<footer id="colophon" class="site-footer"><div class="site-info">&copy; {y} {SITE_NAME} | <a href="{s}/privacy-policy/">プライバシーポリシー</a> | Proudly powered by WordPress</div></footer>
</div>
<script src="{s}/wp-includes/js/comment-reply.min.js" id="comment-reply-js"></script>
</body>
</html>
"""


# -- the dev set turned excerpt-only -------------------------------------------------------

_CONTENT = re.compile(r"\s*<content:encoded>.*?</content:encoded>", re.S)
_LINK = re.compile(r"<link>(https://blog\.example\.jp/[^<]*)</link>")


def excerpt_feed(blog_xml: bytes, relink: Callable[[str], str]) -> bytes:
    """A WordPress feed set to "Summary": no content:encoded, each post's link moved by
    ``relink`` (to a loopback page). The 120-character descriptions ending in […] stay."""
    text = _CONTENT.sub("", blog_xml.decode("utf-8"))
    text = _LINK.sub(lambda m: f"<link>{relink(m.group(1))}</link>", text)
    return text.encode("utf-8")


def page_path(link: str) -> str:
    return "/posts" + urlsplit(link).path


def dev_pages(dev: Path, relink: Callable[[str], str]) -> dict[str, tuple[bytes, Page]]:
    """One WordPress page per dev-set post (path -> (bytes, page)), holding the post's
    content:encoded, with trap comments that cite other articles of the subscribed
    outlets (by link, by headline, and by name and day) and a related-posts widget and
    recent-comments sidebar whose excerpts name outlets with days."""
    import feedparser

    blog = feedparser.parse((dev / "feeds" / "blog.xml").read_bytes())
    gold = [json.loads(line) for line in (dev / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line]
    cited = {c for g in gold for c in g["cited"]}
    traps: list[tuple[str, str, str]] = []
    for f in sorted((dev / "feeds").glob("*.xml")):
        if f.name == "blog.xml":
            continue
        for e in feedparser.parse(f.read_bytes()).entries:
            if e.link not in cited:
                traps.append((_OUTLET_JA.get(f.stem, f.stem), e.title, e.link))
    posts = blog.entries
    out = {}
    for i, p in enumerate(posts):
        picked = [traps[(i * 7 + k * 13) % len(traps)] for k in range(4)]
        page = Page(
            url=relink(p.link), title=p.title, content=p.content[0].value,
            date=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", p.published_parsed),
            category=p.tags[0].term if p.get("tags") else "ウクライナ戦況",
            traps=[Trap(o, h, u, day=(i + k) % 28 + 1) for k, (o, h, u) in enumerate(picked)],
            related=[Related(posts[(i + k) % len(posts)].title, relink(posts[(i + k) % len(posts)].link),
                             _plain(posts[(i + k) % len(posts)].summary)) for k in (1, 2, 3)])
        out[page_path(p.link)] = (page.html().encode("utf-8"), page)
    return out


_OUTLET_JA = {"politico": "米POLITICO", "reuters": "ロイター通信", "kyivindependent": "キーウ・インディペンデント紙",
              "defensenews": "Defense News", "breakingdefense": "Breaking Defense", "twz": "The War Zone"}


def _plain(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


@dataclass
class DevRun:
    """Matching figures of one dev-set run and what the loopback server saw."""

    results: list[Any]  # aggregator.running.evaluation.EvalResult after each cycle
    page_requests: list[Counter[str]]  # per cycle: "plain" | "conditional" -> page requests
    feed_requests: list[int]  # per cycle
    store: Path
    pages: dict[str, tuple[bytes, Page]]


def dev_run(dev: Path, tmp: Path, *, excerpt: bool, cycles: int = 2, translate: bool = True,
            pages_per_cycle: int = 20, full_text: str = "auto") -> DevRun:
    """The dev set through the real cycle on loopback, full feed or excerpt feed + pages;
    scored as ``aggregator eval-matching`` scores it (by each post's original link)."""
    from loopback import FeedServer, LibreTranslateServer

    from aggregator.config import load_config
    from aggregator.running.cycle import run_cycle
    from aggregator.running.evaluation import _score, _slug, read_sources
    from aggregator.store import Store

    sources = read_sources(dev)
    gold = [json.loads(line) for line in (dev / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line]
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(dev / "translations.jsonl", unknown="error") as lt:
        def relink(link: str) -> str:
            return feeds.url(page_path(link)) if excerpt else link

        pages = dev_pages(dev, relink) if excerpt else {}
        for path, (body, _) in pages.items():
            feeds.add(path, body, "text/html; charset=utf-8")
        cfg_sources = []
        for s in sources:
            path = "/" + str(s["file"]).lstrip("/")
            data = (dev / s["file"]).read_bytes()
            if excerpt and s.get("role") == "blog":
                data = excerpt_feed(data, relink)
            feeds.add(path, data)
            cfg_sources.append({"id": _slug(str(s["id"])), "name": s.get("name") or s["id"], "url": feeds.url(path),
                                "role": s.get("role", "outlet"), "language": s.get("language", "en"),
                                "aliases": [str(a) for a in s.get("aliases") or []],
                                **({"full_text": full_text} if s.get("role") == "blog" else {})})
        providers = [{"provider": "libre", "url": lt.url}] if translate else []
        cfg = tmp / "aggregator.yaml"
        cfg.write_text(json.dumps({
            "storage": {"url": "sqlite:///store.sqlite3"}, "output": {"dir": "output", "max_entries": 10_000},
            "translation": {"target": "en", "timeout": "5s", "providers": providers},
            "fetch": {"allow_private_networks": True, "pages_per_cycle": pages_per_cycle},
            "sources": cfg_sources}, ensure_ascii=False), encoding="utf-8")
        config = load_config(cfg)
        page_requests: list[Counter[str]] = []
        feed_requests: list[int] = []
        results = []
        scored_gold = [{**g, "link": relink(g["link"])} for g in gold]
        with Store(config.db_path) as store:
            for _ in range(cycles):
                before = len(feeds.requests)
                run_cycle(store, config, fetch_all=True)
                done = feeds.requests[before:]
                page_requests.append(Counter("conditional" if r.headers.get("If-None-Match") or
                                             r.headers.get("If-Modified-Since") else "plain"
                                             for r in done if r.path.startswith("/posts/")))
                feed_requests.append(sum(1 for r in done if not r.path.startswith("/posts/")))
                results.append(_score(store, config, scored_gold))
    return DevRun(results, page_requests, feed_requests, config.db_path, pages)

