"""index.html and the feeds' XSL views in a real browser: headless Chromium (Debian
``chromium`` + ``chromium-driver``, driven by selenium) loads them from ``aggregator
serve``'s server on 127.0.0.1 after one real cycle, and the tests assert on what it
rendered. Screenshots go to ``tests/_artifacts/browser/`` (git-ignored); each test prints
the path. The demo's page (``aggregator demo``) is photographed on a desktop and a phone;
with ``AGGREGATOR_SCREENSHOTS=docs/screenshots`` those two are also written there (the
README shows them).

These tests fail, never skip, when Chromium is missing: ``scripts/test`` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from test_feed_validity import HOSTILE_POST_TITLE, SPECIAL_SHOWN, publish_hostile_cycle

from aggregator.publishing.serve import make_server

A = "{http://www.w3.org/2005/Atom}"
ARTIFACTS = Path(__file__).resolve().parent / "_artifacts" / "browser"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver   (scripts/test does this)"
# A post citing two outlets (matchbench dev gold), and one citing POLITICO.
POST = "https://blog.example.jp/us-related/house-gop-releases-ukraine-israel-aid-bills/"


def _binary() -> str:
    for path in CHROMIUM:
        if Path(path).exists():
            return path
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(f"headless Chromium is needed for this test and was not found: {INSTALL}")
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    out = publish_hostile_cycle(tmp_path_factory.mktemp("browser"))
    server = make_server(out, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}", out
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    binary = _binary()
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    if not driver_path:
        pytest.fail(f"chromedriver is needed for this test and was not found: {INSTALL}")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1600",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    # DOMContentLoaded is enough: images on the sources' hosts cannot load offline.
    opts.page_load_strategy = "eager"
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), path
    print(f"screenshot: {path}")
    return path


def load(driver: WebDriver, url: str, selector: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))


def atom_titles(out: Path) -> list[str]:
    root = etree.parse(str(out / "feed.atom")).getroot()
    return [e.findtext(f"{A}title") for e in root.findall(f"{A}entry")]


def post_titles(out: Path) -> list[str]:
    """The posts' titles, in the feeds' order (the page shows posts as cards)."""
    items = json.loads((out / "feed.json").read_text(encoding="utf-8"))["items"]
    return [i["title"] for i in items if i["_aggregator"]["kind"] == "post"]


def test_index_page_shows_posts_with_translation_original_sources_and_time(
        browser: WebDriver, site: tuple[str, Path]) -> None:
    base, out = site
    browser.set_window_size(1280, 1600)
    load(browser, base + "/", "article")
    articles = browser.find_elements(By.CSS_SELECTOR, "main > article")
    shown = [a.find_element(By.CSS_SELECTOR, "h2.title").text for a in articles]
    assert shown == post_titles(out)

    post = browser.find_element(By.XPATH, f"//article[.//h2/a[@href='{POST}']]")
    title = post.find_element(By.CSS_SELECTOR, "h2.title")
    original = post.find_element(By.CSS_SELECTOR, ".title-original")
    assert title.text.startswith("House Republicans")  # translated (dev translations table)
    assert original.text.startswith("米下院共和党")
    # side by side on a wide screen: same row, original to the right
    assert original.location["x"] > title.location["x"] + title.size["width"] / 2
    assert abs(original.location["y"] - title.location["y"]) < 40
    # the sources inside the post's card: outlet, date, headline, summary; no matching detail
    sources = post.find_elements(By.CSS_SELECTOR, ".sources-block ul.sources > li.source")
    assert sources and sources[0].find_element(By.CSS_SELECTOR, ".outlet").text == "POLITICO"
    assert sources[0].find_element(By.CSS_SELECTOR, "a[rel=related]").get_attribute("href").startswith(
        "https://www.politico.com/")
    assert sources[0].find_element(By.CSS_SELECTOR, ".source-summary").text
    assert "score" not in post.text
    assert post.find_element(By.CSS_SELECTOR, "time.published").text.endswith("UTC")
    assert not post.find_elements(By.CSS_SELECTOR, ".translation")  # translated: nothing to say

    # hostile text arrives as text; the script in the hostile feed never ran
    pending = articles[shown.index(HOSTILE_POST_TITLE)]
    assert pending.find_element(By.CSS_SELECTOR, ".translation").text == "Machine translation not available yet"
    assert SPECIAL_SHOWN in browser.find_element(By.CSS_SELECTOR, "main").text
    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert.text

    # feed autodiscovery
    kinds = {l.get_attribute("type"): l.get_attribute("href")
             for l in browser.find_elements(By.CSS_SELECTOR, "head link[rel=alternate]")}
    assert kinds == {"application/atom+xml": base + "/feed.atom", "application/rss+xml": base + "/feed.rss",
                     "application/feed+json": base + "/feed.json"}
    assert screenshot(browser, "index.png").stat().st_size > 10_000


def test_index_page_fits_a_phone_screen(browser: WebDriver, site: tuple[str, Path]) -> None:
    base, _ = site
    browser.set_window_size(390, 844)
    try:
        load(browser, base + "/", "article")
        width = browser.execute_script("return window.innerWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        post = browser.find_element(By.XPATH, f"//article[.//h2/a[@href='{POST}']]")
        title = post.find_element(By.CSS_SELECTOR, "h2.title")
        original = post.find_element(By.CSS_SELECTOR, ".title-original")
        assert original.location["y"] > title.location["y"]  # stacked, not squeezed side by side
        screenshot(browser, "index-phone.png")
    finally:
        browser.set_window_size(1280, 1600)


def test_feed_atom_opened_in_the_browser_renders_through_its_xsl(browser: WebDriver, site: tuple[str, Path]) -> None:
    base, out = site
    load(browser, base + "/feed.atom", "article h2.title")
    assert browser.title == "Merged defence news (Atom feed)"
    assert "https://news.example.org/feeds/feed.atom" in browser.find_element(By.CSS_SELECTOR, ".note").text
    shown = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "article h2.title")]
    assert shown == atom_titles(out)
    post = browser.find_element(By.XPATH, f"//article[.//h2/a[@href='{POST}']]")
    # the summary's HTML rendered as HTML: a list of sources with links and evidence
    source = post.find_element(By.CSS_SELECTOR, ".summary ul.sources li")
    assert source.text.startswith("POLITICO: ")
    assert source.find_element(By.CSS_SELECTOR, "a").get_attribute("href").startswith("https://www.politico.com/")
    assert "score" not in source.text and "[link]" not in source.text
    assert "米下院共和党" in post.find_element(By.CSS_SELECTOR, ".original-title").text
    assert "<p>" not in post.text  # not escaped markup
    assert post.find_element(By.CSS_SELECTOR, "img.thumb").get_attribute("src").startswith("https://blog.example.jp/")
    screenshot(browser, "feed-atom.png")


def test_feed_rss_opened_in_the_browser_renders_through_its_xsl(browser: WebDriver, site: tuple[str, Path]) -> None:
    base, out = site
    load(browser, base + "/feed.rss", "article h2.title")
    assert browser.title == "Merged defence news (RSS feed)"
    assert [h.text for h in browser.find_elements(By.CSS_SELECTOR, "article h2.title")] == atom_titles(out)
    post = browser.find_element(By.XPATH, f"//article[.//h2/a[@href='{POST}']]")
    assert post.find_element(By.CSS_SELECTOR, ".summary ul.sources li").text.startswith("POLITICO: ")
    screenshot(browser, "feed-rss.png")


# ------------------------------------------------------------------ the demo's page


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from aggregator.demo import run_demo_cycle

    out = tmp_path_factory.mktemp("demo-out")
    server = make_server(out, "127.0.0.1", 0)
    host, port = server.server_address[:2]
    run_demo_cycle(out, f"http://{host}:{port}/", tmp_path_factory.mktemp("demo-work"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}", out
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def docs_screenshot(driver: WebDriver, name: str) -> Path:
    path = screenshot(driver, name)
    if target := os.environ.get("AGGREGATOR_SCREENSHOTS"):
        dest = Path(target) / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        print(f"screenshot: {dest}")
    return path


@pytest.mark.parametrize(("name", "size"), [("page-desktop.png", (1280, 1400)), ("page-phone.png", (390, 844))])
def test_demo_page_shows_posts_with_their_sources_nested(browser: WebDriver, demo_site: tuple[str, Path],
                                                         name: str, size: tuple[int, int]) -> None:
    base, out = demo_site
    browser.set_window_size(*size)
    try:
        load(browser, base + "/", "article")
        cards = browser.find_elements(By.CSS_SELECTOR, "main > article.post")
        assert [c.find_element(By.CSS_SELECTOR, "h2.title").text for c in cards] == post_titles(out)
        assert len(cards) == 15
        first = cards[0]
        # English, the Japanese title beside or under it, and its sources inside the card
        assert first.find_element(By.CSS_SELECTOR, "h2.title").text.isascii()
        assert first.find_element(By.CSS_SELECTOR, ".title-original").text
        nested = first.find_elements(By.CSS_SELECTOR, ".sources-block li.source")
        assert nested, "the newest demo post cites an article: it shows in the card"
        card_box, src_box = first.rect, nested[0].rect
        assert card_box["x"] <= src_box["x"] and src_box["x"] + src_box["width"] <= card_box["x"] + card_box["width"]
        assert card_box["y"] < src_box["y"] < card_box["y"] + card_box["height"]
        assert not browser.find_elements(By.CSS_SELECTOR, ".translation")  # every post translated (memory)
        width = browser.execute_script("return window.innerWidth")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= width
        assert docs_screenshot(browser, name).stat().st_size > 10_000
    finally:
        browser.set_window_size(1280, 1600)
