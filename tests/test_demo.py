"""``aggregator demo``, as a newcomer runs it: no network beyond 127.0.0.1, no provider;
the posts come out in English (the sample's translation memory) with their sources."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import httpx
from conftest import aggregator_cmd

from aggregator.demo import sample_dir


def test_demo_output_is_english_posts_with_their_sources(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = subprocess.run(aggregator_cmd("demo", "--output", str(out)), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "15 translated (0 pending; 0 requests, 0 characters sent to translators)" in r.stdout
    assert r.stderr == ""  # nothing to warn about
    items = json.loads((out / "feed.json").read_text(encoding="utf-8"))["items"]
    posts = {i["url"]: i for i in items if i["_aggregator"]["kind"] == "post"}
    cases = json.loads((sample_dir() / "cases.json").read_text(encoding="utf-8"))
    assert set(posts) == {c["link"] for c in cases}
    for c in cases:
        post = posts[c["link"]]
        assert post["language"] == "en" and post["_aggregator"]["translation_status"] == "done by memory", c
        assert not re.search(r"[\u3040-\u30ff]", post["title"] + post["summary"]), post["title"]  # no kana left
        assert sorted(s["url"] for s in post["_aggregator"]["sources"]) == c["cites"], c["case"]
    # the cited articles come with their posts; nothing else (include: cited)
    articles = {i["url"] for i in items if i["_aggregator"]["kind"] == "article"}
    assert articles == {u for c in cases for u in c["cites"]}
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count('class="post"') == 15 and "appeared first on" not in page


def test_demo_serves_the_result_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen(aggregator_cmd("demo", "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:
            if m := re.search(r"Serving the demo at (http://127\.0\.0\.1:\d+/)", line):
                url = m.group(1)
                break
        assert url, proc.stderr.read() if proc.stderr else ""
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "aggregator demo" in page.text
        feed = httpx.get(url + "feed.atom", timeout=10)
        assert feed.headers["content-type"].startswith("application/atom+xml")
        assert f'href="{url}feed.atom"' in feed.text  # self link: where it is served
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
