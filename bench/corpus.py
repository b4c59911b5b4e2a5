"""Realistic feeds for the cycle benchmark (bench/bench_cycle.py). Pure: a seeded
random generator and the shared real feeds in, feed documents (bytes) out.

Shapes come from real outlets: each generated outlet feed takes the entry bodies of
one real feed (the matchbench dev outlets and the English feeds of
shared/fixtures/real-feeds), so its bytes per entry, its HTML and whether it carries
full content are those of a real publisher: from a Reuters-style headline and one
sentence (~0.6 kB an entry) to a WordPress full-content feed (~10 kB). A third of the
feeds are Atom, the rest RSS 2.0. Headlines are drawn from the real outlets'
vocabulary, so that every article has its own headline (blog posts cite them).

A share of the feeds (``blog_share``, 10 % by default) are blog-style Japanese feeds in
the shape of the matchbench blog: WordPress RSS with content:encoded, paragraphs of
real Japanese commentary, image credits (出典:), 関連記事 lists, and 参考: lines that
cite articles of the outlet feeds (by link, or by headline and outlet name).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import feedparser

# English outlet feeds whose entry shapes the generated outlets copy (files under
# matchbench/dev/feeds and fixtures/real-feeds; feeds of one or two entries left out).
# Headline-and-one-sentence feeds (the commonest kind) are listed twice, so that the
# mix leans to them as real subscription lists do; full-content feeds once.
SHAPE_FEEDS = (
    "dev:breakingdefense.xml", "dev:defensenews.xml", "dev:kyivindependent.xml", "dev:politico.xml",
    "dev:reuters.xml", "dev:twz.xml",
    "real:guardian-rssparser-2018.rss.xml", "real:kyivindependent-plakhov-derived.xml",
    "real:pcmag-illegally-nested-nodefeedparser.xml", "real:politico-newspal-politics-2018.xml",
    "real:reuters-googlenews-direct-derived.xml", "real:reuters-newspal-topnews-feedburner-2018.xml",
    "real:techcrunch-wordpress-feedjira.xml", "real:thehill-newspal-2018.xml", "real:tpm-nodefeedparser.atom.xml",
    "real:wapo-wellness-nodefeedparser.xml",
    "dev:defensenews.xml", "dev:politico.xml", "dev:reuters.xml", "dev:twz.xml",
    "real:reuters-googlenews-direct-derived.xml", "real:thehill-newspal-2018.xml",
    "real:politico-newspal-politics-2018.xml",
)
BLOG_SHAPE = "dev:blog.xml"
CHURN_NEW = 5  # a changed feed: this many new entries on top (as many old ones drop off) and one edited


@dataclass(frozen=True, slots=True)
class Body:
    summary: str
    content: str
    author: str | None
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GenEntry:
    guid: str
    link: str
    title: str
    summary: str
    content: str
    published: datetime
    author: str | None = None
    categories: tuple[str, ...] = ()
    image: str | None = None


@dataclass
class GenFeed:
    id: str
    name: str
    role: str  # outlet | blog
    language: str
    fmt: str  # rss | atom
    site: str
    shape: str
    entries: list[GenEntry] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/{self.id}.{'atom' if self.fmt == 'atom' else 'xml'}"


@dataclass
class Shapes:
    """What the generator copies from the real feeds."""

    bodies: dict[str, list[Body]]
    words: list[str]
    blog_paragraphs: list[str]
    blog_titles: list[str]


def _shape_path(shared: Path, name: str) -> Path:
    kind, file = name.split(":", 1)
    return shared / ("matchbench/dev/feeds" if kind == "dev" else "fixtures/real-feeds") / file


def load_shapes(shared: Path) -> Shapes:
    bodies: dict[str, list[Body]] = {}
    counts: Counter[str] = Counter()
    for name in dict.fromkeys(SHAPE_FEEDS):
        d = feedparser.parse(_shape_path(shared, name).read_bytes(), sanitize_html=False)
        got = []
        for e in d.entries:
            content = next((c.get("value", "") for c in e.get("content") or () if c.get("value")), "")
            summary = e.get("summary", "")
            if summary == content:
                summary = ""
            tags = tuple(t.get("term") for t in e.get("tags") or () if t.get("term"))
            got.append(Body(summary, content, e.get("author"), tags[:6]))
            counts.update(re.findall(r"[A-Za-z][a-z]{2,}", e.get("title", "")))
        bodies[name] = [b for b in got if b.summary or b.content]
    words = [w for w, _ in counts.most_common()]
    d = feedparser.parse(_shape_path(shared, BLOG_SHAPE).read_bytes(), sanitize_html=False)
    paragraphs, titles = [], []
    for e in d.entries:
        titles.append(e.title)
        html = next((c.get("value", "") for c in e.get("content") or () if c.get("value")), "")
        for p in re.findall(r"<p>(.*?)</p>", html, re.S):
            # Its own citations and link lists are left out: the generator writes its own.
            if not re.search(r"参考|関連記事|出典|appeared first|<a ", p) and len(p) > 40:
                paragraphs.append(p)
    return Shapes(bodies, words, paragraphs, titles)


def headline(rng: random.Random, words: Sequence[str], serial: int) -> str:
    """A headline of real outlet words: half from the commonest hundred, half from the
    long tail; the serial number (as a figure, as headlines carry them) keeps it unique."""
    k = rng.randint(6, 11)
    ws = [words[rng.randrange(min(100, len(words)))] if rng.random() < 0.5 else words[rng.randrange(len(words))]
          for _ in range(k)]
    ws.insert(rng.randrange(1, k), str(serial))
    return " ".join(ws).capitalize()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:70]


class Generator:
    """Makes the feeds; ``now`` is when the first cycle runs (entries are dated before it)."""

    def __init__(self, shapes: Shapes, *, seed: int = 1, now: datetime):
        self.shapes = shapes
        self.rng = random.Random(seed)
        self.now = now
        self.serial = 0

    def _title(self) -> str:
        self.serial += 1
        return headline(self.rng, self.shapes.words, self.serial)

    def outlet(self, i: int, entries: int) -> GenFeed:
        rng = self.rng
        shape = SHAPE_FEEDS[i % len(SHAPE_FEEDS)]
        fmt = "atom" if i % 3 == 2 else "rss"
        f = GenFeed(f"outlet{i:04d}", f"Outlet {i}", "outlet", "en", fmt, f"https://outlet{i:04d}.example", shape)
        # How far back a feed of 50 entries reaches: hours for a wire, weeks for a niche site.
        span = timedelta(hours=rng.choice((6, 12, 24, 48, 96, 168, 336)))
        dates = sorted((self.now - span * rng.random() - timedelta(minutes=5) for _ in range(entries)), reverse=True)
        f.entries = [self._outlet_entry(f, d) for d in dates]
        return f

    def _outlet_entry(self, f: GenFeed, when: datetime) -> GenEntry:
        body = self.rng.choice(self.shapes.bodies[f.shape])
        title = self._title()
        link = f"{f.site}/{when:%Y/%m/%d}/{_slug(title)}/"
        guid = link if f.fmt == "rss" and self.serial % 2 else f"{f.site}/?p={self.serial}"
        image = f"{f.site}/img/{self.serial}.jpg" if self.rng.random() < 0.5 else None
        return GenEntry(guid, link, title, body.summary, body.content, when, body.author, body.categories, image)

    def blog(self, i: int, entries: int, outlets: Sequence[GenFeed]) -> GenFeed:
        f = GenFeed(f"blog{i:03d}", f"軍事ニュース解説ブログ{i}", "blog", "ja", "rss", f"https://blog{i:03d}.example.jp",
                    BLOG_SHAPE)
        arts = [(a, o) for o in outlets for a in o.entries]
        f.entries = sorted((self._post(f, arts) for _ in range(entries)), key=lambda e: e.published, reverse=True)
        return f

    def _post(self, f: GenFeed, arts: Sequence[tuple[GenEntry, GenFeed]], after: datetime | None = None) -> GenEntry:
        """A Japanese commentary post; 85 % of them cite one or two outlet articles on 参考: lines."""
        rng, sh = self.rng, self.shapes
        self.serial += 1
        paras = [f"<p>{p}</p>" for p in rng.sample(sh.blog_paragraphs, min(len(sh.blog_paragraphs), rng.randint(3, 6)))]
        paras.insert(2, f'<figure class="wp-block-image size-large"><img alt="" decoding="async" '
                        f'src="{f.site}/wp-content/uploads/{self.serial}.jpg" /></figure><p>出典:Ministry of Defence</p>')
        cites, cited = [], []
        if rng.random() < 0.85 and arts:
            pool = arts
            if after is not None:
                pool = [x for x in arts if x[0].published >= after - timedelta(days=2)] or list(arts)
            for art, outlet in rng.sample(pool, rng.choice((1, 1, 2))):
                cited.append(art.published)
                if rng.random() < 0.65:
                    cites.append(f'<p>参考:<a href="{escape(art.link)}?utm_source=rss">{escape(art.title)}</a></p>')
                else:
                    cites.append(f"<p>参考:{escape(art.title)} - {escape(outlet.name)}</p>")
        when = self._post_date(cited, after)
        paras += cites
        paras.append(f'<p>関連記事:<a href="{f.site}/{self.serial - 1}/">{escape(rng.choice(sh.blog_titles))}</a></p>')
        title = f"{rng.choice(sh.blog_titles)}({self.serial})"
        link = f"{f.site}/{when:%Y/%m}/post-{self.serial}/"
        content = "\n".join(paras)
        summary = re.sub(r"<[^>]+>", "", paras[0])[:110] + " [&#8230;]"
        return GenEntry(f"{f.site}/?p={self.serial}", link, title, summary, content, when, "管理人", ("ウクライナ戦争",))

    def _post_date(self, cited: list[datetime], after: datetime | None) -> datetime:
        # Posts follow the articles they cite by a few hours, never in the future.
        base = max(cited) if cited else self.now - timedelta(hours=self.rng.uniform(1, 160))
        when = base + timedelta(hours=self.rng.uniform(2, 30))
        if after is not None:
            when = max(when, after)
        return min(when, self.now - timedelta(minutes=1))


def generate(shapes: Shapes, n_feeds: int, entries: int, *, seed: int = 1, now: datetime,
             blog_share: float = 0.10) -> list[GenFeed]:
    g = Generator(shapes, seed=seed, now=now)
    n_blogs = max(1, round(n_feeds * blog_share)) if blog_share > 0 and n_feeds > 1 else 0
    outlets = [g.outlet(i, entries) for i in range(n_feeds - n_blogs)]
    blogs = [g.blog(i, entries, outlets) for i in range(n_blogs)]
    return outlets + blogs


def churn(shapes: Shapes, feeds: Sequence[GenFeed], *, share: float = 0.10, seed: int = 2,
          now: datetime) -> list[GenFeed]:
    """The changed versions of ``share`` of the feeds: CHURN_NEW new entries on top (as
    many old ones drop off, as a feed keeps its length) and one entry edited."""
    g = Generator(shapes, seed=seed, now=now)
    g.serial = 10_000_000
    rng = g.rng
    chosen = rng.sample(list(feeds), max(1, round(len(feeds) * share)))
    outlets = [f for f in feeds if f.role == "outlet"]
    arts = [(a, o) for o in outlets for a in o.entries]
    out = []
    for f in chosen:
        newest = f.entries[0].published if f.entries else now - timedelta(hours=1)
        if f.role == "blog":
            new = [g._post(f, arts, after=newest) for _ in range(CHURN_NEW)]
        else:
            new = [g._outlet_entry(f, newest + (now - newest) * rng.random()) for _ in range(CHURN_NEW)]
        kept = f.entries[: len(f.entries) - CHURN_NEW]
        if kept:
            k = rng.randrange(len(kept))
            e = kept[k]
            kept[k] = replace(e, summary=e.summary + "<p>Updated with a correction.</p>" if e.summary else e.summary,
                              content=e.content + "<p>Updated with a correction.</p>" if e.content else e.content)
        changed = replace(f, entries=sorted(new, key=lambda e: e.published, reverse=True) + kept)
        out.append(changed)
    return out


# -- rendering ---------------------------------------------------------------------------


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render(f: GenFeed, now: datetime) -> bytes:
    return (render_atom(f, now) if f.fmt == "atom" else render_rss(f, now)).encode("utf-8")


def render_rss(f: GenFeed, now: datetime) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
           'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
           'xmlns:atom="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">\n<channel>\n',
           f"<title>{escape(f.name)}</title>\n<link>{f.site}/</link>\n",
           f'<atom:link href="{f.site}/feed/" rel="self" type="application/rss+xml" />\n',
           f"<description>{escape(f.name)} news</description>\n<language>{f.language}</language>\n",
           f"<lastBuildDate>{format_datetime(now.astimezone(UTC), usegmt=True)}</lastBuildDate>\n"]
    for e in f.entries:
        permalink = "true" if e.guid == e.link else "false"
        out.append(f"<item>\n<title>{escape(e.title)}</title>\n<link>{escape(e.link)}</link>\n"
                   f'<guid isPermaLink="{permalink}">{escape(e.guid)}</guid>\n'
                   f"<pubDate>{format_datetime(e.published.astimezone(UTC), usegmt=True)}</pubDate>\n")
        if e.author:
            out.append(f"<dc:creator>{_cdata(e.author)}</dc:creator>\n")
        out.extend(f"<category>{_cdata(c)}</category>\n" for c in e.categories)
        out.append(f"<description>{_cdata(e.summary)}</description>\n")
        if e.content:
            out.append(f"<content:encoded>{_cdata(e.content)}</content:encoded>\n")
        if e.image:
            out.append(f'<media:content url={quoteattr(e.image)} medium="image" />\n')
        out.append("</item>\n")
    out.append("</channel>\n</rss>\n")
    return "".join(out)


def render_atom(f: GenFeed, now: datetime) -> str:
    out = ['<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
           f'xml:lang="{f.language}">\n',
           f"<title>{escape(f.name)}</title>\n<id>{f.site}/</id>\n",
           f'<link href="{f.site}/" rel="alternate" type="text/html"/>\n',
           f'<link href="{f.site}/feed.atom" rel="self"/>\n',
           f"<updated>{now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}</updated>\n"]
    for e in f.entries:
        out.append(f"<entry>\n<title>{escape(e.title)}</title>\n<id>{escape(e.guid)}</id>\n"
                   f'<link href={quoteattr(e.link)} rel="alternate" type="text/html"/>\n'
                   f"<published>{e.published.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}</published>\n"
                   f"<updated>{e.published.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}</updated>\n")
        if e.author:
            out.append(f"<author><name>{escape(e.author)}</name></author>\n")
        out.extend(f"<category term={quoteattr(c)}/>\n" for c in e.categories)
        if e.summary:
            out.append(f'<summary type="html">{escape(e.summary)}</summary>\n')
        if e.content:
            out.append(f'<content type="html">{escape(e.content)}</content>\n')
        out.append("</entry>\n")
    out.append("</feed>\n")
    return "".join(out)
