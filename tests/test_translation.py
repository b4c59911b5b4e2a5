"""Translation through deep-translator's real LibreTranslate client, against a loopback
server that speaks the protocol; the cache is the real SQLite store."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from loopback import DeepLServer, LibreTranslateServer, pseudo_translation

from aggregator.config import ProviderConfig
from aggregator.exceptions import TranslationError
from aggregator.store import Store
from aggregator.translating.chain import RateLimiter, Translator
from aggregator.translating.providers import make_provider
from aggregator.translating.text import apply_glossary, split_text

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


def _call_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("translate-")}


def test_calls_reuse_a_thread_and_one_that_overran_ends_with_its_call(store: Store) -> None:
    before = _call_threads()
    with LibreTranslateServer(TABLE) as srv:
        t = translator(store, srv.url)
        t.translate("こんにちは。", "ja", "en")
        first = _call_threads() - before
        t.translate("ありがとう。", "ja", "en")
        assert srv.requests == 2
        assert _call_threads() - before == first and len(first) == 1  # the same thread, kept
        t.close()
        deadline = time.monotonic() + 5
        while _call_threads() - before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _call_threads() - before  # closed: the idle thread ended
    with LibreTranslateServer(TABLE) as dead, LibreTranslateServer(TABLE) as good:
        dead.fault = "hang"
        t = translator(store, dead.url, good.url, timeout=0.5)
        assert t.translate("Blinkenが来た。", "ja", "en") == ("Blinken came.", "libre")
        stuck = [th for th in _call_threads() - before if th.is_alive()]
        assert stuck  # the call that overran still holds its thread, told to end after it
        t.close()
    deadline = time.monotonic() + 10
    while _call_threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _call_threads() - before  # the overrun thread ended with its call (server gone)


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
        # every accepted piece's translation is in the answer
        got = [q for q in srv.texts if pseudo_translation(q, "en") in out]
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
        t = translator(store, srv.url, now=lambda: datetime(2024, 5, 1, tzinfo=UTC))
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


# -- faults, one by one, on the LibreTranslate protocol -----------------------------------------


def test_a_slow_answer_within_the_timeout_is_taken_and_one_beyond_it_is_not(store: Store) -> None:
    with LibreTranslateServer(TABLE, delay=0.3) as slow, LibreTranslateServer(TABLE) as good:
        slow.fault = "slow"
        t = translator(store, slow.url, good.url, timeout=2.0)
        assert t.translate("こんにちは。", "ja", "en") == ("Hello.", "libre")
        assert (slow.requests, good.requests) == (1, 0)
        slow.delay = 5.0
        t0 = time.monotonic()
        assert t.translate("ありがとう。", "ja", "en")[0] == "Thank you."
        assert time.monotonic() - t0 < 2.0 + 1.5
        assert (slow.requests, good.requests) == (2, 1)


def test_a_provider_that_timed_out_is_skipped_for_the_rest_of_the_cycle(store: Store) -> None:
    sentences = [f"文{i}。" for i in range(6)]
    table = {("ja", "en", s): f"S{i}." for i, s in enumerate(sentences)}
    with LibreTranslateServer(table) as dead, LibreTranslateServer(table) as good:
        dead.fault = "hang"
        t = translator(store, dead.url, good.url, timeout=1.0)
        t0 = time.monotonic()
        assert [t.translate(s, "ja", "en")[0] for s in sentences] == [f"S{i}." for i in range(6)]
        # one timeout for the whole batch, not one per text
        assert time.monotonic() - t0 < 1.0 * 2 + 1.5
        assert dead.requests == 1 and good.requests == 6
        assert t.stats.requests == {"libre": 7}


def test_connection_reset_and_refused_are_retryable_connection_errors(store: Store) -> None:
    with LibreTranslateServer(TABLE) as srv:
        srv.fault = "reset"
        with pytest.raises(TranslationError) as reset:
            translator(store, srv.url).translate("こんにちは。", "ja", "en")
    with pytest.raises(TranslationError) as refused:
        translator(store, "http://127.0.0.1:9/").translate("こんにちは。", "ja", "en")
    for e in (reset.value, refused.value):
        assert e.retryable and e.kind == "connection"


def test_an_unknown_text_http_400_is_not_retryable_and_says_why(store: Store) -> None:
    with LibreTranslateServer({}) as srv, pytest.raises(TranslationError) as got:
        translator(store, srv.url).translate("こんにちは。", "ja", "en")
    assert not got.value.retryable and got.value.kind == "rejected"
    assert "libre: HTTP 400: unknown text" in str(got.value)


def test_a_language_the_client_refuses_is_permanent_and_never_reaches_the_server(store: Store) -> None:
    with LibreTranslateServer(TABLE) as srv:
        t = translator(store, srv.url)
        for text in ("nuqneH.", "Qapla'."):
            with pytest.raises(TranslationError) as got:
                t.translate(text, "tlh", "en")
            assert not got.value.retryable and got.value.kind == "language"
        assert srv.requests == 0


def test_one_provider_refusing_for_good_while_another_is_down_stays_retryable(store: Store) -> None:
    with LibreTranslateServer({}) as refuses, LibreTranslateServer(TABLE) as down:
        down.fault = "500"
        with pytest.raises(TranslationError) as got:
            translator(store, refuses.url, down.url).translate("こんにちは。", "ja", "en")
    assert got.value.retryable  # the one that is down may answer later


def test_http_date_retry_after_is_understood() -> None:
    from aggregator.sources.fetch import parse_retry_after

    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("Wed, 01 May 2024 12:02:00 GMT", now) == 120
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None


# -- rate limits from the config ---------------------------------------------------------------


def test_a_configured_request_limit_passes_the_text_to_the_next_provider_when_the_wait_is_long(store: Store) -> None:
    from aggregator.config import TranslationConfig
    from aggregator.translating.chain import build_translator

    clock = [0.0]
    with LibreTranslateServer(TABLE) as a, LibreTranslateServer(TABLE) as b:
        cfg = TranslationConfig(timeout="5s", providers=(
            ProviderConfig(provider="libre", url=a.url, requests_per_minute=1),
            ProviderConfig(provider="libre", url=b.url)))
        t = build_translator(cfg, store, clock=lambda: clock[0])
        assert t.translate("こんにちは。", "ja", "en")[0] == "Hello."
        # a's next slot is 60 s away, longer than the timeout: b answers, a rests until then
        assert t.translate("ありがとう。", "ja", "en")[0] == "Thank you."
        assert (a.requests, b.requests) == (1, 1)
        assert t.rest_until[0] == pytest.approx(60, abs=1)
        clock[0] = 61.0
        assert t.translate("Blinkenが来た。", "ja", "en")[0] == "Blinken came."
        assert (a.requests, b.requests) == (2, 1)


def test_a_configured_character_limit_waits_when_the_wait_is_short(store: Store) -> None:
    from aggregator.config import TranslationConfig
    from aggregator.translating.chain import build_translator

    clock = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    with LibreTranslateServer(unknown="echo") as a:
        cfg = TranslationConfig(timeout="5s", providers=(
            ProviderConfig(provider="libre", url=a.url, characters_per_minute=60),))
        t = build_translator(cfg, store, clock=lambda: clock[0])
        t.sleep = sleep
        t.translate("あ" * 6, "ja", "en")
        t.translate("い" * 58, "ja", "en")  # 54 characters left in the bucket: 4 s to wait
        assert a.requests == 2 and slept == [pytest.approx(4.0)]


# -- DeepL through its official client, against a loopback v2 API ---------------------------------


def deepl_translator(store: Store, srv: DeepLServer, *more: str, key: str = "test-key", timeout: float = 2.0) -> Translator:
    providers = [make_provider(ProviderConfig(provider="deepl", api_key=key, url=srv.url))]
    providers += [make_provider(ProviderConfig(provider="libre", url=u)) for u in more]
    return Translator(providers, store, timeout=timeout)


def test_deepl_translates_through_the_official_client_and_sends_nothing_twice(store: Store) -> None:
    import deepl

    with DeepLServer(TABLE) as srv:
        t = deepl_translator(store, srv)
        assert t.translate("こんにちは。", "ja", "en") == ("Hello.", "deepl")
        assert t.translate("こんにちは。", "ja", "en") == ("Hello.", "deepl")
        assert (srv.requests, srv.characters) == (1, 6)
        usage = deepl.Translator("test-key", server_url=srv.url).get_usage()
        assert usage.character.count == 6


@pytest.mark.parametrize("fault,kind", [("429", "rate"), ("500", "server"), ("503", "server"), ("456", "quota"),
                                        ("403", "auth"), ("malformed", "bad_answer"), ("reset", "connection")])
def test_deepl_faults_cost_one_request_and_fall_through(store: Store, fault: str, kind: str) -> None:
    with DeepLServer(TABLE, retry_after=120) as srv, LibreTranslateServer(TABLE) as good:
        srv.fault = fault
        t = deepl_translator(store, srv, good.url)
        assert t.translate("こんにちは。", "ja", "en") == ("Hello.", "libre")
        # one request: the client's own retries (5, with backoff) are off, the chain decides
        assert srv.requests == 1 and good.requests == 1
        assert t.stats.failures == {"deepl": 1}
        if fault == "429":
            assert t.rest_until[0] - t.clock() == pytest.approx(120, abs=5)
        if fault == "456":
            assert t.rest_until[0] - t.clock() > 3000


def test_deepl_wrong_key_is_an_auth_failure(store: Store) -> None:
    with DeepLServer(TABLE) as srv, pytest.raises(TranslationError) as got:
        deepl_translator(store, srv, key="wrong").translate("こんにちは。", "ja", "en")
    assert got.value.kind == "auth" and "check api_key" in str(got.value)


def test_deepl_that_never_answers_is_bounded_by_our_timeout_not_its_own(store: Store) -> None:
    with DeepLServer(TABLE) as dead, LibreTranslateServer(TABLE) as good:
        dead.fault = "hang"
        t = deepl_translator(store, dead, good.url, timeout=1.0)
        t0 = time.monotonic()
        assert t.translate("こんにちは。", "ja", "en")[1] == "libre"
        assert time.monotonic() - t0 < 1.0 + 1.5  # the client alone would wait 10 s, five times
        assert dead.requests == 1


def test_deepl_language_codes() -> None:
    from aggregator.translating.providers import deepl_source, deepl_target

    assert (deepl_source("ja"), deepl_source("pt-BR"), deepl_source("auto")) == ("JA", "PT", None)
    assert (deepl_target("en"), deepl_target("pt"), deepl_target("en-GB"), deepl_target("de")) == (
        "EN-US", "PT-PT", "EN-GB", "DE")


# -- which providers can be built, and how they are limited ---------------------------------------


USABLE = {
    "google": {}, "mymemory": {"email": "me@example.org"}, "libre": {"url": "http://127.0.0.1:9/"},
    "deepl": {"api_key": "k:fx"}, "microsoft": {"api_key": "k", "region": "westeurope"},
    "yandex": {"api_key": "k"}, "baidu": {"api_key": "appid", "secret": "appkey"},
}


@pytest.mark.parametrize("name", sorted(USABLE))
def test_usable_providers_are_built_without_the_network(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("a provider touched the network while being built")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    p = make_provider(ProviderConfig(provider=name, **USABLE[name]))
    assert p.name == name and p.max_chars > 0
    if name != "microsoft":  # its client asks the network for its languages: made at the first call
        factory = getattr(p, "factory", None)
        if factory is not None:
            assert factory(p.codes("ja"), p.codes("en")) is not None  # type: ignore[attr-defined]


def test_provider_language_codes() -> None:
    def code(name: str, c: str) -> str:
        return make_provider(ProviderConfig(provider=name, **USABLE[name])).codes(c)  # type: ignore[attr-defined]

    assert (code("google", "zh"), code("google", "he"), code("google", "ja")) == ("zh-CN", "iw", "ja")
    assert (code("mymemory", "ja"), code("mymemory", "en"), code("mymemory", "de")) == ("ja-JP", "en-GB", "de-DE")
    assert (code("baidu", "ja"), code("baidu", "ko"), code("baidu", "fr"), code("baidu", "en")) == (
        "jp", "kor", "fra", "en")


@pytest.mark.parametrize("name", ["qcri", "papago", "chatgpt", "linguee", "pons"])
def test_providers_that_cannot_work_are_config_errors_with_the_reason(name: str) -> None:
    from aggregator.config import parse_config
    from aggregator.exceptions import ConfigError

    text = ("translation:\n  providers:\n    - {provider: google}\n"
            f"    - {{provider: {name}, api_key: k, secret: s}}\n"
            "sources:\n  - {id: a, url: 'https://a.example/feed', role: blog}\n")
    with pytest.raises(ConfigError) as got:
        parse_config(text, filename="c.yaml")
    assert f"c.yaml:4: translation.providers[1]: provider {name} cannot be used:" in str(got.value)


def test_pieces_respect_each_providers_limit_in_characters_and_in_the_url() -> None:
    from aggregator.translating.text import encoded_length, fit_pieces

    ja = "".join(f"これは{i}番目の、かなり長めの日本語の文です。" for i in range(400))
    en = " ".join(f"This is sentence number {i}, in English." for i in range(400))
    for name, limit in (("google", 5000), ("mymemory", 500), ("libre", None), ("baidu", None)):
        p = make_provider(ProviderConfig(provider=name, **USABLE[name]))
        for text in (ja, en):
            pieces = fit_pieces(text, p.max_chars, p.url_bytes)
            assert "".join(pieces) == text
            assert all(len(q) < (limit or 10**9) and len(q) <= p.max_chars for q in pieces)
            assert all(encoded_length(q) <= p.url_bytes for q in pieces)  # type: ignore[operator]
            if text is ja:
                assert all(q.endswith("。") for q in pieces[:-1])  # on sentence boundaries
    # a kanji takes 9 bytes in a URL, an English letter one: English goes in longer pieces
    libre = make_provider(ProviderConfig(provider="libre", url="http://127.0.0.1:9/"))
    assert max(map(len, fit_pieces(ja, libre.max_chars, libre.url_bytes))) <= 1000
    assert min(map(len, fit_pieces(en, libre.max_chars, libre.url_bytes)[:-1])) >= 1500


def test_japanese_sentences_split_after_closing_quotes() -> None:
    text = "彼は「行く。」と言った。" * 20
    pieces = split_text(text, 30)
    assert "".join(pieces) == text
    assert all(not q.startswith("」") for q in pieces)


def test_check_config_warns_when_deepl_is_configured_but_not_installed(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from click.testing import CliRunner

    from aggregator.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("translation: {providers: [{provider: deepl, api_key: k}, {provider: google}]}\n"
                   "sources:\n  - {id: a, url: 'https://a.example/feed', role: blog}\n")
    monkeypatch.setitem(sys.modules, "deepl", None)  # import deepl -> ImportError
    r = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert r.exit_code == 0
    assert "provider deepl will be left out: provider deepl needs the 'deepl' package" in r.output
