"""Matching at scale: N blog posts against M stored outlet articles, through the real
store and the real match stage (aggregator.running.cycle.match_stage).

    python bench/bench_matching.py --posts 1000 --articles 100000
    python bench/bench_matching.py --posts 2000 --articles 200000

Prints the time to store the data, the time and peak memory of matching, and the
share of posts linked exactly as generated (a sanity check, not the quality bar:
that is `aggregator eval-matching`). The posts' translations are put in the store's
translation cache beforehand, as the translate stage of earlier cycles leaves them;
with --no-translations mentions are matched on meaning alone (every candidate embedded).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.citing.embeddings import Embedder
from aggregator.config import parse_config
from aggregator.models import EntryData
from aggregator.running.matching import match_stage
from aggregator.store import Store
from aggregator.translating.chain import Translator

T0 = datetime(2024, 3, 1, tzinfo=UTC)
OUTLETS = [f"outlet{i}" for i in range(20)]


def vocab(rng: random.Random, n: int) -> list[str]:
    """Real English words (from the dev set's outlet feeds, most common first), so that
    tokenizing and embedding cost what they cost on news; invented words pad the tail."""
    import re
    from collections import Counter

    counts: Counter[str] = Counter()
    dev = Path(__file__).resolve().parent.parent.parent / "shared" / "matchbench" / "dev" / "feeds"
    for f in sorted(dev.glob("*.xml")) if dev.is_dir() else ():
        if f.name != "blog.xml":
            counts.update(re.findall(r"[A-Za-z][a-z]{2,}", f.read_text(encoding="utf-8")))
    words = [w for w, _ in counts.most_common()]
    letters = "abcdefghijklmnopqrstuvwxyz"
    while len(words) < n:
        words.append("".join(rng.choice(letters) for _ in range(rng.randint(4, 9))).capitalize())
    return words


def headline(rng: random.Random, words: list[str]) -> str:
    # Like real headlines: half the words from a few hundred common ones (Ukraine, army,
    # says), half from a long tail of names and specifics.
    k = rng.randint(6, 12)
    return " ".join(words[rng.randrange(300)] if rng.random() < 0.5 else words[rng.randrange(len(words))]
                    for _ in range(k)).capitalize()


AGG = OUTLETS[-1]  # reaches us through an aggregator: opaque links, <source url> naming its site
KINDS = ("link", "link", "link", "headline", "headline", "headline", "mention", "mention", "in-text", "in-text",
         "edited", "edited", "aggregated", "aggregated", "none", "none", "none", "none", "none", "none")


def slug(title: str) -> str:
    return "-".join(title.lower().split())


def edit(rng: random.Random, title: str, words: list[str]) -> str:
    """The headline as first published: three of its words were different."""
    ws = title.split()
    for i in rng.sample(range(1, len(ws)), min(3, len(ws) - 1)):
        ws[i] = words[rng.randrange(len(words))].lower()
    return " ".join(ws)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90, help="days the articles are spread over")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-translations", action="store_true", help="match mentions on meaning only")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    words = vocab(rng, 20_000)
    cfg_text = "sources:\n  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}\n" + "".join(
        f"  - {{id: {o}, name: Outlet {i}, url: 'https://{o}.example/feed', role: outlet, aliases: [アウトレット{i}]}}\n"
        for i, o in enumerate(OUTLETS))
    with tempfile.TemporaryDirectory() as tmp:
        # A publication of 50 posts: the match stage matches every post all the same.
        config = parse_config(f"storage: {{url: 'sqlite:///{tmp}/s.sqlite3'}}\n"
                              "output: {max_entries: 50, include: blog}\n" + cfg_text)
        store = Store(config.db_path)
        store.sync_sources((s.id, s.url, s.role) for s in config.sources)
        t = time.perf_counter()
        per_outlet: dict[str, list[EntryData]] = {o: [] for o in OUTLETS}
        first_titles: dict[str, str] = {}
        for i in range(args.articles):
            o = OUTLETS[i % len(OUTLETS)]
            when = T0 + timedelta(seconds=rng.randrange(args.days * 86400))
            title = headline(rng, words)
            first = edit(rng, title, words) if i % 7 == 0 else title  # some were edited: the URL keeps the first
            link = f"https://www.{o}.example/world/{slug(first)[:80]}-{i}/"
            if o == AGG:
                first_titles[f"https://news.google.com/rss/articles/CBMi{i:08d}"] = link
                per_outlet[o].append(EntryData(key=f"{o}-{i}", link=f"https://news.google.com/rss/articles/CBMi{i:08d}",
                                               title=title + " - Outlet 19", published=when,
                                               source_site=f"https://www.{o}.example"))
                continue
            first_titles[link] = first
            per_outlet[o].append(EntryData(key=f"{o}-{i}", link=link, title=title, published=when,
                                           summary=headline(rng, words) + ". " + headline(rng, words)))
        now = T0 + timedelta(days=args.days + 1)
        for o, entries in per_outlet.items():
            store.record_success(o, "outlet", entries, now=now, next_fetch=now, status=200, etag=None, last_modified=None)
        arts = [e for o, es in per_outlet.items() if o != AGG for e in es]
        edited = [e for e in arts if first_titles[e.link or ""] != e.title]
        posts, gold, translated, kinds = [], {}, [], {}
        for j in range(args.posts):
            cited = rng.choice(arts)
            kind = KINDS[j % len(KINDS)]
            second = None
            oi = OUTLETS.index(cited.key.split("-")[0])
            if kind == "link":
                body = f'<p>リード。</p><p>参考:<a href="{cited.link}?utm_source=x">{cited.title}</a></p>'
            elif kind == "headline":
                body = f"<p>リード。</p><p>参考:{cited.title} - Outlet</p>"
            elif kind == "mention":
                assert cited.published is not None
                para = f"アウトレット{oi}は{cited.published.day}日、{cited.title}。{cited.summary}と報じた。"
                body = f"<p>リード。</p><p>{para}</p>"
                translated.append((para, f"Outlet {oi} reported on the {cited.published.day}th that {cited.title}; "
                                         f"{cited.summary}"))
            elif kind == "in-text":
                # A 参考 line, and an interview at another outlet, days older, named without a day.
                assert cited.published is not None
                others = [a for a in rng.sample(arts, 50) if a.key.split("-")[0] != cited.key.split("-")[0]
                          and a.published is not None
                          and timedelta(days=1) < cited.published - a.published < timedelta(days=6)]
                second = others[0] if others else None
                para = ""
                if second is not None:
                    si = OUTLETS.index(second.key.split("-")[0])
                    para = f"<p>関係者はアウトレット{si}のインタビューでも、{second.title}。{second.summary}と語っていた。</p>"
                    translated.append((para[3:-4], f"In an interview with Outlet {si} as well, an official said "
                                                   f"{second.title}; {second.summary}"))
                body = f'<p>リード。</p><p>参考:<a href="{cited.link}">{cited.title}</a></p>{para}'
            elif kind == "edited":
                cited = rng.choice(edited)
                oi = OUTLETS.index(cited.key.split("-")[0])
                para = f"アウトレット{oi}によると、{cited.summary}という。"
                body = f"<p>リード。</p><p>参考:{first_titles[cited.link or '']}</p><p>{para}</p>"
                translated.append((para, f"According to Outlet {oi}, {cited.title}; {cited.summary}"))
            elif kind == "aggregated":
                cited = rng.choice(per_outlet[AGG])
                body = (f'<p>リード。</p><p>参考:<a href="{first_titles[cited.link or ""]}">'
                        f'{cited.title.removesuffix(" - Outlet 19")}</a></p>')
            else:
                body = f"<p>論評のみ。</p><p>参考:{headline(rng, words)}</p><p>出典:Photo</p>"
                cited = None
            when = ((cited.published or T0) if cited else T0 + timedelta(days=rng.randrange(args.days))) + \
                timedelta(hours=rng.randint(2, 48))
            key = f"https://blog.example.jp/p{j}/"
            posts.append(EntryData(key=f"p{j}", link=key, title=f"投稿{j}", content=body, published=when, language="ja"))
            gold[key] = {a.link for a in (cited, second) if a is not None}
            kinds[key] = kind
        store.record_success("blog", "blog", posts, now=now, next_fetch=now, status=200, etag=None, last_modified=None)
        if not args.no_translations:
            for ja, en in translated:
                store.cache_translation(ja, "ja", "en", en, "bench", now)
        stored = time.perf_counter() - t
        print(f"stored {args.articles:,} articles and {args.posts:,} posts in {stored:.1f}s")

        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        cpu = time.process_time()
        embedder = Embedder(store)
        # A translator with no providers answers from the cache only.
        translator = Translator([], store, timeout=1.0)
        n, changed = match_stage(store, config, now=lambda: now, translator=translator, embedder=embedder)
        took = time.perf_counter() - t
        cpu = time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        matches = store.all_matches()
        links = {e.id: e.link for e in store.entries_by_ids({m.article_id for m in matches}).values()}
        post_links = {p.id: p.link for p in store.newest_entries(["blog"], args.posts)}
        got: dict[str, set[str | None]] = {}
        for m in matches:
            got.setdefault(post_links[m.post_id] or "", set()).add(links[m.article_id])
        for kind in dict.fromkeys(KINDS):
            posts_k = [p for p, k in kinds.items() if k == kind]
            ok = sum(1 for p in posts_k if got.get(p, set()) == gold[p])
            bad = sum(1 for p in posts_k if got.get(p, set()) - gold[p])
            print(f"  {kind:<10} {len(posts_k):>5} posts: {ok} as generated, {bad} linked to another article")
        right = sum(len(got.get(p, set()) & want) for p, want in gold.items())
        wrong = sum(len(got.get(p, set()) - want) for p, want in gold.items())
        print(f"matched {n:,} posts against {args.articles:,} articles in {took:.1f}s wall, {cpu:.1f}s CPU "
              f"({took / max(n, 1) * 1000:.1f} ms/post); embeddings computed: {embedder.computed:,}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"peak RSS {peak / 1024:.0f} MB (before matching {rss0 / 1024:.0f} MB)")
        print(f"articles linked as generated: {right}/{sum(len(v) for v in gold.values())}; "
              f"links not as generated: {wrong}")

        # The next cycle: 1% new articles arrive, dated over the last week. Only the posts
        # still looking whose window holds one of them are matched again.
        later = now + timedelta(minutes=30)
        fresh = [EntryData(key=f"new-{i}", link=f"https://www.{OUTLETS[0]}.example/new/{i}/",
                           title=headline(rng, words), published=now - timedelta(seconds=rng.randrange(7 * 86400)))
                 for i in range(args.articles // 100)]
        store.record_success(OUTLETS[0], "outlet", fresh, now=later, next_fetch=later, status=200, etag=None,
                             last_modified=None)
        t = time.perf_counter()
        cpu = time.process_time()
        n2, _ = match_stage(store, config, now=lambda: later, translator=translator, embedder=embedder)
        print(f"next cycle with {len(fresh):,} new articles: {n2:,} posts matched again in "
              f"{time.perf_counter() - t:.1f}s wall, {time.process_time() - cpu:.1f}s CPU")


if __name__ == "__main__":
    sys.exit(main())
