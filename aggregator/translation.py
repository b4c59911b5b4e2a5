"""Machine translation behind our own interface: providers through deep-translator
(DeepL through its official client), each call bounded in time, a provider chain,
rate limits, splitting of long texts, a glossary, and a cache in the store so that
no text is ever sent twice.

deep-translator sets no HTTP timeout and lets connection errors escape as raw
``requests`` exceptions; :func:`_bounded` gives every request it makes a timeout
(see docs/translation.md) and every failure becomes a :class:`TranslationError`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator, Protocol

import requests

from aggregator.config import ProviderConfig
from aggregator.exceptions import TranslationError

log = logging.getLogger(__name__)

# -- a timeout for every request deep-translator makes -----------------------------------
_local = threading.local()
_original_request = requests.Session.request


def _request_with_timeout(self: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    timeout = getattr(_local, "timeout", None)
    if timeout is not None and kwargs.get("timeout") is None:
        kwargs["timeout"] = timeout
    resp = _original_request(self, method, url, **kwargs)
    _local.last_response = resp
    return resp


requests.Session.request = _request_with_timeout  # type: ignore[method-assign]


@contextmanager
def _bounded(timeout: float) -> Iterator[None]:
    """Inside this block, every ``requests`` call of this thread without an explicit
    timeout gets ``timeout`` (connect and each read)."""
    _local.timeout, _local.last_response = timeout, None
    try:
        yield
    finally:
        _local.timeout = None


def _last_retry_after() -> float | None:
    resp = getattr(_local, "last_response", None)
    if resp is None:
        return None
    value = resp.headers.get("Retry-After")
    if value and value.strip().isdigit():
        return float(value)
    return None


# -- pure helpers -------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[。！？!?])|(?<=[.;:])\s+|\n+")


def split_text(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` on sentence boundaries
    (Japanese 。！？ included), falling back to spaces, then to a hard cut."""
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in _split_keep(text) if s):
        if len(current) + len(sentence) <= max_chars:
            current += sentence
            continue
        if current:
            pieces.append(current)
            current = ""
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(sentence[:cut])
            sentence = sentence[cut:]
        current = sentence
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def _split_keep(text: str) -> list[str]:
    """Sentences with their trailing punctuation and whitespace kept, so joining
    the pieces gives the text back."""
    out, start = [], 0
    for m in re.finditer(r"[。！？!?]+\s*|[.;:]+\s+|\n+", text):
        out.append(text[start:m.end()])
        start = m.end()
    out.append(text[start:])
    return out


def join_pieces(pieces: Sequence[str], target: str) -> str:
    if target in ("ja", "zh", "ko"):
        return "".join(p.strip() for p in pieces)
    return " ".join(p.strip() for p in pieces)


def apply_glossary(text: str, glossary: dict[str, str]) -> str:
    """Replace glossary terms (longest first) so that names come out consistently."""
    for term in sorted(glossary, key=len, reverse=True):
        if term in text:
            text = text.replace(term, glossary[term])
    return text


# -- providers ----------------------------------------------------------------------------
class Provider(Protocol):
    name: str
    max_chars: int

    def translate(self, text: str, source: str, target: str, timeout: float) -> str: ...


_GOOGLE_CODES = {"zh": "zh-CN", "he": "iw"}
_MYMEMORY_CODES = {"en": "en-GB", "ja": "ja-JP", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "ru": "ru-RU",
                   "uk": "uk-UA", "zh": "zh-CN", "ko": "ko-KR", "it": "it-IT", "pt": "pt-PT", "pl": "pl-PL"}


@dataclass
class DeepTranslatorProvider:
    """A deep-translator client made per language pair, called with a timeout."""

    name: str
    max_chars: int
    factory: Callable[[str, str], Any]
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    def translate(self, text: str, source: str, target: str, timeout: float) -> str:
        try:
            with _bounded(timeout):
                client = self._clients.get((source, target))
                if client is None:
                    client = self._clients[(source, target)] = self.factory(source, target)
                result = client.translate(text)
        except TranslationError:
            raise
        except Exception as e:
            raise _classify(self.name, e) from None
        if not isinstance(result, str) or not result.strip():
            raise TranslationError(f"{self.name}: empty answer", provider=self.name)
        return result


class DeepLProvider:
    """DeepL through its official client (deep-translator's DeepL client uses an API form
    DeepL has removed). Optional: ``pip install aggregator[deepl]``."""

    max_chars = 30_000

    def __init__(self, api_key: str, url: str | None = None):
        try:
            import deepl  # type: ignore[import-not-found]
        except ImportError:
            raise TranslationError("provider deepl needs the 'deepl' package: pip install 'aggregator[deepl]'",
                                   provider="deepl", retryable=False) from None
        self.name = "deepl"
        self._deepl = deepl
        self._client = deepl.Translator(api_key, server_url=url.rstrip("/") if url else None)

    def translate(self, text: str, source: str, target: str, timeout: float) -> str:
        deepl = self._deepl
        tgt = {"en": "EN-US", "pt": "PT-PT"}.get(target, target.upper())
        try:
            with _bounded(timeout):
                return str(self._client.translate_text(text, source_lang=source.upper(), target_lang=tgt).text)
        except deepl.QuotaExceededException as e:
            raise TranslationError(f"deepl: quota exceeded: {e}", provider="deepl") from None
        except deepl.AuthorizationException as e:
            raise TranslationError(f"deepl: authorization failed: {e}", provider="deepl") from None
        except deepl.TooManyRequestsException as e:
            raise TranslationError(f"deepl: too many requests: {e}", provider="deepl", retry_after=60) from None
        except Exception as e:
            raise _classify("deepl", e) from None


def make_provider(cfg: ProviderConfig) -> Provider:
    """Build a provider from its config. Constructors that would touch the network
    (Microsoft's does) are deferred to the first call, inside the timeout."""
    import deep_translator as dt

    name = cfg.provider
    if name == "google":
        return DeepTranslatorProvider("google", 4_900, lambda s, t: dt.GoogleTranslator(
            source=_GOOGLE_CODES.get(s, s), target=_GOOGLE_CODES.get(t, t)))
    if name == "mymemory":
        return DeepTranslatorProvider("mymemory", 490, lambda s, t: dt.MyMemoryTranslator(
            source=_MYMEMORY_CODES.get(s, s), target=_MYMEMORY_CODES.get(t, t), email=cfg.email))
    if name == "libre":
        # LibreTranslate's protocol puts the text in the URL: long texts get HTTP 414.
        # 700 characters of Japanese are about 6 KB percent-encoded, under common 8 KB limits.
        return DeepTranslatorProvider("libre", 700, lambda s, t: dt.LibreTranslator(
            source=s, target=t, custom_url=cfg.url, api_key=cfg.api_key or "-"))
    if name == "deepl":
        assert cfg.api_key
        return DeepLProvider(cfg.api_key, cfg.url)
    if name == "microsoft":
        return DeepTranslatorProvider("microsoft", 9_000, lambda s, t: dt.MicrosoftTranslator(
            api_key=cfg.api_key, source=s, target=t))
    if name == "yandex":
        return DeepTranslatorProvider("yandex", 9_000, lambda s, t: dt.YandexTranslator(
            api_key=cfg.api_key, source=s, target=t))
    if name == "qcri":
        return DeepTranslatorProvider("qcri", 4_900, lambda s, t: dt.QcriTranslator(
            api_key=cfg.api_key, source=s, target=t))
    if name == "papago":
        return DeepTranslatorProvider("papago", 4_900, lambda s, t: dt.PapagoTranslator(
            client_id=cfg.api_key, secret_key=cfg.secret, source=s, target=t))
    if name == "baidu":
        return DeepTranslatorProvider("baidu", 4_900, lambda s, t: dt.BaiduTranslator(
            appid=cfg.api_key, appkey=cfg.secret, source=s, target=t))
    if name == "chatgpt":
        return DeepTranslatorProvider("chatgpt", 4_000, lambda s, t: dt.ChatGptTranslator(
            api_key=cfg.api_key, source=s, target=t))
    if name in ("linguee", "pons"):
        raise TranslationError(f"provider {name} is a dictionary (words only), not a text translator",
                               provider=name, retryable=False)
    raise TranslationError(f"unknown provider {name}", provider=name, retryable=False)


def _classify(provider: str, e: BaseException) -> TranslationError:
    """Turn whatever deep-translator or requests raised into our error, keeping what
    the chain needs: whether to retry and how long the server asked us to wait."""
    from deep_translator import exceptions as dx

    kind = type(e).__name__
    if isinstance(e, requests.Timeout):
        return TranslationError(f"{provider}: timed out", provider=provider)
    if isinstance(e, requests.ConnectionError):
        return TranslationError(f"{provider}: connection failed: {_short(e)}", provider=provider)
    if isinstance(e, dx.TooManyRequests):
        return TranslationError(f"{provider}: HTTP 429 too many requests", provider=provider,
                                retry_after=_last_retry_after() or 60.0)
    if isinstance(e, dx.AuthorizationException):
        return TranslationError(f"{provider}: authorization failed (check api_key)", provider=provider)
    if isinstance(e, dx.ServerException):
        status = getattr(e, "status_code", None) or _status_of_last()
        # A 4xx other than auth, timeout and rate limiting is about this text (the server
        # is healthy): the next provider may try it, but this one needs no rest.
        about_text = status is not None and 400 <= status < 500 and status not in (401, 403, 408, 429)
        return TranslationError(f"{provider}: HTTP {status or 'error'}", provider=provider,
                                retryable=not about_text,
                                retry_after=_last_retry_after() if status == 429 else None)
    if isinstance(e, dx.RequestError):
        return TranslationError(f"{provider}: HTTP {_status_of_last() or 'error'}", provider=provider)
    if isinstance(e, (dx.LanguageNotSupportedException, dx.InvalidSourceOrTargetLanguage)):
        return TranslationError(f"{provider}: language not supported: {_short(e)}", provider=provider)
    if isinstance(e, (dx.NotValidLength, dx.NotValidPayload)):
        return TranslationError(f"{provider}: text not accepted: {kind}", provider=provider)
    if isinstance(e, ValueError):  # e.g. malformed JSON in the answer
        return TranslationError(f"{provider}: malformed answer ({kind})", provider=provider)
    return TranslationError(f"{provider}: {kind}: {_short(e)}", provider=provider)


def _status_of_last() -> int | None:
    resp = getattr(_local, "last_response", None)
    return resp.status_code if resp is not None else None


def _short(e: BaseException) -> str:
    text = str(e)
    # requests puts the full URL (with query, so maybe an api_key) in its messages.
    text = re.sub(r"(api_key|key|auth_key|token)=[^&\s'\"]+", r"\1=***", text, flags=re.I)
    return text[:200]


# -- rate limiting ------------------------------------------------------------------------
class RateLimiter:
    """Requests and characters per minute for one provider (token buckets)."""

    def __init__(self, requests_per_minute: float | None, characters_per_minute: float | None,
                 clock: Callable[[], float] = time.monotonic):
        self.rpm, self.cpm, self.clock = requests_per_minute, characters_per_minute, clock
        now = clock()
        # (tokens, time of last refill); buckets start full.
        self._req = (requests_per_minute or 0.0, now)
        self._chr = (characters_per_minute or 0.0, now)

    def wait_time(self, chars: int) -> float:
        """Seconds until one request of ``chars`` characters may go (0 = now)."""
        waits = [0.0]
        if self.rpm:
            tokens, _ = self._refill(self._req, self.rpm)
            if tokens < 1:
                waits.append((1 - tokens) * 60 / self.rpm)
        if self.cpm:
            tokens, _ = self._refill(self._chr, self.cpm)
            need = min(chars, self.cpm)
            if tokens < need:
                waits.append((need - tokens) * 60 / self.cpm)
        return max(waits)

    def take(self, chars: int) -> None:
        if self.rpm:
            tokens, t = self._refill(self._req, self.rpm)
            self._req = (tokens - 1, t)
        if self.cpm:
            tokens, t = self._refill(self._chr, self.cpm)
            self._chr = (tokens - min(chars, self.cpm), t)

    def _refill(self, state: tuple[float, float], per_minute: float) -> tuple[float, float]:
        tokens, last = state
        now = self.clock()
        return min(per_minute, tokens + (now - last) * per_minute / 60), now


# -- the chain ----------------------------------------------------------------------------
class Cache(Protocol):
    def cached_translations(self, texts: Iterable[str], source: str, target: str) -> dict[str, tuple[str, str]]: ...
    def cache_translation(self, text: str, source: str, target: str, translation: str,
                          provider: str, now: datetime) -> None: ...


@dataclass
class ChainStats:
    requests: dict[str, int] = field(default_factory=dict)
    characters: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def count(self, provider: str, chars: int) -> None:
        self.requests[provider] = self.requests.get(provider, 0) + 1
        self.characters[provider] = self.characters.get(provider, 0) + chars


class Translator:
    """Translate texts through a provider chain with a cache in front.

    On a timeout, connection error, 5xx, 429 or auth failure the next provider is
    tried; a provider that answered 429 rests for its Retry-After; one that keeps
    failing rests with backoff. ``deadline`` bounds the whole of a cycle's work."""

    def __init__(self, providers: Sequence[Provider], cache: Cache, *, timeout: float,
                 limits: Sequence[RateLimiter | None] | None = None, glossary: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] | None = None):
        self.providers = list(providers)
        self.cache = cache
        self.timeout = timeout
        self.limits = list(limits) if limits else [None] * len(self.providers)
        self.glossary = glossary or {}
        self.clock, self.sleep = clock, sleep
        self.now = now or (lambda: datetime.now().astimezone())
        # Keyed by position in the chain: two servers of one protocol rest separately.
        self.rest_until: dict[int, float] = {}
        self.stats = ChainStats()
        self.deadline: float | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="translate")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def cached(self, texts: Iterable[str], source: str, target: str) -> dict[str, tuple[str, str]]:
        prepared = {t: apply_glossary(t, self.glossary) for t in texts}
        hits = self.cache.cached_translations(prepared.values(), source, target)
        return {orig: hits[p] for orig, p in prepared.items() if p in hits}

    def translate(self, text: str, source: str, target: str) -> tuple[str, str]:
        """(translation, provider). Raises :class:`TranslationError` when no provider could."""
        if not text.strip() or source == target:
            return text, "none"
        prepared = apply_glossary(text, self.glossary)
        hit = self.cache.cached_translations([prepared], source, target).get(prepared)
        if hit:
            self.stats.cache_hits += 1
            return hit
        errors: list[str] = []
        for i, provider in enumerate(self.providers):
            if self._time_left() <= 0:
                errors.append("translation time budget for this cycle is used up")
                break
            rest = self.rest_until.get(i, 0) - self.clock()
            if rest > 0:
                errors.append(f"{provider.name}: resting {rest:.0f} s after errors")
                continue
            try:
                result = self._with_provider(i, provider, prepared, source, target)
            except TranslationError as e:
                errors.append(str(e))
                if e.retryable:  # the provider is in trouble, not just this text
                    self.stats.failures[provider.name] = self.stats.failures.get(provider.name, 0) + 1
                    self._rest(i, provider.name, e)
                continue
            self.cache.cache_translation(prepared, source, target, result, provider.name, self.now())
            return result, provider.name
        raise TranslationError("; ".join(errors) or "no translation provider configured")

    def _with_provider(self, i: int, provider: Provider, text: str, source: str, target: str) -> str:
        pieces = split_text(text, provider.max_chars)
        out = []
        for piece in pieces:
            limiter = self.limits[i] if i < len(self.limits) else None
            if limiter is not None:
                wait = limiter.wait_time(len(piece))
                if wait > 0:
                    if wait > min(self.timeout, self._time_left()):
                        raise TranslationError(f"{provider.name}: rate limit reached (next slot in {wait:.0f} s)",
                                               provider=provider.name)
                    self.sleep(wait)
                limiter.take(len(piece))
            out.append(self._call_splitting(provider, piece, source, target))
        return join_pieces(out, target) if len(out) > 1 else out[0]

    def _call_splitting(self, provider: Provider, text: str, source: str, target: str, depth: int = 0) -> str:
        """A server that says 414 (URI too long) or 413 gets the text in halves."""
        try:
            return self._call(provider, text, source, target)
        except TranslationError as e:
            if depth >= 4 or len(text) < 40 or not re.search(r"HTTP 41[34]", str(e)):
                raise
            halves = split_text(text, max(20, len(text) // 2 + 1))
            if len(halves) < 2:
                raise
            return join_pieces([self._call_splitting(provider, h, source, target, depth + 1) for h in halves], target)

    def _call(self, provider: Provider, text: str, source: str, target: str) -> str:
        timeout = max(0.1, min(self.timeout, self._time_left()))
        self.stats.count(provider.name, len(text))
        future = self._pool.submit(provider.translate, text, source, target, timeout)
        try:
            # The socket timeout bounds each read; this bounds the whole call.
            return future.result(timeout=timeout + 1.0)
        except FutureTimeout:
            future.cancel()
            raise TranslationError(f"{provider.name}: no answer within {timeout:g} s",
                                   provider=provider.name) from None

    def _rest(self, i: int, name: str, e: TranslationError) -> None:
        if e.retry_after:
            self.rest_until[i] = self.clock() + min(e.retry_after, 3600)
        else:
            fails = self.stats.failures.get(name, 1)
            # After repeated failures in a cycle, stop hammering the provider for a while.
            if fails >= 3:
                self.rest_until[i] = self.clock() + min(30 * 2 ** (fails - 3), 1800)

    def _time_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - self.clock()


def build_translator(cfg: Any, cache: Cache, *, clock: Callable[[], float] = time.monotonic,
                     now: Callable[[], datetime] | None = None) -> Translator:
    """A :class:`Translator` for ``cfg`` (a ``TranslationConfig``). Providers that cannot
    be built (a missing optional package) are left out with a warning."""
    providers: list[Provider] = []
    limits: list[RateLimiter | None] = []
    for p in cfg.providers:
        try:
            providers.append(make_provider(p))
        except TranslationError as e:
            log.warning("translation provider %s left out: %s", p.provider, e)
            continue
        limits.append(RateLimiter(p.requests_per_minute, p.characters_per_minute, clock)
                      if (p.requests_per_minute or p.characters_per_minute) else None)
    return Translator(providers, cache, timeout=cfg.timeout.total_seconds(), limits=limits,
                      glossary=dict(cfg.glossary), clock=clock, now=now)


# -- what an entry needs translated (pure) -------------------------------------------------
@dataclass(frozen=True, slots=True)
class EntryTexts:
    """The texts of one entry that a reader sees, as plain-text paragraphs: markup is
    never sent to an engine as text."""

    title: str
    summary: tuple[str, ...]
    content: tuple[str, ...] = ()

    def all(self) -> list[str]:
        return [t for t in (self.title, *self.summary, *self.content) if t.strip()]

    def digest(self, target: str) -> str:
        import hashlib

        h = hashlib.sha1(target.encode())
        for t in (self.title, *self.summary, "\x1e", *self.content):
            h.update(t.encode("utf-8", "surrogatepass") + b"\x1f")
        return h.hexdigest()


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Backoff before retrying an entry's translation: base × 2^(attempts-1), capped."""
    return min(cap, base * 2 ** max(0, attempts - 1))
