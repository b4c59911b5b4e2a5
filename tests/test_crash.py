"""Nothing lost: ``kill -9`` of the real CLI at seeded random moments of a cycle.

The feeds (matchbench dev, over loopback) grow between runs, so that every run has new
entries to store, match, translate and publish; two of them answer slowly, so that kills
land in the middle of fetching. A first run completes, so that there is an output to keep
whole; then each run is killed, in turn at a random time or just after a stage begins. After every kill: the
SQLite file opens and passes ``PRAGMA integrity_check``, it holds every entry it held
before, no (source, key) twice, and every output file present parses completely. At the
end one clean run completes with the full expected set.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import feedparser
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from lxml import etree
from test_pipeline_e2e import write_config

from aggregator.sources.parse import parse_feed

SEED = 20250301
KILLS = 10
SLOW = ("reuters", "twz")  # ~1 s to answer: kills land while they are being fetched
FIRST_SHARE = 0.5  # the first version of each feed holds its oldest half; later ones grow
# When each run is killed, in turn: a random time after the start, or a random fraction
# of a second after the log line (at -v) that starts a stage (the later stages are short:
# time alone would rarely hit them, and on a slow machine never).
MOMENTS = (None, "new entries", "matching posts", "translating what", "publishing")


def versions(data: bytes, steps: int) -> list[bytes]:
    """The feed as it grew: version i holds its oldest items, more each time; the last is whole."""
    out = []
    for i in range(steps):
        root = etree.fromstring(data)
        atom = root.tag == "{http://www.w3.org/2005/Atom}feed"
        parent = root if atom else root.find("channel")
        items = parent.findall("{http://www.w3.org/2005/Atom}entry" if atom else "item")
        keep = math.ceil(len(items) * (FIRST_SHARE + (1 - FIRST_SHARE) * i / (steps - 1)))
        for item in items[:len(items) - keep]:  # newest first: the newest have not appeared yet
            parent.remove(item)
        out.append(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return out


def stored_keys(db: Path) -> set[tuple[str, str]]:
    if not db.exists():
        return set()
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dups = con.execute("SELECT source_id, key, COUNT(*) FROM entries GROUP BY source_id, key"
                           " HAVING COUNT(*) > 1").fetchall()
        assert dups == [], dups
        return set(con.execute("SELECT source_id, key FROM entries"))
    except sqlite3.OperationalError as e:  # killed before the schema was made: an empty store
        assert "no such table" in str(e), e
        return set()
    finally:
        con.close()


def check_output(out: Path) -> int:
    """Every output file present parses completely; returns the number of entries in feed.json."""
    for name in ("feed.atom", "feed.rss"):
        if (out / name).exists():
            d = feedparser.parse((out / name).read_bytes())
            assert not d.bozo, (name, d.bozo_exception)
    items = -1
    if (out / "feed.json").exists():
        items = len(json.loads((out / "feed.json").read_text(encoding="utf-8"))["items"])
    if (out / "index.html").exists():
        assert (out / "index.html").read_bytes().rstrip().endswith(b"</html>")
    return items


def test_kill_9_at_any_moment_loses_nothing_and_the_next_run_finishes_the_work(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    feed_files = sorted((DEV / "feeds").iterdir())
    grown = {f.stem: versions(f.read_bytes(), KILLS + 1) for f in feed_files}
    db = tmp_path / "data" / "store.sqlite3"
    out = tmp_path / "output"
    log = []
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl", unknown="echo") as libre:
        for name in SLOW:
            feeds.fault(f"/{name}.xml", "slow_headers", interval=0.15, count=6)
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, libre.url)
        cmd = aggregator_cmd("run", "--once", "--all", "-v", "--config", str(cfg))

        # a first, complete run: from here on there is a previous output to keep whole
        for stem, docs in grown.items():
            feeds.add(f"/{stem}.xml", docs[0])
        t0 = time.monotonic()
        first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        horizon = (time.monotonic() - t0) * 1.2  # then that of the last run that finished before its kill
        before = stored_keys(db)
        assert check_output(out) == len(before)

        for i in range(KILLS):
            for stem, docs in grown.items():
                feeds.add(f"/{stem}.xml", docs[i + 1])
            after_line = MOMENTS[i % len(MOMENTS)]
            delay = rng.uniform(0.0, 0.3) if after_line else rng.uniform(0.8, max(horizon, 3.0))
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines: list[str] = []
            seen = threading.Event()

            def read(stream: IO[str] = proc.stderr, want: str | None = after_line) -> None:
                try:
                    for line in stream:
                        lines.append(line)
                        if want and want in line:
                            seen.set()
                finally:
                    seen.set()  # the run ended without that line: nothing left to wait for

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            if after_line:
                seen.wait(timeout=120)
            try:
                proc.wait(timeout=delay)
                horizon = (time.monotonic() - t0) * 1.2
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            reader.join(timeout=10)
            after = stored_keys(db)
            missing = before - after
            assert not missing, f"kill {i} lost {len(missing)} entries"
            published = check_output(out)
            assert published >= 0  # the output of the first run, or a newer one: never none
            said = [l[17:].strip() for l in lines if " INFO " in l]
            last = (said or ["(killed before its first log line)"])[-1][:60]
            moment = f"{delay:.2f}s after '{after_line}'" if after_line else f"{delay:.1f}s after start"
            log.append(f"run {i:2d}: {'killed' if proc.returncode == -9 else 'finished'} {moment:<40} "
                       f"entries {len(before)} -> {len(after)}, feed.json {published}; last log: {last}")
            before = after

        # the feeds as they end up; one clean run finishes the work
        for stem, docs in grown.items():
            feeds.add(f"/{stem}.xml", docs[-1])
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert final.returncode == 0, final.stderr
    print("\n".join(log))
    kills = sum(" killed " in line for line in log)
    assert kills >= KILLS // 2  # runs were cut short (the others finished: also fine)

    expected = {(f.stem, e.key) for f in feed_files for e in parse_feed(f.read_bytes()).entries}
    assert len(expected) == 40 + 294
    assert stored_keys(db) == expected
    assert check_output(out) == len(expected)
    js = json.loads((out / "feed.json").read_text(encoding="utf-8"))
    assert len({i["id"] for i in js["items"]}) == len({i["url"] for i in js["items"]}) == len(expected)
    posts = [i for i in js["items"] if i["_aggregator"]["kind"] == "post"]
    assert len(posts) == 40 and all(p["_aggregator"]["translated"] for p in posts)
    assert not list(out.glob(".*.tmp"))  # temporary files of killed writes are gone
