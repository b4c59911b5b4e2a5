"""Matching at scale: N blog posts against M stored outlet articles, through the real
store and the real match stage (aggregator.pipeline.match_stage).

    python bench/bench_matching.py --posts 1000 --articles 100000
    python bench/bench_matching.py --posts 2000 --articles 200000

Prints the time to store the data, the time and peak memory of matching, and the
share of posts linked exactly as generated (a sanity check, not the quality bar:
that is `aggregator eval-matching`). Mentions are matched on meaning only here (no
translator runs offline at this scale), so they exercise the embedding cost.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from aggregator.config import parse_config
from aggregator.embedding import Embedder
from aggregator.models import EntryData
from aggregator.pipeline import match_stage
from aggregator.storage import Store

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
OUTLETS = [f"outlet{i}" for i in range(20)]


def vocab(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(n)]


def headline(rng: random.Random, words: list[str]) -> str:
    # Zipf-like: common words often, rare words sometimes, as in real headlines.
    k = rng.randint(6, 12)
    return " ".join(words[min(int(rng.paretovariate(1.2)) * 7 + rng.randint(0, 6), len(words) - 1)]
                    for _ in range(k)).capitalize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--articles", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=90, help="days the articles are spread over")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    words = vocab(rng, 20_000)
    cfg_text = "sources:\n  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}\n" + "".join(
        f"  - {{id: {o}, name: Outlet {i}, url: 'https://{o}.example/feed', role: outlet, aliases: [アウトレット{i}]}}\n"
        for i, o in enumerate(OUTLETS))
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(f"storage: {{url: 'sqlite:///{tmp}/s.sqlite3'}}\n" + cfg_text)
        store = Store(config.db_path)
        store.sync_sources((s.id, s.url, s.role) for s in config.sources)
        t = time.perf_counter()
        per_outlet: dict[str, list[EntryData]] = {o: [] for o in OUTLETS}
        for i in range(args.articles):
            o = OUTLETS[i % len(OUTLETS)]
            when = T0 + timedelta(seconds=rng.randrange(args.days * 86400))
            title = headline(rng, words)
            per_outlet[o].append(EntryData(key=f"{o}-{i}", link=f"https://{o}.example/{i}/{title[:20].replace(' ', '-')}",
                                           title=title, summary=headline(rng, words) + ". " + headline(rng, words),
                                           published=when))
        now = T0 + timedelta(days=args.days + 1)
        for o, entries in per_outlet.items():
            store.record_success(o, "outlet", entries, now=now, next_fetch=now, status=200, etag=None, last_modified=None)
        arts = [e for es in per_outlet.values() for e in es]
        posts, gold = [], {}
        for j in range(args.posts):
            cited = rng.choice(arts)
            kind = j % 10
            if kind < 3:
                body = f'<p>リード。</p><p>参考:<a href="{cited.link}?utm_source=x">{cited.title}</a></p>'
            elif kind < 6:
                body = f"<p>リード。</p><p>参考:{cited.title} - Outlet</p>"
            elif kind < 7:
                o = cited.key.split("-")[0]
                body = f"<p>リード。</p><p>アウトレット{OUTLETS.index(o)}は{cited.published.day}日、{cited.summary}と報じた。</p>"
            else:
                body = f"<p>論評のみ。</p><p>参考:{headline(rng, words)}</p><p>出典:Photo</p>"
                cited = None
            when = (cited.published if cited else T0 + timedelta(days=rng.randrange(args.days))) + timedelta(hours=rng.randint(2, 48))
            posts.append(EntryData(key=f"p{j}", link=f"https://blog.example.jp/p{j}/", title=f"投稿{j}", content=body,
                                   published=when, language="ja"))
            gold[f"https://blog.example.jp/p{j}/"] = cited.link if cited and kind < 6 else None
        store.record_success("blog", "blog", posts, now=now, next_fetch=now, status=200, etag=None, last_modified=None)
        stored = time.perf_counter() - t
        print(f"stored {args.articles:,} articles and {args.posts:,} posts in {stored:.1f}s")

        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        embedder = Embedder(store)
        n, changed = match_stage(store, config, now=lambda: now, translator=None, embedder=embedder)
        took = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        matches = store.all_matches()
        links = {e.id: e.link for e in store.entries_by_ids({m.article_id for m in matches}).values()}
        post_links = {p.id: p.link for p in store.newest_entries(["blog"], args.posts)}
        got = {post_links[m.post_id]: links[m.article_id] for m in matches}
        right = sum(1 for p, want in gold.items() if want and got.get(p) == want)
        wrong = sum(1 for p, l in got.items() if gold.get(p) != l)
        print(f"matched {n:,} posts against {args.articles:,} articles in {took:.1f}s "
              f"({took / max(n, 1) * 1000:.1f} ms/post); embeddings computed: {embedder.computed:,}")
        print(f"peak RSS {peak / 1024:.0f} MB (before matching {rss0 / 1024:.0f} MB)")
        print(f"link and headline posts linked as generated: {right}/{sum(1 for v in gold.values() if v)}; "
              f"links not as generated: {wrong}")
        store.close()


if __name__ == "__main__":
    sys.exit(main())
