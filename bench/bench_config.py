"""How long a config of N sources takes to read: the fast path (ruamel's C loader, used
for every valid config) against the round-trip reading (used for errors, with lines).

    python bench/bench_config.py            # 1,000 sources, best and median of 7
    python bench/bench_config.py --sources 5000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from aggregator.config import _parse_fast, _parse_with_lines, load_config


def write(path: Path, n: int) -> None:
    lines = ["storage: {url: 'sqlite:///data/a.sqlite3'}", "translation:", "  target: en", "  providers: []",
             "fetch: {concurrency: 8, allow_private_networks: true}", "sources:"]
    for i in range(n):
        role, lang = ("blog", "ja") if i % 10 == 0 else ("outlet", "en")
        lines.append(f"  - {{id: feed{i}, name: 'Feed {i}', url: 'http://127.0.0.{2 + i % 32}:8000/f{i}.xml',"
                     f" role: {role}, language: {lang}}}  # feed {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed(f: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "aggregator.yaml"
        write(p, args.sources)
        text = p.read_text(encoding="utf-8")
        env = dict(os.environ)
        assert _parse_fast(text, p, env) is not None
        rows = [("load_config (fast path)", timed(lambda: load_config(p), args.repeat)),
                ("round-trip reading (errors)", timed(lambda: _parse_with_lines(text, str(p), p, env), args.repeat))]
    print(f"{args.sources:,} sources; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    for name, times in rows:
        print(f"  {name:<30} best {min(times):.3f} s  median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
