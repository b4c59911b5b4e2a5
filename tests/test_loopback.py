"""The loopback servers, checked against the real clients: httpx, feedparser, requests, deep-translator."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
import requests
from deep_translator import LibreTranslator
from deep_translator.exceptions import AuthorizationException, ServerException
from loopback import FeedServer, LibreTranslateServer, pseudo_translation

FEED = (b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Test feed</title>'
        b"<link>http://example.com/</link><description>d</description>"
        b"<item><title>First</title><link>http://example.com/1</link><guid>1</guid></item>"
        b"</channel></rss>\n")
ATOM = (b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        b"<title>Atom</title><id>urn:x</id><updated>2024-05-01T00:00:00Z</updated></feed>\n")
JA = "米下院共和党がウクライナ支援法案を公表"
EN = "House Republicans unveil Ukraine aid bill"


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, headers={"User-Agent": "loopback-test/1"}) as c:
        yield c


# --------------------------------------------------------------------------- FeedServer

def test_200_with_validators_then_304(feeds: FeedServer, client: httpx.Client) -> None:
    url = feeds.add("/feed.xml", FEED)
    assert url == feeds.url("feed.xml") == f"http://127.0.0.1:{feeds.port}/feed.xml"
    first = client.get(url)
    assert first.status_code == 200 and first.content == FEED
    assert first.headers["etag"] == '"' + hashlib.sha1(FEED).hexdigest() + '"'
    assert first.headers["content-type"] == "application/rss+xml; charset=utf-8"

    by_etag = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    by_date = client.get(url, headers={"If-Modified-Since": first.headers["last-modified"]})
    assert by_etag.status_code == by_date.status_code == 304
    assert by_etag.content == b"" and by_etag.headers["etag"] == first.headers["etag"]

    assert feeds.hits["/feed.xml"] == 3
    method, path, headers = feeds.requests[1]
    assert (method, path) == ("GET", "/feed.xml")
    assert headers["User-Agent"] == "loopback-test/1"  # lookup is case-insensitive
    assert headers["if-none-match"] == first.headers["etag"]


def test_feedparser_conditional_get(feeds: FeedServer) -> None:
    url = feeds.add("/feed.xml", FEED)
    parsed = feedparser.parse(url)
    assert parsed.status == 200 and parsed.feed.title == "Test feed" and not parsed.bozo
    assert parsed.headers.get("content-encoding") == "gzip"  # feedparser asks for gzip
    again = feedparser.parse(url, etag=parsed.etag, modified=parsed.modified)
    assert again.status == 304 and not again.entries


def test_changed_feed_is_served_fresh(feeds: FeedServer, client: httpx.Client) -> None:
    url = feeds.add("/feed.xml", FEED)
    old = client.get(url)
    feeds.add("/feed.xml", FEED.replace(b"First", b"Second"))
    by_etag = client.get(url, headers={"If-None-Match": old.headers["etag"]})
    # Replaced within the same second, it must still count as modified since.
    by_date = client.get(url, headers={"If-Modified-Since": old.headers["last-modified"]})
    assert by_etag.status_code == by_date.status_code == 200
    assert b"Second" in by_etag.content and by_etag.headers["etag"] != old.headers["etag"]


def test_gzip_head_404_and_extra_headers(feeds: FeedServer, client: httpx.Client) -> None:
    url = feeds.add("feed.xml", FEED, headers={"Cache-Control": "max-age=60"})
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == FEED
    assert int(zipped.headers["content-length"]) == len(gzip.compress(FEED, mtime=0))
    assert zipped.headers["cache-control"] == "max-age=60"
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == FEED
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert client.get(feeds.url("/nope.xml")).status_code == 404
    with FeedServer(gzip=False) as no_gzip:
        response = client.get(no_gzip.add("/f", FEED), headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in response.headers and response.content == FEED


def test_files_and_directories(tmp_path: Path, client: httpx.Client) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "rss.xml").write_bytes(FEED)
    (tmp_path / "sub" / "atom.xml").write_bytes(ATOM)
    with FeedServer.from_dir(tmp_path) as server:
        assert client.get(server.url("/rss.xml")).content == FEED
        atom = client.get(server.url("/sub/atom.xml"))
        assert atom.content == ATOM and atom.headers["content-type"].startswith("application/atom+xml")
        assert server.add_dir("/mirror/", tmp_path) == [server.url("/mirror/rss.xml"),
                                                        server.url("/mirror/sub/atom.xml")]
        assert client.get(server.url("/mirror/sub/atom.xml")).content == ATOM
        server.add_file("/x.xml", tmp_path / "rss.xml")
        assert client.get(server.url("/x.xml")).content == FEED


def test_status_redirect_and_loop(feeds: FeedServer, client: httpx.Client) -> None:
    feeds.add("/new.xml", FEED)
    feeds.fault("/busy.xml", "status", status=503, headers={"Retry-After": "120"})
    busy = client.get(feeds.url("/busy.xml"))
    assert busy.status_code == 503 and busy.headers["retry-after"] == "120"

    feeds.fault("/old.xml", "redirect", to="/new.xml", status=308)
    moved = client.get(feeds.url("/old.xml"))
    assert moved.status_code == 308 and moved.headers["location"] == feeds.url("/new.xml")
    followed = client.get(feeds.url("/old.xml"), follow_redirects=True)
    assert followed.content == FEED and [r.status_code for r in followed.history] == [308]

    feeds.fault("/loop.xml", "redirect_loop")
    with pytest.raises(httpx.TooManyRedirects):
        client.get(feeds.url("/loop.xml"), follow_redirects=True)

    feeds.clear_fault("/busy.xml")
    assert client.get(feeds.url("/busy.xml")).status_code == 404
    with pytest.raises(ValueError):
        feeds.fault("/x", "nonsense")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        feeds.fault("/x", "drip", intervall=1)


def test_hang_times_out(feeds: FeedServer, client: httpx.Client) -> None:
    feeds.fault("/hang.xml", "hang")
    with pytest.raises(httpx.ReadTimeout):
        client.get(feeds.url("/hang.xml"), timeout=0.3)
    assert feeds.hits["/hang.xml"] == 1


def test_drip_and_slow_headers(feeds: FeedServer, client: httpx.Client) -> None:
    feeds.add("/drip.xml", b"<rss/>")
    feeds.fault("/drip.xml", "drip", interval=0.05)
    started = time.monotonic()
    with client.stream("GET", feeds.url("/drip.xml"), headers={"Accept-Encoding": "identity"}) as response:
        assert response.status_code == 200 and time.monotonic() - started < 0.2  # headers at once
        assert response.read() == b"<rss/>"
    assert time.monotonic() - started >= 5 * 0.05

    feeds.fault("/slow.xml", "slow_headers", interval=0.05, count=3)
    started = time.monotonic()
    assert client.get(feeds.url("/slow.xml")).content.startswith(b"<?xml")  # the default small feed
    assert time.monotonic() - started >= 3 * 0.05
    feeds.fault("/slow.xml", "slow_headers", interval=0.5, count=3)
    with pytest.raises(httpx.ReadTimeout):
        client.get(feeds.url("/slow.xml"), timeout=0.2)


def test_reset_and_truncate(feeds: FeedServer, client: httpx.Client) -> None:
    feeds.add("/feed.xml", FEED * 50)
    feeds.fault("/feed.xml", "reset")
    with pytest.raises(httpx.TransportError):
        client.get(feeds.url("/feed.xml"), headers={"Accept-Encoding": "identity"})
    feeds.fault("/feed.xml", "truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(feeds.url("/feed.xml"))


def test_gzip_bomb_huge_and_html(feeds: FeedServer, client: httpx.Client) -> None:
    size = 8 * 2**20
    feeds.fault("/bomb.xml", "gzip_bomb", size=size)
    with client.stream("GET", feeds.url("/bomb.xml"), headers={"Accept-Encoding": "identity"}) as response:
        assert response.headers["content-encoding"] == "gzip"
        assert int(response.headers["content-length"]) < size // 500
        inflated = response.read()
    assert len(inflated) == size and inflated.startswith(b"<?xml")

    feeds.fault("/huge.xml", "huge", size=3 * 2**20 + 7)
    with client.stream("GET", feeds.url("/huge.xml")) as response:
        assert "content-length" not in response.headers
        received = b"".join(response.iter_bytes())
    assert len(received) == 3 * 2**20 + 7 and received.count(b"<item>") > 1000

    feeds.fault("/feed.xml", "html")
    page = client.get(feeds.url("/feed.xml"))
    assert page.headers["content-type"].startswith("text/html")
    assert feedparser.parse(page.content).bozo


def test_stop_is_prompt_with_hung_request() -> None:
    server = FeedServer().start()
    server.fault("/hang.xml", "hang")
    outcome: list[BaseException | int] = []

    def fetch() -> None:
        try:
            outcome.append(httpx.get(server.url("/hang.xml"), timeout=None).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while not server.hits["/hang.xml"] and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(timeout=2)
    assert outcome and isinstance(outcome[0], httpx.TransportError)  # the client is let go too


# --------------------------------------------------------------------------- LibreTranslateServer

@pytest.fixture
def libre() -> Iterator[LibreTranslateServer]:
    with LibreTranslateServer({("ja", "en", JA): EN, ("en", "ja", EN): JA}, api_key="k") as server:
        yield server


def translator(server: LibreTranslateServer, source: str = "ja", key: str = "k") -> LibreTranslator:
    return LibreTranslator(source=source, target="en", custom_url=server.url, api_key=key)


def test_deep_translator_round_trip_and_counters(libre: LibreTranslateServer) -> None:
    assert libre.url == f"http://127.0.0.1:{libre.port}/"
    assert translator(libre).translate(JA) == EN
    assert translator(libre, source="auto").translate(JA) == EN
    assert libre.requests == 2 and libre.characters == 2 * len(JA) and libre.texts == [JA, JA]
    with pytest.raises(AuthorizationException):
        translator(libre, key="wrong").translate(JA)
    with pytest.raises(ServerException):  # unknown text: 400
        translator(libre).translate("知らない文")
    assert libre.requests == 4


def test_bodies_languages_echo_and_jsonl(libre: LibreTranslateServer, tmp_path: Path) -> None:
    url = libre.url + "translate"
    form = requests.post(url, data={"q": EN, "source": "en", "target": "ja", "api_key": "k"}, timeout=5)
    as_json = requests.post(url, json={"q": EN, "source": "en", "target": "ja", "api_key": "k"}, timeout=5)
    assert form.json() == as_json.json() == {"translatedText": JA}
    auto = requests.post(url, json={"q": JA, "source": "auto", "target": "en", "api_key": "k"}, timeout=5)
    assert auto.json()["detectedLanguage"]["language"] == "ja"
    unknown = requests.post(url, json={"q": "?", "source": "ja", "target": "en", "api_key": "k"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json() == {"error": "unknown text"}
    languages = requests.get(libre.url + "languages", timeout=5).json()
    assert {"code": "ja", "name": "Japanese"} in languages and {"code": "en", "name": "English"} in languages

    rows = tmp_path / "translations.jsonl"
    rows.write_text(json.dumps({"source": "ja", "target": "en", "text": JA, "translation": EN},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    with LibreTranslateServer.from_jsonl(rows, unknown="echo") as echoing:
        assert translator(echoing, key="any").translate(JA) == EN
        assert translator(echoing, key="any").translate("別の文") == pseudo_translation("別の文", "en")


def test_libre_status_faults(libre: LibreTranslateServer) -> None:
    libre.fault = "429"
    limited = requests.post(libre.url + "translate", params={"q": JA, "source": "ja", "target": "en"}, timeout=5)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    libre.fault = "500"
    with pytest.raises(ServerException):
        translator(libre).translate(JA)
    libre.fault = "403"
    with pytest.raises(AuthorizationException):
        translator(libre).translate(JA)
    libre.fault = "malformed"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        translator(libre).translate(JA)
    libre.fault = "reset"
    with pytest.raises(requests.exceptions.ConnectionError):
        translator(libre).translate(JA)
    libre.fault = None
    assert translator(libre).translate(JA) == EN
    with pytest.raises(ValueError):
        libre.fault = "teapot"  # type: ignore[assignment]


def test_libre_fault_plans(libre: LibreTranslateServer) -> None:
    libre.fail_first(2, "500")
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(translator(libre).translate(JA))
        except ServerException:
            outcomes.append("failed")
    assert outcomes == ["failed", "failed", EN] and libre.requests == 3
    libre.fault = lambda n: "429" if n % 2 else None
    assert translator(libre).translate(JA) == EN
    with pytest.raises(ServerException):
        translator(libre).translate(JA)


def test_libre_slow_hang_and_url_length(libre: LibreTranslateServer) -> None:
    libre.delay = 0.2
    libre.fault = "slow"
    started = time.monotonic()
    assert translator(libre).translate(JA) == EN
    assert time.monotonic() - started >= 0.2

    libre.fault = "hang"
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(libre.url + "translate", params={"q": JA, "source": "ja", "target": "en"}, timeout=0.5)

    libre.fault = None
    libre.max_url_length = 200
    with pytest.raises(ServerException):  # the query string carries q: 414
        translator(libre).translate(JA * 10)
    long_in_body = requests.post(libre.url + "translate", timeout=5,
                                 json={"q": JA * 10, "source": "ja", "target": "en", "api_key": "k"})
    assert long_in_body.status_code == 400  # not 414: only the URL counts; the text is unknown


def test_libre_stop_is_prompt_with_hung_request() -> None:
    server = LibreTranslateServer(unknown="echo").start()
    server.fault = "hang"
    thread = threading.Thread(target=lambda: pytest.raises(requests.exceptions.ConnectionError,
                                                           translator(server, key="x").translate, JA),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(timeout=2)
    assert not thread.is_alive()
