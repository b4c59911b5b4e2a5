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
from aggregator.running.cycle import match_stage
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
        # Every post in the publication, so that the match stage matches them all.
        config = parse_config(f"storage: {{url: 'sqlite:///{tmp}/s.sqlite3'}}\n"
                              f"output: {{max_entries: {args.posts}, include: blog}}\n" + cfg_text)
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
        posts, gold, translated, kinds = [], {}, [], {}
        for j in range(args.posts):
            cited = rng.choice(arts)
            kind = j % 10
            if kind < 3:
                body = f'<p>リード。</p><p>参考:<a href="{cited.link}?utm_source=x">{cited.title}</a></p>'
            elif kind < 6:
                body = f"<p>リード。</p><p>参考:{cited.title} - Outlet</p>"
            elif kind < 7:
                o = cited.key.split("-")[0]
                para = f"アウトレット{OUTLETS.index(o)}は{cited.published.day}日、{cited.title}。{cited.summary}と報じた。"
                body = f"<p>リード。</p><p>{para}</p>"
                translated.append((para, f"Outlet {OUTLETS.index(o)} reported on the {cited.published.day}th that {cited.title}; {cited.summary}"))
            else:
                body = f"<p>論評のみ。</p><p>参考:{headline(rng, words)}</p><p>出典:Photo</p>"
                cited = None
            when = (cited.published if cited else T0 + timedelta(days=rng.randrange(args.days))) + timedelta(hours=rng.randint(2, 48))
            posts.append(EntryData(key=f"p{j}", link=f"https://blog.example.jp/p{j}/", title=f"投稿{j}", content=body,
                                   published=when, language="ja"))
            gold[f"https://blog.example.jp/p{j}/"] = cited.link if cited else None
            kinds[f"https://blog.example.jp/p{j}/"] = ("link", "link", "link", "headline", "headline", "headline",
                                                        "mention", "none", "none", "none")[kind]
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
        got = {post_links[m.post_id]: links[m.article_id] for m in matches}
        for kind in ("link", "headline", "mention", "none"):
            posts_k = [p for p, k in kinds.items() if k == kind]
            ok = sum(1 for p in posts_k if got.get(p) == gold[p])
            bad = sum(1 for p in posts_k if p in got and got[p] != gold[p])
            print(f"  {kind:<9} {len(posts_k):>5} posts: {ok} as generated, {bad} linked to another article")
        right = sum(1 for p, want in gold.items() if want and got.get(p) == want)
        wrong = sum(1 for p, l in got.items() if gold.get(p) != l)
        print(f"matched {n:,} posts against {args.articles:,} articles in {took:.1f}s wall, {cpu:.1f}s CPU "
              f"({took / max(n, 1) * 1000:.1f} ms/post); embeddings computed: {embedder.computed:,}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"peak RSS {peak / 1024:.0f} MB (before matching {rss0 / 1024:.0f} MB)")
        print(f"posts linked as generated: {right}/{sum(1 for v in gold.values() if v)}; "
              f"links not as generated: {wrong}")
        store.close()


if __name__ == "__main__":
    sys.exit(main())
