"""A translator outage is visible where people look: ``run --once`` (cron) says it on
stderr once per provider without -v; the daemon's processing says it once when a
provider goes down and once when it is back; ``status`` shows each provider's state.
No log line carries a percent-encoded request URL with the text in it."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import aggregator_cmd
from loopback import LibreTranslateServer
from test_pipeline_e2e import Site, serve_dev

from aggregator.config import load_config
from aggregator.running.cycle import CycleReport, process_stage
from aggregator.store import Store


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there any more: connection refused


@pytest.fixture
def down(tmp_path: Path) -> Site:
    for site in serve_dev(tmp_path, Site):
        text = site.config.read_text(encoding="utf-8")
        site.config.write_text(text.replace(site.libre.url, closed_port_url()), encoding="utf-8")
        yield site


def test_run_once_says_on_stderr_that_the_translator_is_down(down: Site) -> None:
    r = down.run()
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "WARNING" in line]
    translation = [line for line in warnings if "translation:" in line]
    assert len(translation) == 1, r.stderr  # one line for the one provider, not one per text
    assert re.search(r"translation: libre failed this cycle \(libre: connection failed.*\); "
                     r"\d+ texts of 40 entries wait for a translation", translation[0]), translation[0]
    assert "%E" not in r.stderr and "?q=" not in r.stderr
    assert re.search(r"connection failed: 127\.0\.0\.1:\d+: Connection refused\)", translation[0])
    # the next run (nothing due for retry yet): still said, once
    again = down.run()
    lines = [line for line in again.stderr.splitlines() if "translation:" in line]
    # (matching may call it again for a post's mentions; else it is known down since the first run)
    assert len(lines) == 1 and re.search(r"WARNING translation: libre (failed this cycle|down since \d{4}-\d\d-\d\d "
                                         r"\d\d:\d\d UTC) \(libre: connection failed", lines[0]), again.stderr
    # the feed says it in readers' words only
    items = json.loads((down.out / "feed.json").read_text(encoding="utf-8"))["items"]
    assert {i["_aggregator"]["translation_status"] for i in items if i["_aggregator"]["kind"] == "post"} == {
        "not available yet"}
    # status: the provider's state, since when, why
    st = subprocess.run(aggregator_cmd("status", "--config", str(down.config)), capture_output=True, text=True,
                        timeout=60)
    assert re.search(r"provider libre: DOWN since \S+ \S+ \(.*\): libre: connection failed", st.stdout), st.stdout
    # explain: the post's translation, for the operator
    ex = subprocess.run(aggregator_cmd("explain", "--config", str(down.config), items[0]["url"]),
                        capture_output=True, text=True, timeout=60)
    assert re.search(r"translation to en: pending, attempt \d, next try \d{4}-.* UTC: libre: .*connection failed",
                     ex.stdout), ex.stdout
    js = json.loads(subprocess.run(aggregator_cmd("status", "--json", "--config", str(down.config)),
                                   capture_output=True, text=True, timeout=60).stdout)
    assert [(p["name"], p["state"]) for p in js["translation"]["providers"]] == [("libre", "down")]


def test_processing_says_down_once_and_back_once(down: Site, caplog: pytest.LogCaptureFixture) -> None:
    assert down.run().returncode == 0  # fetched and stored; libre found down
    caplog.set_level(logging.DEBUG)
    cfg = load_config(down.config)
    with Store(cfg.db_path) as store:
        later = datetime.now(UTC) + timedelta(hours=1)  # past the entries' retry time
        report = process_stage(store, cfg, CycleReport(), now=lambda: later)
        assert report.provider_failures and report.waiting_texts > 0
        assert report.transition_lines() == []  # already known down: nothing new to say
        with LibreTranslateServer({}, unknown="echo") as srv:  # the provider is back
            text = down.config.read_text(encoding="utf-8")
            down.config.write_text(text.replace(_libre_url(text), srv.url), encoding="utf-8")
            cfg = load_config(down.config)
            report = process_stage(store, cfg, CycleReport(), now=lambda: later + timedelta(hours=1))
            assert report.transition_lines() == ["translation: libre is back"]
    per_text = [r for r in caplog.records if r.levelno >= logging.INFO and "connection failed" in r.getMessage()]
    assert per_text == []  # failures per text are DEBUG; the cycle reports once per provider


def _libre_url(config_text: str) -> str:
    m = re.search(r"provider: libre, url: '([^']+)'", config_text)
    assert m
    return m.group(1)
