"""Translation through the real CLI (`aggregator run --once` in a subprocess) on the
matchbench dev feeds served over loopback, with LibreTranslate-protocol servers: a
provider that never answers costs a cycle about one timeout, and a second run sends
nothing at all."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from lxml import etree
from test_pipeline_e2e import ALIASES, ATOM, NAMES, OUTLETS, XML_LANG, translations

TIMEOUT = 3.0


def write_config(path: Path, feeds: FeedServer, *libre_urls: str) -> None:
    lines = ["storage: {url: 'sqlite:///data/store.sqlite3'}",
             "output: {dir: output, max_entries: 1000, include: all}",
             "translation:", "  target: en", f"  timeout: {TIMEOUT:g}s", "  providers:"]
    lines += [f"    - {{provider: libre, url: '{u}'}}" for u in libre_urls]
    lines += ["fetch: {allow_private_networks: true}", "sources:",
              f"  - {{id: blog, name: 軍事ニュース解説ブログ, url: '{feeds.url('/blog.xml')}', role: blog, language: ja}}"]
    for o in OUTLETS:
        lines.append(f"  - {{id: {o}, name: '{NAMES[o]}', url: '{feeds.url(f'/{o}.xml')}', role: outlet,"
                     f" language: en, aliases: {json.dumps(ALIASES[o], ensure_ascii=False)}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def dev_feeds() -> FeedServer:
    feeds = FeedServer()
    for f in (DEV / "feeds").iterdir():
        feeds.add_file(f"/{f.name}", f)
    return feeds


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(aggregator_cmd("run", "--once", "--config", str(config), *args),
                          capture_output=True, text=True, timeout=600)


def english_titles(out: Path) -> dict[str, str]:
    root = etree.parse(str(out / "feed.atom")).getroot()
    return {e.find(f"{ATOM}link[@rel='alternate']").get("href"): e.find(f"{ATOM}title").text
            for e in root.findall(f"{ATOM}entry") if e.get(XML_LANG) == "en"}


def test_a_cycle_whose_first_provider_never_answers_costs_about_one_timeout(tmp_path: Path) -> None:
    with dev_feeds() as feeds, LibreTranslateServer() as dead, \
            LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as good:
        dead.fault = "hang"
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, dead.url, good.url)
        t0 = time.monotonic()
        r = run(cfg)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        # found dead once, then skipped: not one timeout per text (hundreds of them)
        assert dead.requests == 1
        assert good.requests > 100
        # a normal cycle takes seconds; the bound only has to tell one timeout from many
        assert elapsed < TIMEOUT * 3 + 60, elapsed
    titles = english_titles(tmp_path / "output")
    tr = set(translations().values())
    posts = [t for link, t in titles.items() if link.startswith("https://blog.example.jp/")]
    assert len(posts) == 40 and all(t in tr for t in posts)


def test_the_dev_set_is_translated_once_and_a_second_run_sends_nothing(tmp_path: Path) -> None:
    with dev_feeds() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, libre.url)
        first = run(cfg)
        assert first.returncode == 0, first.stderr
        sent = (libre.requests, libre.characters)
        assert sent[0] > 0 and sent[1] > 0
        # the run's own summary counts what the server received
        m = re.search(r"(\d+) requests, (\d+) characters sent to translators", first.stdout)
        assert m and (int(m.group(1)), int(m.group(2))) == sent, first.stdout
        before = (tmp_path / "output" / "feed.atom").read_bytes()

        second = run(cfg, "--all")  # a new process: only the store remembers
        assert second.returncode == 0, second.stderr
        assert (libre.requests, libre.characters) == sent  # 0 requests, 0 characters more
        assert (tmp_path / "output" / "feed.atom").read_bytes() == before

        st = json.loads(subprocess.run(aggregator_cmd("status", "--json", "--config", str(cfg)),
                                       capture_output=True, text=True).stdout)["translation"]
        assert (st["done"], st["pending"], st["failed"], st["untranslated"]) == (40, 0, 0, 0)
        # every text the server translated is in the store, with its provider
        assert 0 < st["cached_texts"]["libre"] <= len(set(libre.texts))
