"""Translation through deep-translator's real LibreTranslate client, against a loopback
server that speaks the protocol; the cache is the real SQLite store."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aggregator.config import ProviderConfig
from aggregator.exceptions import TranslationError
from aggregator.loopback import LibreTranslateServer
from aggregator.storage import Store
from aggregator.translation import (
    RateLimiter,
    Translator,
    apply_glossary,
    make_provider,
    split_text,
)

TABLE = {("ja", "en", "こんにちは。"): "Hello.", ("ja", "en", "ありがとう。"): "Thank you.",
         ("ja", "en", "Blinkenが来た。"): "Blinken came."}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "s.sqlite3") as s:
        yield s


def translator(store: Store, *urls: str, timeout: float = 2.0, **kw: object) -> Translator:
    providers = [make_provider(ProviderConfig(provider="libre", url=u)) for u in urls]
    return Translator(providers, store, timeout=timeout, **kw)  # type: ignore[arg-type]


def test_translates_through_deep_translator_and_caches(store: Store) -> None:
    with LibreTranslateServer(TABLE) as srv:
        t = translator(store, srv.url)
        assert t.translate("こんにちは。", "ja", "en") == ("Hello.", "libre")
        assert t.translate("こんにちは。", "ja", "en") == ("Hello.", "libre")
        assert srv.requests == 1
    # across restarts: a new translator on the same store sends nothing
    with LibreTranslateServer(TABLE) as srv2:
        t2 = translator(store, srv2.url)
        assert t2.translate("こんにちは。", "ja", "en")[0] == "Hello."
        assert srv2.requests == 0


def test_never_answering_provider_is_bounded_and_the_next_one_answers(store: Store) -> None:
    with LibreTranslateServer(TABLE) as dead, LibreTranslateServer(TABLE) as good:
        dead.fault = "hang"
        t = translator(store, dead.url, good.url, timeout=1.0)
        t0 = time.monotonic()
        assert t.translate("ありがとう。", "ja", "en") == ("Thank you.", "libre")
        assert time.monotonic() - t0 < 3.0
        assert good.requests == 1


@pytest.mark.parametrize("fault", ["500", "429", "malformed", "reset", "403"])
def test_each_fault_falls_through_to_the_next_provider(store: Store, fault: str) -> None:
    with LibreTranslateServer(TABLE) as bad, LibreTranslateServer(TABLE) as good:
        bad.fault = fault
        t = translator(store, bad.url, good.url)
        assert t.translate("こんにちは。", "ja", "en")[0] == "Hello."
        assert bad.requests == 1 and good.requests == 1


def test_429_retry_after_rests_the_provider(store: Store) -> None:
    with LibreTranslateServer(TABLE, retry_after=120) as limited, LibreTranslateServer(TABLE) as good:
        limited.fault = "429"
        t = translator(store, limited.url, good.url)
        t.translate("こんにちは。", "ja", "en")
        t.translate("ありがとう。", "ja", "en")
        assert limited.requests == 1  # the second text did not knock again
        assert good.requests == 2
        assert t.rest_until[0] - t.clock() > 100


def test_all_providers_failing_raises_with_every_reason(store: Store) -> None:
    with LibreTranslateServer(TABLE) as a:
        a.fault = "500"
        with pytest.raises(TranslationError, match="libre: HTTP 500"):
            translator(store, a.url).translate("こんにちは。", "ja", "en")
        assert store.cached_translations(["こんにちは。"], "ja", "en") == {}


def test_connection_refused_is_our_error_not_a_requests_exception(store: Store) -> None:
    with pytest.raises(TranslationError, match="connection failed"):
        translator(store, "http://127.0.0.1:9/").translate("こんにちは。", "ja", "en")


def test_long_text_is_split_on_sentence_boundaries(store: Store) -> None:
    sentences = [f"文{i}です。" for i in range(300)]
    table = {("ja", "en", s): f"S{i}." for i, s in enumerate(sentences)}
    with LibreTranslateServer(table) as srv:
        # the table knows single sentences only: every piece must be one whole sentence
        t = translator(store, srv.url)
        t.providers[0].max_chars = 8  # type: ignore[attr-defined]
        out, _ = t.translate("".join(sentences), "ja", "en")
        assert out == " ".join(f"S{i}." for i in range(300))


def test_uri_too_long_answers_make_the_text_go_in_smaller_pieces(store: Store) -> None:
    text = "".join(f"これは{i}番目の文です。" for i in range(120))
    with LibreTranslateServer(unknown="echo", max_url_length=2000) as srv:
        t = translator(store, srv.url)
        out, _ = t.translate(text, "ja", "en")
        got = [q for q in srv.texts if out.count(q)]  # every accepted piece is in the answer
        assert "".join(got) == text
        assert all(q.endswith("。") for q in got)


def test_split_text_keeps_all_text_and_limits() -> None:
    text = "これは文です。" * 50 + "This is English. " * 40
    pieces = split_text(text, 100)
    assert "".join(pieces) == text
    assert all(len(p) <= 100 for p in pieces)


def test_glossary_is_applied_before_sending(store: Store) -> None:
    assert apply_glossary("ブリンケン国務長官", {"ブリンケン": "Blinken"}) == "Blinken国務長官"
    with LibreTranslateServer(TABLE) as srv:
        t = translator(store, srv.url, glossary={"ブリンケン": "Blinken"})
        assert t.translate("ブリンケンが来た。", "ja", "en")[0] == "Blinken came."
        assert srv.texts == ["Blinkenが来た。"]


def test_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    rl = RateLimiter(requests_per_minute=2, characters_per_minute=None, clock=lambda: now[0])
    assert rl.wait_time(10) == 0
    rl.take(10)
    rl.take(10)
    assert rl.wait_time(10) == pytest.approx(30)
    now[0] += 30
    assert rl.wait_time(10) == 0


def test_cache_records_provider_and_time(store: Store) -> None:
    with LibreTranslateServer(TABLE) as srv:
        t = translator(store, srv.url, now=lambda: datetime(2024, 5, 1, tzinfo=timezone.utc))
        t.translate("こんにちは。", "ja", "en")
    row = store.db.execute("SELECT provider, created FROM translation_cache").fetchone()
    assert row == ("libre", "2024-05-01T00:00:00Z")


def test_a_text_the_server_rejects_does_not_rest_the_provider(store: Store) -> None:
    with LibreTranslateServer(TABLE) as srv:  # unknown text -> HTTP 400
        t = translator(store, srv.url)
        for _ in range(4):
            with pytest.raises(TranslationError, match="HTTP 400"):
                t.translate("知らない文。", "ja", "en")
        assert t.translate("こんにちは。", "ja", "en") == ("Hello.", "libre")
        assert t.rest_until == {}
