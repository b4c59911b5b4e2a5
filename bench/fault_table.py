"""The fault table: each hostile server or broken feed of tests/faultcases.py, what the
user sees, the store's entries before and after, and how long the cycle took.

Runs the real CLI (``aggregator run --once --all``) on the matchbench dev feeds served
over loopback, one fault at a time on the ``defensenews`` source, with the fetch limits
of the tests (total 3 s, connect 1 s, read 1.5 s, 1 MB cap), and prints Markdown.

    PYTHONPATH=. python bench/fault_table.py
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from conftest import DEV, aggregator_cmd  # noqa: E402
from faultcases import FAULTS, FETCH, QUIRKS  # noqa: E402
from loopback import Blackhole, FeedServer, LibreTranslateServer  # noqa: E402

VICTIM = "defensenews"
EMPTY = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Quirks</title>'
         b"<link>https://quirks.example/</link><description>d</description></channel></rss>")


def write_config(path: Path, feeds: FeedServer, libre: str, victim_url: str) -> None:
    lines = ["storage: {url: 'sqlite:///data/store.sqlite3'}", "output: {dir: output, max_entries: 1000}",
             "translation: {target: en, timeout: 3s, providers: [{provider: libre, url: '" + libre + "'}]}",
             f"fetch: {{{FETCH}}}", "sources:"]
    for f in sorted((DEV / "feeds").iterdir()):
        url = victim_url if f.stem == VICTIM else feeds.url(f"/{f.name}")
        role = "blog" if f.stem == "blog" else "outlet"
        lang = "ja" if role == "blog" else "en"
        lines.append(f"  - {{id: {f.stem}, url: '{url}', role: {role}, language: {lang}}}")
    lines.append(f"  - {{id: quirks, url: '{feeds.url('/quirks.xml')}', role: outlet}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return dict(con.execute("SELECT source_id, COUNT(*) FROM entries GROUP BY source_id"))
    finally:
        con.close()


def run(cfg: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = subprocess.run(aggregator_cmd("run", "--once", "--all", "--config", str(cfg)), capture_output=True,
                       text=True, timeout=600)
    return r, time.monotonic() - t0


def cycle_seconds(r: subprocess.CompletedProcess[str]) -> str:
    m = re.search(r" in (\d+\.\d)s$", r.stdout.strip())
    return m.group(1) if m else "?"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fault-table-"))
    cfg = tmp / "aggregator.yaml"
    db = tmp / "data" / "store.sqlite3"
    with FeedServer() as feeds, Blackhole() as hole, \
            LibreTranslateServer.from_jsonl(DEV / "translations.jsonl", unknown="echo") as libre:
        def reset() -> None:
            for f in (DEV / "feeds").iterdir():
                feeds.clear_fault(f"/{f.name}")
                feeds.add_file(f"/{f.name}", f)

        reset()
        feeds.add("/quirks.xml", EMPTY)
        write_config(cfg, feeds, libre.url, feeds.url(f"/{VICTIM}.xml"))
        first, took = run(cfg)
        assert first.returncode == 0, first.stderr
        print(f"Baseline: {sum(counts(db).values())} entries after a first clean cycle ({took:.1f} s wall). "
              f"Fetch limits: {FETCH}.\n")
        print("| fault | what the user sees (stderr of `run --once`; also `status`) | entries before | after "
              "| cycle s | wall s |")
        print("|---|---|---:|---:|---:|---:|")
        for fault in FAULTS:
            reset()
            path = f"/{VICTIM}.xml"
            fault.serve(feeds, path)
            write_config(cfg, feeds, libre.url, fault.victim_url(feeds, hole, path))
            before = sum(counts(db).values())
            r, wall = run(cfg)
            after = sum(counts(db).values())
            line = next((l for l in r.stderr.splitlines() if f" {VICTIM}: failed after " in l), "(no error line)")
            seen = line.split("s: ", 1)[1] if "s: " in line else line
            print(f"| {cell(fault.label)} | `{VICTIM}: {cell(seen)}` | {before} | {after} | {cycle_seconds(r)} "
                  f"| {wall:.1f} |")
            assert r.returncode == 0 and after == before, (fault.name, r.stderr)
            reset()
            write_config(cfg, feeds, libre.url, feeds.url(path))
            run(cfg)  # back to health before the next fault (a 410 stays disabled: --all tries it)

        print("\n| broken but usable feed | stored from it | warning (`status`) | other sources' entries "
              "before | after | cycle s |")
        print("|---|---:|---|---:|---:|---:|")
        for quirk in QUIRKS:
            feeds.add("/quirks.xml", quirk.body, content_type=quirk.content_type)
            c0 = counts(db)
            r, wall = run(cfg)
            c1 = counts(db)
            con = sqlite3.connect(db)
            warning = con.execute("SELECT last_error FROM sources WHERE id='quirks'").fetchone()[0] or "-"
            con.close()
            others0 = sum(v for k, v in c0.items() if k != "quirks")
            others1 = sum(v for k, v in c1.items() if k != "quirks")
            print(f"| {cell(quirk.label)} | {c1.get('quirks', 0) - c0.get('quirks', 0)} (expected {quirk.entries}) "
                  f"| {cell(warning[:120])} | {others0} | {others1} | {cycle_seconds(r)} |")
            assert r.returncode == 0 and others0 == others1, (quirk.name, r.stderr)


if __name__ == "__main__":
    main()
