"""aggregator and reader (lemon24's PyPI ``reader``) on the same loopback feeds.

    python bench/bench_cycle.py                      # 1,000 feeds x 50 entries (takes minutes)
    python bench/bench_cycle.py --feeds 100          # a quick look
    python bench/bench_cycle.py --repeat 3           # three runs: medians, and every run's figures
    python bench/bench_cycle.py --scale 250,500,1000 --tools aggregator   # memory vs. feed count

Generates N feeds in the shapes of real outlets (bench/corpus.py: RSS and Atom, from
headline-only wires to full-content WordPress feeds; 10 % of them Japanese blogs whose
posts cite the others on 参考: lines), serves them from a separate process over
loopback (ETag / Last-Modified / 304, gzip), and runs three cycles per tool, each in
a fresh process of its own:

  cold   empty store, every entry new
  warm   nothing changed: every feed answers 304 Not Modified
  churn  10 % of the feeds changed (5 new entries each, 1 edited)

aggregator runs its real CLI path (``aggregator run --once --all``: fetch, parse,
store, match the blog posts, translate what the feed will show through a loopback
LibreTranslate-protocol server that echoes, publish feed.atom/rss/json + index.html);
reader runs ``update_feeds(workers=N, scheduled=False)`` (fetch, parse, store). Both
use N parallel fetches (``--workers``, default 8). The feeds are spread over 32
loopback addresses (127.0.0.2, ...), as real feeds live on many hosts; aggregator
keeps its default of at most two fetches per host.

Entries/s is the subscription's entry count (feeds x entries) over the cycle's wall
time, so the ratio column is reader's wall time over aggregator's. CPU is user +
system of the tool's process (and its children). The load average of the machine is
printed with the table: figures taken on a busy machine are slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

SHARED = Path(os.environ.get("AGGREGATOR_SHARED", ROOT.parent / "shared"))
CYCLES = ("cold", "warm", "churn")


@dataclass
class Result:
    tool: str
    cycle: str
    wall: float
    cpu: float
    rss_mb: float
    stored: int
    failed: int
    import_s: float
    extra: dict[str, object]


def write_corpus(root: Path, n_feeds: int, entries: int, seed: int) -> dict[str, object]:
    """Generate the feeds (and the churned versions) into ``root``; returns the manifest."""
    now = datetime.now(UTC)
    shapes = corpus.load_shapes(SHARED)
    feeds = corpus.generate(shapes, n_feeds, entries, seed=seed, now=now)
    changed = {f.id: f for f in corpus.churn(shapes, feeds, seed=seed + 1, now=now)}
    (root / "feeds").mkdir()
    rows = []
    total = 0
    for f in feeds:
        data = corpus.render(f, now)
        total += len(data)
        (root / "feeds" / f.path.lstrip("/")).write_bytes(data)
        row = {"id": f.id, "name": f.name, "role": f.role, "language": f.language, "path": f.path,
               "file": f"feeds{f.path}", "entries": len(f.entries),
               "type": "application/atom+xml; charset=utf-8" if f.fmt == "atom" else "application/rss+xml; charset=utf-8"}
        if f.id in changed:
            row["churn_file"] = f"feeds{f.path}.churn"
            (root / row["churn_file"]).write_bytes(corpus.render(changed[f.id], now))
        rows.append(row)
    manifest = {"feeds": rows, "bytes": total, "n_feeds": n_feeds, "entries": entries}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def aggregator_config(path: Path, manifest: dict[str, object], urls: dict[str, str], libre: str | None,
                      workers: int, store_url: str | None = None) -> None:
    lines = [f"storage: {{url: '{store_url or 'sqlite:///' + str(path.parent / 'aggregator.sqlite3')}'}}",
             f"output: {{dir: '{path.parent / 'output'}'}}",
             "translation:", "  target: en", "  timeout: 10s"]
    lines.append(f"  providers: [{{provider: libre, url: '{libre}'}}]" if libre else "  providers: []")
    lines += [f"fetch: {{concurrency: {workers}, allow_private_networks: true}}", "sources:"]
    for f in manifest["feeds"]:  # type: ignore[index]
        lines.append(f"  - {{id: {f['id']}, name: '{f['name']}', url: '{urls[f['id']]}', role: {f['role']},"
                     f" language: {f['language']}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_worker(args: list[str], tool: str, cycle: str, profile: Path | None = None) -> Result:
    extra = {"BENCH_PROFILE": str(profile / f"{tool}-{cycle}.txt")} if profile else {}
    proc = subprocess.run([sys.executable, str(HERE / "cycle_worker.py"), *args], capture_output=True, text=True,
                          env=_env(**extra))
    if proc.returncode != 0:
        raise SystemExit(f"{tool} {cycle} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    extra = {k: v for k, v in out.items() if k not in ("wall", "cpu", "rss_kb", "stored", "failed", "import_s")}
    return Result(tool, cycle, out["wall"], out["cpu"], out["rss_kb"] / 1024, out["stored"], out["failed"],
                  out["import_s"], extra)


class Servers:
    def __init__(self, root: Path):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "serve_feeds.py"), str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=_env())
        self.urls = self._ask(None)

    def _ask(self, cmd: str | None) -> dict[str, object]:
        assert self.proc.stdin and self.proc.stdout
        if cmd:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the feed server died")
        return json.loads(line)

    def churn(self) -> None:
        self._ask("churn")

    def reset(self) -> None:
        self._ask("reset")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(n_feeds: int, entries: int, tools: list[str], workers: int, seed: int, translation: bool,
        cycles: tuple[str, ...] = CYCLES, keep: Path | None = None, profile: Path | None = None,
        store: str = "sqlite", repeat: int = 1) -> tuple[list[Result], dict[str, object]]:
    tmp = tempfile.TemporaryDirectory(prefix="bench-cycle-") if keep is None else None
    root = Path(tmp.name) if tmp else keep
    assert root is not None
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    manifest = write_corpus(root, n_feeds, entries, seed)
    manifest["generate_s"] = time.perf_counter() - t
    servers = Servers(root)
    results: list[Result] = []
    cluster = None
    try:
        store_url = None
        if store == "postgresql":  # aggregator's store on a throwaway PostgreSQL cluster (tests/pgcluster.py)
            sys.path.insert(0, str(ROOT / "tests"))
            from pgcluster import Cluster

            cluster = Cluster().start()
            store_url = cluster.create_database("bench")
            print(f"  PostgreSQL cluster started in {cluster.started_in:.2f}s", file=sys.stderr, flush=True)
        feed_urls: dict[str, str] = servers.urls["feeds"]  # type: ignore[assignment]
        libre = str(servers.urls["libre"])
        for rep in range(repeat):
            # Each run of the three cycles from empty stores of its own, the feeds as at first.
            suffix = f"-{rep + 1}" if rep else ""
            if rep:
                servers.reset()
                if cluster is not None:
                    store_url = cluster.create_database(f"bench{rep + 1}")
            (root / f"agg{suffix}").mkdir()
            cfg = root / f"agg{suffix}" / "aggregator.yaml"
            aggregator_config(cfg, manifest, feed_urls, libre if translation else None, workers, store_url)
            (root / f"reader{suffix}").mkdir()
            urls = root / f"reader{suffix}" / "urls.txt"
            urls.write_text("\n".join(feed_urls[f["id"]] for f in manifest["feeds"]) + "\n")  # type: ignore[index]
            commands = {"aggregator": ["aggregator", str(cfg)],
                        "reader": ["reader", str(root / f"reader{suffix}" / "reader.sqlite"), str(urls), str(workers)]}
            for cycle in cycles:
                if cycle == "churn":
                    servers.churn()
                for tool in tools:
                    r = run_worker(commands[tool], tool, cycle, profile)
                    r.extra["load"] = load_average()
                    r.extra["run"] = rep + 1
                    results.append(r)
                    print(f"  {tool:<10} {cycle:<5} {r.wall:7.1f}s wall {r.cpu:7.1f}s cpu {r.rss_mb:6.0f} MB "
                          f"{r.stored:>7,} entries stored  (load {r.extra['load']}; run {rep + 1} of {repeat})",
                          file=sys.stderr, flush=True)
    finally:
        servers.close()
        if cluster is not None:
            cluster.stop()
        if tmp:
            tmp.cleanup()
    return results, manifest


def _median(results: list[Result]) -> Result:
    """One result per (tool, cycle): the run of median wall time (the only one with one run)."""
    ordered = sorted(results, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def medians(results: list[Result]) -> dict[tuple[str, str], Result]:
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.tool, r.cycle), []).append(r)
    return {k: _median(v) for k, v in groups.items()}


def spread(results: list[Result]) -> str:
    """With several runs: each (tool, cycle)'s wall times, and each run's ratio (reader's
    wall over aggregator's in the same run, the two side by side)."""
    runs = sorted({int(r.extra.get("run", 1)) for r in results})  # type: ignore[call-overload]
    if len(runs) < 2:
        return ""
    at = {(r.tool, r.cycle, r.extra.get("run", 1)): r for r in results}
    lines = [f"{len(runs)} runs: the table shows each (tool, cycle)'s run of median wall time (of an even number,"
             " the faster middle one); all runs:", "",
             "| cycle | tool | wall s per run | median |", "|---|---|---|---:|"]
    for cycle in CYCLES:
        for tool in ("aggregator", "reader"):
            walls = [at[(tool, cycle, n)].wall for n in runs if (tool, cycle, n) in at]
            if walls:
                lines.append(f"| {cycle} | {tool} | {' / '.join(f'{w:.1f}' for w in walls)} | "
                             f"{sorted(walls)[(len(walls) - 1) // 2]:.1f} |")
        ratios = [at[("reader", cycle, n)].wall / at[("aggregator", cycle, n)].wall for n in runs
                  if ("reader", cycle, n) in at and ("aggregator", cycle, n) in at]
        if ratios:
            lines.append(f"| {cycle} | throughput per run | {' / '.join(f'{x:.2f}x' for x in ratios)} | "
                         f"{sorted(ratios)[(len(ratios) - 1) // 2]:.2f}x |")
    return "\n".join(lines)


def table(results: list[Result], manifest: dict[str, object]) -> str:
    total = int(manifest["n_feeds"]) * int(manifest["entries"])  # type: ignore[call-overload]
    by = medians(results)
    rows = ["| cycle | tool | wall s | CPU s | peak RSS MB | entries/s | stored | failed | load avg (1/5/15 min) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    ratios = []
    for cycle in CYCLES:
        for tool in ("aggregator", "reader"):
            r = by.get((tool, cycle))
            if r:
                rows.append(f"| {cycle} | {tool} | {r.wall:.1f} | {r.cpu:.1f} | {r.rss_mb:.0f} | "
                            f"{total / r.wall:,.0f} | {r.stored:,} | {r.failed} | {r.extra.get('load', '')} |")
        a, b = by.get(("aggregator", cycle)), by.get(("reader", cycle))
        if a and b:
            ratios.append(f"| {cycle} | {b.wall / a.wall:.2f}x | {b.cpu / a.cpu:.2f}x | {a.rss_mb / b.rss_mb:.2f} |")
    out = "\n".join(rows)
    if ratios:
        out += ("\n\naggregator / reader (throughput = reader's wall time over aggregator's; CPU: reader's over"
                " aggregator's; RSS: aggregator's over reader's)\n\n| cycle | throughput | CPU efficiency | peak RSS |\n"
                "|---|---:|---:|---:|\n" + "\n".join(ratios))
    return out


def targets(results: list[Result]) -> str:
    by = medians(results)
    lines = []
    for cycle, goal in (("cold", 4), ("warm", 3)):  # issue 18's targets
        a, b = by.get(("aggregator", cycle)), by.get(("reader", cycle))
        if a and b:
            ratio = b.wall / a.wall
            lines.append(f"target: {cycle} cycle at least {goal}x reader's throughput: {ratio:.2f}x "
                         f"({'met' if ratio >= goal else 'NOT met'})")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000, help="number of feeds (default 1000)")
    ap.add_argument("--entries", type=int, default=50, help="entries per feed (default 50)")
    ap.add_argument("--workers", type=int, default=8, help="parallel fetches for both tools (default 8)")
    ap.add_argument("--tools", default="aggregator,reader", help="comma-separated: aggregator,reader")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-translation", action="store_true",
                    help="configure aggregator with no translation provider (entries stay pending)")
    ap.add_argument("--scale", help="comma-separated feed counts: cold cycles only, to see how memory grows")
    ap.add_argument("--keep", type=Path, help="work in this (new) folder and keep it: feeds, stores, output")
    ap.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                    help="aggregator's store: a SQLite file (default) or a throwaway PostgreSQL cluster")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run the three cycles N times (fresh stores each time; the table shows medians and every "
                         "run's figures): a single run's figures move by a tenth on a quiet machine")
    ap.add_argument("--profile", type=Path, help="write a pyinstrument report of each cycle into this folder "
                    "(slows the cycles down: not for the table)")
    args = ap.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    tools = [t for t in args.tools.split(",") if t]
    if "reader" in tools:
        try:
            import reader  # noqa: F401
        except ImportError:
            raise SystemExit("reader is not installed: pip install -U pip && pip install -e '.[bench]'") from None
    print(f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Python {sys.version.split()[0]}; store {args.store}; "
          f"load average {load_average()}", flush=True)
    if args.scale:
        print("| feeds | tool | wall s | CPU s | peak RSS MB | of which main process MB | entries/s | load avg |\n"
              "|---:|---|---:|---:|---:|---:|---:|---|")
        for n in (int(x) for x in args.scale.split(",")):
            results, manifest = run(n, args.entries, tools, args.workers, args.seed, not args.no_translation,
                                    cycles=("cold",), store=args.store)
            for r in results:
                main_mb = int(r.extra.get("rss_main_kb", r.rss_mb * 1024)) / 1024  # type: ignore[call-overload]
                print(f"| {n} | {r.tool} | {r.wall:.1f} | {r.cpu:.1f} | {r.rss_mb:.0f} | {main_mb:.0f} | "
                      f"{n * args.entries / r.wall:,.0f} | {r.extra['load']} |", flush=True)
        return
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    results, manifest = run(args.feeds, args.entries, tools, args.workers, args.seed, not args.no_translation,
                            keep=args.keep, profile=args.profile, store=args.store, repeat=args.repeat)
    if args.profile:
        print(f"profiles in {args.profile}/TOOL-CYCLE.txt")
    print(f"\n{args.feeds:,} feeds x {args.entries} entries ({int(manifest['bytes']) / 1e6:.0f} MB of XML, "  # type: ignore[call-overload]
          f"{sum(1 for f in manifest['feeds'] if f['role'] == 'blog')} Japanese blogs), "  # type: ignore[union-attr,index]
          f"{args.workers} workers, translation: "
          f"{'none (no provider)' if args.no_translation else 'loopback LibreTranslate (echo)'}\n")
    print(table(results, manifest))
    if more := spread(results):
        print("\n" + more)
    print()
    for (tool, _), r in medians(results).items():
        if tool == "aggregator" and "posts_matched" in r.extra:
            print(f"aggregator {r.cycle}: {r.extra['posts_matched']:,} posts with matches in the store")
    print("imports before the clock starts: " + ", ".join(
        f"{t} {min(r.import_s for r in results if r.tool == t):.2f}s" for t in tools))
    print(targets(results))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
