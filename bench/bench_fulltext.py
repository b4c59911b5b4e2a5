"""Full text from post pages: the extraction libraries compared, and the dev set read
from an excerpt-only feed plus pages against the full feed.

    python bench/bench_fulltext.py [--dev DIR]

Part 1 builds a WordPress page (header, navigation, entry-content, share buttons, a
related-posts widget, trap comments that cite other articles of the subscribed outlets,
a recent-comments sidebar) around each dev-set post, and asks each extractor for the
post: a page is right when the citations found in what it returns equal those of the
post's content:encoded, no line of the chrome is in it, and no body paragraph is lost.
"heavy" adds a 30-comment thread. The hand-written cases are the test suite's (a bare-URL
参考 line, a short one, a list under a bare 参考 heading, widgets inside entry-content).
Part 2 runs the real cycle on loopback: full feed; excerpt feed without pages
(full_text: never); excerpt feed with pages, three cycles at the default bound of 20
pages per source and cycle. readability-lxml is needed for part 1
(``pip install readability-lxml``, in the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from wordpress import Page, dev_pages, dev_run  # noqa: E402

from aggregator.citing.extract import Outlet, Outlets, extract  # noqa: E402
from aggregator.running.evaluation import read_sources  # noqa: E402
from aggregator.sources.pages import extract_article  # noqa: E402

CHROME = ["名無し", "シェアする", "コメントを残す", "最近のコメント", "前の投稿"]


def extractors() -> dict[str, Callable[[str, str], str]]:
    import trafilatura
    from readability import Document  # type: ignore[import-untyped]

    def plain(h: str, u: str) -> str:
        return trafilatura.extract(h, url=u, output_format="html", include_links=True, include_comments=False,
                                   include_images=False, include_tables=True) or ""

    return {"aggregator (trafilatura + citation lines)": extract_article, "trafilatura alone": plain,
            "readability-lxml": lambda h, u: str(Document(h, url=u).summary(html_partial=True))}


def key(html: str, outlets: Outlets) -> list[tuple[str, str, str, int]]:
    t = extract(html, own_hosts={"blog.example.jp", "127.0.0.1"}, outlets=outlets)
    return sorted((c.kind, c.href or c.text, c.outlet or "", c.day or 0) for c in t.citations)


def judge(pages: list[Page], fn: Callable[[str, str], str], outlets: Outlets) -> tuple[int, int, float]:
    right = 0
    spent = 0.0
    for page in pages:
        html = page.html()
        t0 = time.process_time()  # CPU time: the machine is shared, wall time swings with its load
        try:
            got = fn(html, page.url)
        except Exception:
            got = ""
        spent += time.process_time() - t0
        chrome = CHROME + [t.headline for t in page.traps] + [r.excerpt[:30] for r in page.related]
        ok = key(got, outlets) == key(page.content, outlets) and not any(c in got for c in chrome)
        ok = ok and all(b in extract(got).body for b in extract(page.content).body)
        right += ok
    return right, len(pages) - right, 1000 * spent / len(pages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=Path, default=ROOT.parent / "shared" / "matchbench" / "dev")
    args = ap.parse_args()
    sources = read_sources(args.dev)
    outlets = Outlets(Outlet(str(s["id"]), tuple(dict.fromkeys([str(s["name"]), *map(str, s.get("aliases") or [])])))
                      for s in sources if s.get("role") == "outlet")
    pages = [p for _, p in dev_pages(args.dev, lambda link: link).values()]
    heavy = [Page(p.url, p.title, p.content, p.date, p.category, p.site, p.traps, p.related,
                  extra_comments=tuple(q.content for q in pages[i + 1:i + 31])) for i, p in enumerate(pages)]
    from test_fulltext import CASES, wp

    hand = [Page("https://blog.example.jp/ukraine-war/test/", "t", c) for c in CASES.values()]
    hand_pages = {name: wp(c) for name, c in CASES.items()}
    print(f"1. extraction: {len(pages)} dev-set posts in WordPress pages (right / wrong, CPU ms per page)\n")
    print(f"{'extractor':<44} {'dev pages':>18} {'heavy comments':>18} {'hand-written':>14}")
    for name, fn in extractors().items():
        a = judge(pages, fn, outlets)
        b = judge(heavy, fn, outlets)
        h = sum(key(fn(hand_pages[n], p.url), outlets) == key(CASES[n], outlets) for n, p in zip(CASES, hand))
        print(f"{name:<44} {a[0]:>3} / {a[1]:<3}{a[2]:>6.1f} ms {b[0]:>5} / {b[1]:<3}{b[2]:>6.1f} ms"
              f" {h:>6} / {len(CASES) - h:<3}")
    print("\n2. matching on the dev set through the real cycle (loopback)\n")
    print(f"{'run':<44} {'cycle':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}"
          f" {'page requests':>14} {'feed requests':>14}")
    runs = [("full feed", dict(excerpt=False, cycles=1)),
            ("excerpt feed, no pages (full_text: never)", dict(excerpt=True, cycles=1, full_text="never")),
            ("excerpt feed + pages (auto, 20 per cycle)", dict(excerpt=True, cycles=3))]
    for name, kw in runs:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.monotonic()
            r = dev_run(args.dev, Path(d), **kw)  # type: ignore[arg-type]
            for i, res in enumerate(r.results):
                o = res.overall
                reqs = ", ".join(f"{v} {k}" for k, v in sorted(r.page_requests[i].items())) or "0"
                print(f"{name if i == 0 else '':<44} {i + 1:>5} {o.tp:>4} {o.fp:>4} {o.fn:>4} {o.precision:>9.3f}"
                      f" {o.recall:>7.3f} {reqs:>14} {r.feed_requests[i]:>14}")
            print(f"{'':<44} ({time.monotonic() - t0:.1f} s)")


if __name__ == "__main__":
    main()
