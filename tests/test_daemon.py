"""``aggregator run`` as a daemon: real APScheduler, real signals, real lock."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import feedparser

from aggregator.loopback import FeedServer
from conftest import DEV, aggregator_cmd


def _config(tmp: Path, feeds: FeedServer) -> Path:
    cfg = tmp / "aggregator.yaml"
    cfg.write_text(f"""storage: {{url: 'sqlite:///data/s.sqlite3'}}
output: {{dir: output}}
translation: {{providers: []}}
schedule: {{every: 2s, jitter: 0s}}
sources:
  - {{id: blog, url: '{feeds.url('/blog.xml')}', role: blog, language: ja}}
  - {{id: politico, name: POLITICO, url: '{feeds.url('/politico.xml')}', role: outlet}}
""")
    return cfg


def _wait_for(path: Path, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.1)


def test_daemon_fetches_on_schedule_publishes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with FeedServer() as feeds:
        feeds.add_file("/blog.xml", DEV / "feeds" / "blog.xml")
        feeds.add_file("/politico.xml", DEV / "feeds" / "politico.xml")
        cfg = _config(tmp_path, feeds)
        proc = subprocess.Popen(aggregator_cmd("run", "--config", str(cfg)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(tmp_path / "output" / "feed.atom")
            # a second run on the same store refuses to start
            second = subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg)), capture_output=True,
                                    text=True, timeout=60)
            assert second.returncode != 0
            assert "already working" in second.stderr
            # the interval is 2 s: the sources are fetched again (conditionally)
            end = time.monotonic() + 20
            while feeds.hits["/politico.xml"] < 2:
                assert time.monotonic() < end, "no second fetch"
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in err
        d = feedparser.parse(str(tmp_path / "output" / "feed.atom"))
        assert len(d.entries) == 40 + 45
        # the lock went with the process
        again = subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg)), capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 0, again.stderr
