"""The commands people run a long-lived aggregator with, as subprocesses on the
matchbench dev set served over loopback: status, explain, sources, run --once's
output (silent when nothing happened, a progress bar only on a terminal), logs."""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import struct
import subprocess
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from test_pipeline_e2e import serve_dev

from aggregator.store import StoreLock

EXPECTED = {"blog": 40, "politico": 45, "reuters": 55, "kyivindependent": 61, "defensenews": 45,
            "breakingdefense": 45, "twz": 43}
TIMEOUT = 300


@dataclass
class Site:
    dir: Path
    config: Path
    feeds: FeedServer
    libre: LibreTranslateServer

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(aggregator_cmd(*args, "--config", str(self.config)), capture_output=True, text=True,
                              timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def _serve(d: Path) -> Iterator[Site]:
    yield from serve_dev(d, Site)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _serve(tmp_path)


@pytest.fixture(scope="module")
def cycled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One cycle done on matchbench dev; the tests using it only read."""
    for s in _serve(tmp_path_factory.mktemp("cycled")):
        r = s.cli("run", "--once")
        assert r.returncode == 0, r.stderr
        yield s


def on_terminal(cmd: list[str], *, stdout_too: bool = True, columns: int = 100) -> tuple[int, str, str]:
    """Run ``cmd`` with stderr (and stdout) on a pseudo-terminal: (status, terminal output, piped stdout)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave if stdout_too else subprocess.PIPE,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    proc.wait(timeout=TIMEOUT)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace"), out


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")


# -- status ----------------------------------------------------------------------------


def test_status_after_a_cycle_shows_each_source_the_backlog_the_publication_and_the_store(cycled: Site) -> None:
    r = cycled.cli("status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.match(r"source\s+role\s+entries\s+last fetch \(UTC\)\s+last success \(UTC\)\s+result\s+errors\s+"
                    r"next fetch \(UTC\)$", lines[0])
    rows = {line.split()[0]: line for line in lines[1:1 + len(EXPECTED)]}
    assert set(rows) == set(EXPECTED)
    for sid, n in EXPECTED.items():
        assert re.match(rf"{sid}\s+(blog|outlet)\s+{n}\s+(\d{{4}}-\d\d-\d\d \d\d:\d\d \((now|\d+s ago)\)\s+){{2}}"
                        rf"ok: {n} new, 0 updated\s+0\s+\d{{4}}-\d\d-\d\d \d\d:\d\d \(in (29|30)m\)$", rows[sid]), rows[sid]
    text = r.stdout
    assert "run: none running" in text
    assert "translation to en: 0 of the 40 entries in the feed that need it are not translated yet" in text
    assert re.search(r"last publication: \d{4}-\d\d-\d\d \d\d:\d\d \((now|\d+s ago)\), 334 entries in "
                     + re.escape(str(cycled.dir / "output")), text)
    assert re.search(r"store: .*store\.sqlite3, \d+\.\d MB: 40 posts, 294 articles, \d+ links from posts", text)


def test_status_json_has_per_source_health_backlog_publication_and_size(cycled: Site) -> None:
    r = cycled.cli("status", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [s["id"] for s in d["sources"]] == list(EXPECTED)
    for s in d["sources"]:
        assert s["entries"] == EXPECTED[s["id"]]
        assert s["consecutive_failures"] == 0 and s["result"].startswith("ok:") and s["due"] is False
        assert s["last_fetch"] < s["next_fetch"]
    t = d["translation"]
    assert (t["target"], t["in_feed"], t["needed"], t["done"], t["backlog"]) == ("en", 334, 40, 40, 0)
    assert d["last_publication"].endswith("Z") and d["published_entries"] == 334
    assert d["store_bytes"] > 100_000 and d["running"] is None
    assert d["entries"] == {"posts": 40, "articles": 294}


def test_status_names_the_run_that_holds_the_store(cycled: Site) -> None:
    lock = StoreLock(cycled.dir / "data" / "store.sqlite3").acquire("aggregator run (daemon)")
    try:
        r = cycled.cli("status", "--json")
        text = cycled.cli("status").stdout
    finally:
        lock.release()
    assert json.loads(r.stdout)["running"].startswith(f"pid {os.getpid()}: aggregator run (daemon) since ")
    assert f"run: pid {os.getpid()}: aggregator run (daemon) since" in text


def test_status_on_a_terminal_is_a_compact_table(cycled: Site) -> None:
    code, out, _ = on_terminal(aggregator_cmd("status", "--config", str(cycled.config)), columns=80)
    assert code == 0
    text = plain(out)
    assert "\x1b[" in out  # styled
    header = text.splitlines()[0]
    assert header.split() == ["source", "role", "entries", "fetched", "result", "errors", "next"]
    assert re.search(r"^politico\s+outlet\s+45\s+(now|\d+s ago)\s+ok: 45 new, 0 updated\s+0\s+in (29|30)m$",
                     text, re.M)
    assert all(len(line) <= 80 for line in text.splitlines())


def test_status_before_the_first_run_says_so(site: Site) -> None:
    r = site.cli("status")
    assert r.returncode == 0, r.stderr
    assert "does not exist yet: run `aggregator run --once` first" in r.stdout
    assert re.search(r"^blog\s+blog\s+0\s+-\s+-\s+never fetched", r.stdout, re.M)


# -- explain ---------------------------------------------------------------------------


def test_explain_shows_citations_what_they_matched_with_evidence_and_why_the_rest_did_not(cycled: Site) -> None:
    url = "https://blog.example.jp/europe-related/uk-largest-ukraine-aid-package/"
    r = cycled.cli("explain", url)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("post: 英国が過去最大の5億ポンドのウクライナ支援を発表")
    cites = out.split("citations found:")[1].split("links to:")[0]
    assert "- link: https://www.gov.uk/government/news/pm-announces-largest-ever-military-aid-package-to-ukraine" in cites
    assert "- headline: Britain announces biggest military aid package for Ukraine worth 500 million pounds" in cites
    links = out.split("links to:")[1].split("not linked (near misses):")[0]
    gold = next(json.loads(l) for l in (DEV / "gold.jsonl").read_text(encoding="utf-8").splitlines()
                if json.loads(l)["link"] == url)
    for cited in gold["cited"]:
        assert cited in links
    assert re.search(r"- \[headline\] reuters: Britain announces biggest", links)
    assert re.search(r"- \[link\] breakingdefense: UK's £500 million Ukraine package", links)
    assert "link in no subscribed feed: https://www.gov.uk/" in out.split("not linked (near misses):")[1]


def test_explain_a_mention_and_a_post_that_cites_nothing(cycled: Site) -> None:
    r = cycled.cli("explain", "https://blog.example.jp/us-related/f-35-deliveries-remain-frozen/")
    assert r.returncode == 0, r.stderr
    assert "- in-text (report): Defense News, day 3, in: 米Defense Newsは3日" in r.stdout
    assert re.search(r"- \[mention Defense News 3日[^\]]*\] defensenews: F-35 deliveries remain frozen", r.stdout)
    r = cycled.cli("explain", "https://blog.example.jp/us-related/patriot-interceptor-production-bottleneck/")
    assert r.returncode == 0, r.stderr
    assert "no citations: no 参考: line" in r.stdout and "links to nothing" in r.stdout


def test_explain_shows_the_near_misses_of_a_citation_that_linked_nothing(cycled: Site) -> None:
    # The post links a POLITICO page that is not in the feed; POLITICO's articles of those
    # days are its near misses, each with its score, and the test they failed.
    r = cycled.cli("explain", "https://blog.example.jp/us-related/army-force-structure-cuts/")
    assert r.returncode == 0, r.stderr
    near = r.stdout.split("not linked (near misses):")[1]
    assert "link in no subscribed feed: https://www.politico.com/news/2024/05/09/" in near
    assert re.search(r"closest: 0\.\d\d politico: ", near) and re.search(r"next: 0\.\d\d politico: ", near)
    assert "needed: ≥ 0.95 and ahead of the next by 0.05" in near
    # 「米POLITICOによると」 under that line is the line's own article, not a second citation.
    assert "taken as a 参考 line's own article" in r.stdout


def test_explain_an_unknown_post_is_an_error(cycled: Site) -> None:
    r = cycled.cli("explain", "https://blog.example.jp/no-such-post/")
    assert r.returncode != 0
    assert "no blog post with the link https://blog.example.jp/no-such-post/ in the store" in r.stderr


# -- run --once: output and logs -------------------------------------------------------


def test_once_prints_a_summary_then_nothing_when_nothing_changed(site: Site) -> None:
    first = site.cli("run", "--once")
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"cycle: 7 sources fetched \(0 failed\), 334 new and 0 updated entries, 40 posts matched "
                        r"\(\d+ changed\), 40 translated \(0 pending; \d+ requests, \d+ characters sent to translators\), 334 entries published in \d+\.\ds; "
                        rf"output in {re.escape(str(site.dir / 'output'))}\n", first.stdout)
    assert first.stderr == ""
    # nothing due: nothing fetched, nothing to say
    second = site.cli("run", "--once")
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    # everything fetched again, every feed answers 304: still nothing to say
    third = site.cli("run", "--once", "--all")
    assert (third.returncode, third.stdout, third.stderr) == (0, "", "")
    assert site.feeds.hits["/politico.xml"] == 2


def test_once_verbose_logs_one_line_per_source_and_one_per_cycle(site: Site) -> None:
    r = site.cli("run", "--once", "-v")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    for sid, n in EXPECTED.items():
        assert sum(bool(re.search(rf"INFO\s+{sid}: new entries, {n} new, 0 updated, \d+\.\ds$", l))
                   for l in lines) == 1, sid
    assert sum("INFO    cycle: 7 sources fetched (0 failed), 334 new" in l for l in lines) == 1


def test_log_file_keeps_the_story_even_when_the_console_is_quiet(site: Site) -> None:
    log = site.dir / "logs" / "aggregator.log"
    log.parent.mkdir()
    site.feeds.fault("/reuters.xml", "status", status=503)
    r = site.cli("run", "--once", "-q", "--log-file", str(log))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    text = log.read_text(encoding="utf-8")
    assert re.search(r"INFO    aggregator: politico: new entries, 45 new", text)
    assert re.search(r"WARNING aggregator: reuters: failed after \d+\.\ds: HTTP 503", text)
    assert "aggregator: cycle: 7 sources fetched (1 failed)" in text
    # without -q a failed source is on stderr, and the cycle's summary on stdout
    r = site.cli("run", "--once", "--all")
    assert r.returncode == 0
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING reuters: failed after \d+\.\ds: HTTP 503 Service Unavailable\n", r.stderr)
    assert r.stdout.startswith("cycle: 7 sources fetched (1 failed), 0 new and 0 updated entries")


def test_progress_bar_on_a_terminal_counts_only_the_sources_due(site: Site) -> None:
    assert site.cli("run", "--once").returncode == 0
    db = sqlite3.connect(site.dir / "data" / "store.sqlite3")
    db.execute("UPDATE sources SET next_fetch='2000-01-01T00:00:00Z' WHERE id IN ('blog', 'twz')")
    db.commit()
    db.close()
    code, term, out = on_terminal(aggregator_cmd("run", "--once", "--config", str(site.config)), stdout_too=False)
    assert code == 0, term
    text = plain(term)
    assert "fetching" in text and re.search(r"\b[0-2]/2\b", text), text
    assert "/7" not in text
    assert out == ""  # 304s only: nothing changed, and stdout is not a terminal


def test_no_progress_bar_when_not_on_a_terminal(site: Site) -> None:
    r = site.cli("run", "--once", "--all")
    assert r.returncode == 0
    assert "fetching" not in r.stderr and "\x1b[" not in r.stderr + r.stdout


# -- sources ---------------------------------------------------------------------------


def test_sources_list_is_a_table_of_every_source(site: Site) -> None:
    r = site.cli("sources", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["id", "role", "lang", "every", "name", "aliases", "url"]
    assert re.match(r"blog\s+blog\s+ja\s+30m\*\s+軍事ニュース解説ブログ\s+-\s+http://127\.0\.0\.1:\d+/blog\.xml$", lines[1])
    assert re.match(r"reuters\s+outlet\s+en\s+30m\*\s+Reuters\s+ロイター, ロイター通信\s+http://", lines[3])
    assert lines[-1] == "7 sources; * every: schedule.every (no interval of its own)"
    js = json.loads(site.cli("sources", "list", "--json").stdout)
    assert [s["id"] for s in js] == list(EXPECTED) and js[2]["aliases"] == ["ロイター", "ロイター通信"]


def test_sources_export_then_import_into_a_new_config_round_trips(site: Site) -> None:
    exported = site.cli("sources", "export")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("<?xml") and re.search(r"<opml [^>]*version=\"2.0\"", exported.stdout)
    opml = site.dir / "feeds.opml"
    opml.write_text(exported.stdout, encoding="utf-8")
    new = site.dir / "new" / "aggregator.yaml"
    r = subprocess.run(aggregator_cmd("sources", "import", str(opml), "--config", str(new)), capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "7 added, 0 already present"
    listed = [subprocess.run(aggregator_cmd("sources", "list", "--json", "--config", str(c)), capture_output=True,
                             text=True, timeout=TIMEOUT).stdout for c in (site.config, new)]
    assert json.loads(listed[0]) == json.loads(listed[1])
    check = subprocess.run(aggregator_cmd("check-config", str(new)), capture_output=True, text=True, timeout=TIMEOUT)
    assert check.returncode == 0, check.stderr
    # importing the same file again adds nothing
    again = subprocess.run(aggregator_cmd("sources", "import", str(opml), "--config", str(new)), capture_output=True,
                           text=True, timeout=TIMEOUT)
    assert again.stdout.splitlines()[-1] == "0 added, 7 already present"


def test_once_stopped_by_sigterm_during_a_hanging_fetch_stores_the_rest_and_exits_0(site: Site) -> None:
    import signal
    import time

    site.feeds.fault("/reuters.xml", "hang")
    cfg = site.config.read_text() + "fetch: {timeout: 300s}\n"
    site.config.write_text(cfg)
    proc = subprocess.Popen(aggregator_cmd("run", "--once", "--config", str(site.config)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while site.feeds.hits["/reuters.xml"] < 1 or site.feeds.hits["/twz.xml"] < 1:
        assert time.monotonic() < end and proc.poll() is None
        time.sleep(0.1)
    # every other source stored (not just requested: parsing takes its time on a busy machine)
    store = site.dir / "data" / "store.sqlite3"

    def stored() -> int:
        try:
            db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
            try:
                return int(db.execute("SELECT COUNT(*) FROM sources WHERE last_success IS NOT NULL").fetchone()[0])
            finally:
                db.close()
        except sqlite3.Error:
            return 0

    while stored() < 6:
        assert time.monotonic() < end and proc.poll() is None
        time.sleep(0.2)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 60  # not the 300 s fetch timeout
    assert "received SIGTERM: finishing the cycle with what is fetched" in err
    assert re.match(r"cycle: 6 sources fetched \(0 failed\), 279 new .*, 1 fetch abandoned in", out), out
    st = json.loads(site.cli("status", "--json").stdout)
    by_id = {s["id"]: s for s in st["sources"]}
    assert (by_id["reuters"]["result"], by_id["reuters"]["consecutive_failures"]) == ("never fetched", 0)
    assert by_id["twz"]["entries"] == 43
