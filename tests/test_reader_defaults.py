"""What a newcomer gets with the default settings, through the real CLI on the dev set
served over loopback: every post published (posts first), each with its sources."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_pipeline_e2e import Site, serve_dev


def _defaults(site: Site) -> Site:
    # The dev config without output.max_entries / output.include: the defaults decide.
    text = site.config.read_text(encoding="utf-8")
    text = re.sub(r"max_entries: \d+, include: \w+, ", "", text)
    assert "include" not in text and "max_entries" not in text
    site.config.write_text(text, encoding="utf-8")
    return site


@pytest.fixture
def site(tmp_path: Path) -> Any:
    for s in serve_dev(tmp_path, Site):
        yield _defaults(s)


def test_default_settings_publish_every_dev_post_with_its_sources(site: Site, dev_gold: list[dict]) -> None:
    r = site.run()
    assert r.returncode == 0, r.stderr
    items = json.loads((site.out / "feed.json").read_text(encoding="utf-8"))["items"]
    posts = [i for i in items if i["_aggregator"]["kind"] == "post"]
    assert len(posts) == 40 == len(dev_gold)
    # include: cited: the articles in the feed are exactly those the posts cite
    cited = {s["url"] for p in posts for s in p["_aggregator"]["sources"]}
    articles = {i["url"] for i in items if i["_aggregator"]["kind"] == "article"}
    assert articles == cited and len(cited) >= 30
    gold = {g["link"]: set(g["cited"]) for g in dev_gold}
    wrong = [p["url"] for p in posts if {s["url"] for s in p["_aggregator"]["sources"]} != gold[p["url"]]]
    assert len(wrong) <= 1, wrong
    # posts translated, readers' words only
    assert all(p["_aggregator"]["translation_status"].startswith("done") for p in posts)
    page = (site.out / "index.html").read_text(encoding="utf-8")
    assert page.count('<article id="post-') == 40 and "score" not in page
    # the Breaking Defense feed ends every summary with WordPress' footer: not ours to publish
    feeds = [(site.out / n).read_text(encoding="utf-8") for n in ("feed.atom", "feed.rss", "feed.json", "index.html")]
    assert any("Breaking Defense" in f for f in feeds)
    assert not any("appeared first on" in f for f in feeds)
