"""The benchmark of docs/performance.md keeps working: bench/bench_cycle.py, as the
README runs it, at a tiny size and with aggregator only (reader is the 'bench' extra)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_cycle_benchmark_runs_cold_warm_and_churn_and_prints_its_table(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_cycle.py"), "--feeds", "10", "--entries", "6",
                          "--tools", "aggregator", "--keep", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {m.group(1): m.groups() for m in re.finditer(
        r"^\| (cold|warm|churn) \| aggregator \| [\d.]+ \| [\d.]+ \| \d+ \| [\d,]+ \| ([\d,]+) \| (\d+) \|", out.stdout, re.M)}
    assert set(rows) == {"cold", "warm", "churn"}, out.stdout
    # 10 feeds x 6 entries; the churned feed (10 %) brings 5 new entries (its 5 oldest leave
    # the feed, not the store); no source fails.
    assert [(rows[c][1], rows[c][2]) for c in ("cold", "warm", "churn")] == [("60", "0"), ("60", "0"), ("65", "0")]
    posts = re.search(r"aggregator cold: (\d+) posts with matches", out.stdout)
    assert posts and int(posts.group(1)) >= 3  # the blog's posts cite the outlets' articles, and are linked
    assert "load average" in out.stdout and "target: cold cycle" not in out.stdout  # no reader, no ratio
    feeds = list((tmp_path / "run" / "feeds").glob("*"))
    assert any(f.suffix == ".atom" for f in feeds) and any(f.suffix == ".xml" for f in feeds)
    assert (tmp_path / "run" / "agg" / "output" / "feed.atom").is_file()


def test_repeated_runs_start_from_empty_stores_and_the_first_feeds(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_cycle.py"), "--feeds", "10", "--entries", "4",
                          "--tools", "aggregator", "--repeat", "2", "--keep", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    # Both runs stored what one stores: the second's cold cycle saw the feeds' first versions.
    assert [m for m in re.findall(r"(\d+) entries stored", out.stderr)] == ["40", "40", "45"] * 2, out.stderr
    per_run = re.findall(r"^\| (cold|warm|churn) \| aggregator \| ([\d.]+) / ([\d.]+) \| [\d.]+ \|$", out.stdout, re.M)
    assert [c for c, *_ in per_run] == ["cold", "warm", "churn"], out.stdout
    assert (tmp_path / "run" / "agg-2" / "output" / "feed.atom").is_file()


def test_the_fetch_benchmark_times_every_client_on_304s() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_fetch.py"), "--requests", "40", "--hosts", "4",
                          "--repeat", "1", "--threads", "2"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = dict(re.findall(r"^(\S+(?: \S+)?)\s+([\d.]+)\s+[\d.]+\s+[\d.]+$", out.stdout, re.M))
    assert set(rows) == {"fetch()", "httpx.Client", "httpcore pool", "httpcore/origin", "http.client"}, out.stdout
    assert all(float(v) > 0 for v in rows.values())
