"""Machine translation behind our own interface: providers through deep-translator
(DeepL through its official client), each call bounded in time, a provider chain,
rate limits, splitting of long texts, a glossary, and a cache in the store so that
no text is ever sent twice.

Neither deep-translator nor DeepL's client can be given our timeout (the first sets
none, the second retries for a minute with its own), and deep-translator lets
connection errors escape as raw ``requests`` exceptions. So every request they make
goes through :func:`_send_bounded`, which caps its timeout and records its outcome,
and every failure becomes a :class:`TranslationError` saying what the chain should do
with it. See docs/translation.md.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Protocol
from urllib.parse import quote_plus

import requests

from aggregator.config import UNUSABLE_PROVIDERS, ProviderConfig
from aggregator.exceptions import TranslationError
from aggregator.sources.fetch import parse_retry_after

log = logging.getLogger(__name__)

# -- a timeout for every request the provider clients make ---------------------------------
_local = threading.local()
_original_send = requests.Session.send


def _cap(given: Any, bound: float) -> Any:
    """``given`` (None, seconds, or a (connect, read) pair) capped at ``bound``."""
    if given is None:
        return bound
    if isinstance(given, tuple):
        return tuple(bound if g is None else min(g, bound) for g in given)
    return min(given, bound)


def _send_bounded(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
    # Session.send is where every request of requests ends up (requests.get/post, a
    # Session's request(), DeepL's client calling send() itself), redirects included.
    bound = getattr(_local, "timeout", None)
    if bound is not None:
        kwargs["timeout"] = _cap(kwargs.get("timeout"), bound)
    try:
        resp = _original_send(self, request, **kwargs)
    except requests.RequestException as e:
        _local.last = e
        raise
    _local.last = resp
    return resp


if not getattr(requests.Session.send, "_aggregator", False):
    _send_bounded._aggregator = True  # type: ignore[attr-defined]
    requests.Session.send = _send_bounded  # type: ignore[method-assign]


@contextmanager
def _bounded(timeout: float) -> Iterator[None]:
    """Inside this block, every ``requests`` call of this thread waits at most ``timeout``
    to connect and for each read, whatever timeout the client asked for."""
    _local.timeout, _local.last = timeout, None
    try:
        yield
    finally:
        _local.timeout = None


def _last() -> requests.Response | BaseException | None:
    """The outcome of this thread's last request: a response or a requests exception."""
    return getattr(_local, "last", None)


# -- pure helpers -------------------------------------------------------------------------
# A sentence ends at 。！？!? (with any closing brackets or quotes after it), at .;: followed
# by a space, or at a line break; its trailing punctuation and spaces stay with it.
_SENTENCE = re.compile(r"[。！？!?]+[」』）】〕\"')\]]*\s*|[.;:]+[\"')\]]*\s+|\n+")


def split_text(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` on sentence boundaries
    (Japanese 。！？ included), falling back to spaces, then to a hard cut.
    Joining the pieces gives the text back."""
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
    for m in _SENTENCE.finditer(text):
        out.append(text[start:m.end()])
        start = m.end()
    out.append(text[start:])
    return out


def encoded_length(text: str) -> int:
    """Bytes ``text`` takes in a URL query (as requests encodes it)."""
    return len(quote_plus(text))


def fit_pieces(text: str, max_chars: int, max_encoded: int | None = None) -> list[str]:
    """:func:`split_text`, and for a protocol that puts the text in the URL, pieces whose
    percent-encoded size also fits ``max_encoded`` (a kanji takes 9 bytes there)."""
    pieces = split_text(text, max_chars)
    if max_encoded is None:
        return pieces
    out: list[str] = []
    for p in pieces:
        size = encoded_length(p)
        if size <= max_encoded or len(p) <= 1:
            out.append(p)
        else:
            out.extend(fit_pieces(p, max(1, len(p) * max_encoded // size), max_encoded))
    return out


def join_pieces(pieces: Sequence[str], target: str) -> str:
    if target.split("-")[0] in ("ja", "zh", "ko", "th"):
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
    url_bytes: int | None

    def translate(self, text: str, source: str, target: str, timeout: float) -> str: ...


# Front ends commonly refuse request lines over 8 KB; 6,000 bytes of percent-encoded text
# leave room for the rest of the URL (about 660 characters of Japanese, 5,000 of English).
URL_TEXT_BYTES = 6000


@dataclass
class DeepTranslatorProvider:
    """A deep-translator client made per language pair, called with a timeout.

    ``codes`` maps our ISO 639-1 codes to the provider's. A language pair the client
    refuses (a non-retryable error, found without the network) is remembered, so that
    the other texts of the cycle do not ask again."""

    name: str
    max_chars: int
    factory: Callable[[str, str], Any]
    url_bytes: int | None = None
    codes: Callable[[str], str] = lambda code: code
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _refused: dict[tuple[str, str], TranslationError] = field(default_factory=dict)

    def translate(self, text: str, source: str, target: str, timeout: float) -> str:
        pair = (source, target)
        if pair in self._refused:
            raise self._refused[pair]
        try:
            with _bounded(timeout):
                client = self._clients.get(pair)
                if client is None:
                    client = self._clients[pair] = self.factory(self.codes(source), self.codes(target))
                result = client.translate(text)
        except TranslationError:
            raise
        except Exception as e:
            err = _classify(self.name, e)
            if err.kind == "language":
                self._refused[pair] = err
            raise err from None
        if not isinstance(result, str) or not result.strip():
            raise TranslationError(f"{self.name}: empty answer", provider=self.name, kind="bad_answer")
        return result


class DeepLProvider:
    """DeepL through its official client (deep-translator's DeepL client uses an API form
    DeepL has removed). Optional: ``pip install 'aggregator[deepl]'``."""

    name = "deepl"
    max_chars = 30_000  # DeepL takes request bodies up to 128 KiB
    url_bytes: int | None = None

    def __init__(self, api_key: str, url: str | None = None):
        try:
            import deepl
        except ImportError:
            raise TranslationError("provider deepl needs the 'deepl' package: pip install 'aggregator[deepl]'",
                                   provider="deepl", retryable=False, kind="error") from None
        # The client retries 429, 5xx and timeouts five times with backoff of its own; the
        # chain does that (next provider, Retry-After), so one call must be one request.
        deepl.http_client.max_network_retries = 0
        # server_url keeps its trailing slash: the client joins "v2/translate" onto it.
        # Without a url the client picks api-free.deepl.com for ":fx" keys, else api.deepl.com.
        self._client = deepl.Translator(api_key, server_url=url, send_platform_info=False)

    def translate(self, text: str, source: str, target: str, timeout: float) -> str:
        try:
            with _bounded(timeout):
                result = self._client.translate_text(text, source_lang=deepl_source(source),
                                                     target_lang=deepl_target(target))
        except Exception as e:
            raise _classify("deepl", e) from None
        answer = getattr(result, "text", None)
        if not isinstance(answer, str) or not answer.strip():
            raise TranslationError("deepl: empty answer", provider="deepl", kind="bad_answer")
        return answer


def deepl_source(code: str) -> str | None:
    """DeepL source languages have no variant (EN, PT, ZH); "auto" lets DeepL detect."""
    return None if code == "auto" else code.split("-")[0].upper()


def deepl_target(code: str) -> str:
    """DeepL wants EN-US/EN-GB and PT-PT/PT-BR, never bare EN or PT."""
    code = code.upper()
    return {"EN": "EN-US", "PT": "PT-PT"}.get(code, code)


def _by_name(table: dict[str, str]) -> dict[str, str]:
    """Our ISO codes -> a provider's codes, joined through deep-translator's language
    names (Google's table has ISO codes): Baidu says jp for ja, kor for ko, ..."""
    from deep_translator.constants import GOOGLE_LANGUAGES_TO_CODES as google

    return {google[name].split("-")[0].lower(): code for name, code in table.items() if name in google}


def _mapper(table: dict[str, str], fixed: dict[str, str] | None = None) -> Callable[[str], str]:
    fixed = fixed or {}

    def code(c: str) -> str:
        return fixed.get(c) or table.get(c) or c

    return code


def _mymemory_code(c: str) -> str:
    """MyMemory wants locale codes (ja-JP, en-GB): the one whose region is the language's
    own, else the first one of the language."""
    from deep_translator.constants import MY_MEMORY_LANGUAGES_TO_CODES as mm

    values = list(mm.values())
    if c in values or c == "auto":
        return c
    fixed = {"en": "en-GB", "zh": "zh-CN", "ja": "ja-JP", "ko": "ko-KR", "uk": "uk-UA", "he": "he-IL"}
    if c in fixed:
        return fixed[c]
    for v in values:
        if v.lower() == f"{c}-{c}":
            return v
    return next((v for v in values if v.lower().startswith(c + "-")), c)


def make_provider(cfg: ProviderConfig) -> Provider:
    """Build a provider from its config, without the network. Clients whose constructor
    touches the network (Microsoft's) are made at the first call, inside the timeout."""
    import deep_translator as dt
    from deep_translator.constants import BAIDU_LANGUAGE_TO_CODE

    name = cfg.provider
    if name in UNUSABLE_PROVIDERS:
        raise TranslationError(f"provider {name} cannot be used: {UNUSABLE_PROVIDERS[name]}",
                               provider=name, retryable=False)
    if name == "google":
        # The free web endpoint: text in the URL, under 5,000 characters.
        return DeepTranslatorProvider("google", 4_999, lambda s, t: dt.GoogleTranslator(source=s, target=t),
                                      url_bytes=URL_TEXT_BYTES, codes=_mapper({"zh": "zh-CN", "he": "iw", "jv": "jw"}))
    if name == "mymemory":
        # Text in the URL, under 500 characters.
        return DeepTranslatorProvider("mymemory", 499, lambda s, t: dt.MyMemoryTranslator(
            source=s, target=t, email=cfg.email), url_bytes=URL_TEXT_BYTES, codes=_mymemory_code)
    if name == "libre":
        # The LibreTranslate protocol as deep-translator speaks it puts the text in the
        # URL query of a POST: long texts get HTTP 414 from the server's front end.
        return DeepTranslatorProvider("libre", 2_000, lambda s, t: dt.LibreTranslator(
            source=s, target=t, custom_url=cfg.url, api_key=cfg.api_key or "-"), url_bytes=URL_TEXT_BYTES)
    if name == "deepl":
        assert cfg.api_key
        return DeepLProvider(cfg.api_key, cfg.url)
    if name == "microsoft":
        return DeepTranslatorProvider("microsoft", 10_000, lambda s, t: dt.MicrosoftTranslator(
            api_key=cfg.api_key, region=cfg.region, source=s, target=t),
            codes=_mapper({"zh": "zh-hans", "zh-CN": "zh-hans", "zh-TW": "zh-hant"}))
    if name == "yandex":
        return DeepTranslatorProvider("yandex", 9_999, lambda s, t: dt.YandexTranslator(
            api_key=cfg.api_key, source=s, target=t))
    if name == "baidu":
        # Text in the URL query; Baidu takes at most 6,000 bytes of UTF-8.
        return DeepTranslatorProvider("baidu", 2_000, lambda s, t: dt.BaiduTranslator(
            appid=cfg.api_key, appkey=cfg.secret, source=s, target=t),
            url_bytes=URL_TEXT_BYTES, codes=_mapper(_by_name(BAIDU_LANGUAGE_TO_CODE), {"zh-TW": "cht"}))
    raise TranslationError(f"unknown provider {name}", provider=name, retryable=False)


def _classify(provider: str, e: BaseException) -> TranslationError:
    """Turn whatever a client raised into our error, keeping what the chain needs: what
    went wrong, whether to retry, and how long the server asked us to wait.

    The HTTP status of the thread's last response decides first (clients disagree on
    exceptions, not on statuses); then the exception."""
    from deep_translator import exceptions as dx

    def err(message: str, kind: str, *, retryable: bool = True, retry_after: float | None = None,
            status: int | None = None) -> TranslationError:
        return TranslationError(f"{provider}: {message}", provider=provider, retryable=retryable,
                                retry_after=retry_after, kind=kind, status=status)

    last = _last()
    # DeepL wraps requests' exceptions; Microsoft's client swallows them and then fails
    # on the missing response: the request's own failure is what happened.
    cause: BaseException = e
    if isinstance(e.__cause__, requests.RequestException):
        cause = e.__cause__
    elif not isinstance(e, requests.RequestException) and isinstance(last, requests.RequestException):
        cause = last
    if isinstance(cause, requests.Timeout):
        return err("timed out", "timeout")
    if isinstance(cause, requests.ConnectionError):
        return err(f"connection failed: {_short(cause)}", "connection")
    if isinstance(cause, requests.RequestException):
        return err(f"request failed: {_short(cause)}", "connection")
    if isinstance(last, requests.Response) and last.status_code >= 400:
        status = last.status_code
        detail = _detail(last)
        if status == 429:
            return err(f"HTTP 429 too many requests{detail}", "rate", status=status,
                       retry_after=parse_retry_after(last.headers.get("Retry-After"), datetime.now(timezone.utc)) or 60.0)
        if status in (401, 403):
            return err(f"HTTP {status} authorization failed (check api_key){detail}", "auth", status=status)
        if status == 456:  # DeepL: the billing period's characters are used up
            return err(f"HTTP 456 quota exceeded{detail}", "quota", status=status, retry_after=3600.0)
        if status in (413, 414):
            return err(f"HTTP {status} text too long for one request", "too_long", status=status)
        if status >= 500:
            return err(f"HTTP {status}{detail}", "server", status=status,
                       retry_after=parse_retry_after(last.headers.get("Retry-After"), datetime.now(timezone.utc)))
        # 400, 404, ...: this request will not succeed as it is (unknown language, bad URL).
        return err(f"HTTP {status}{detail}", "rejected", retryable=False, status=status)
    if isinstance(e, (dx.LanguageNotSupportedException, dx.InvalidSourceOrTargetLanguage)):
        return err(f"language not supported: {_short(e).splitlines()[0][:120]}", "language", retryable=False)
    if isinstance(e, dx.ApiKeyException):
        return err("api_key missing", "auth")
    if isinstance(e, (dx.NotValidLength, dx.NotValidPayload)):
        return err(f"text not accepted ({type(e).__name__})", "rejected", retryable=False)
    if isinstance(e, dx.TooManyRequests):
        return err("too many requests", "rate", retry_after=60.0)
    if isinstance(e, dx.TranslationNotFound):
        return err("no translation in the answer", "bad_answer")
    if isinstance(e, ValueError):  # e.g. malformed JSON in the answer
        return err(f"malformed answer ({type(e).__name__})", "bad_answer")
    return err(f"{type(e).__name__}: {_short(e)}", "error")


def _detail(resp: requests.Response) -> str:
    """The server's own short explanation ({"error": ...} or {"message": ...}), if any."""
    try:
        data = resp.json()
    except ValueError:
        return ""
    if isinstance(data, dict):
        for key in ("error", "message", "detail", "error_msg"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                return f": {_short(Exception(value.strip()))[:120]}"
    return ""


def _short(e: BaseException) -> str:
    text = str(e)
    # requests puts the full URL (with query, so maybe an api_key) in its messages.
    text = re.sub(r"(api_key|key|auth_key|token|appkey|sign)=[^&\s'\"]+", r"\1=***", text, flags=re.I)
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
    """What a chain sent: requests and characters per provider (pieces of split texts
    count one request each), texts translated per provider, cache hits, failures."""

    requests: dict[str, int] = field(default_factory=dict)
    characters: dict[str, int] = field(default_factory=dict)
    texts: dict[str, int] = field(default_factory=dict)
    cache_hits: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    def count(self, provider: str, chars: int) -> None:
        self.requests[provider] = self.requests.get(provider, 0) + 1
        self.characters[provider] = self.characters.get(provider, 0) + chars

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_characters(self) -> int:
        return sum(self.characters.values())


# How long a provider is skipped after a failure that will not go away within a cycle:
# one that did not answer in time, could not be reached, or refused our key. One cycle
# so costs one timeout for a dead provider, not one per text.
REST_UNREACHABLE = 600.0
REST_AUTH = 3600.0
MAX_REST = 3600.0


class Translator:
    """Translate texts through a provider chain with a cache in front.

    On a timeout, connection error, 5xx, 429, auth failure (or anything else that one
    provider cannot do) the next provider is tried. A provider that timed out, could
    not be reached or refused the key is skipped for the rest of the cycle; one that
    answered 429 rests for its Retry-After; one that keeps failing rests with backoff.
    ``deadline`` bounds the whole of a cycle's work."""

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
        self.rest_reason: dict[int, str] = {}
        self._fails: dict[int, int] = {}
        self.stats = ChainStats()
        self.deadline: float | None = None

    def close(self) -> None:
        """Nothing to release: calls run in daemon threads that end with their socket timeout."""

    def cached(self, texts: Iterable[str], source: str, target: str) -> dict[str, tuple[str, str]]:
        prepared = {t: apply_glossary(t, self.glossary) for t in texts}
        hits = self.cache.cached_translations(prepared.values(), source, target)
        return {orig: hits[p] for orig, p in prepared.items() if p in hits}

    def translate(self, text: str, source: str, target: str) -> tuple[str, str]:
        """(translation, provider). Raises :class:`TranslationError` when no provider could;
        it is retryable unless every provider refused the text for good."""
        if not text.strip() or source == target:
            return text, "none"
        prepared = apply_glossary(text, self.glossary)
        hit = self.cache.cached_translations([prepared], source, target).get(prepared)
        if hit:
            self.stats.cache_hits += 1
            return hit
        errors: list[TranslationError] = []
        for i, provider in enumerate(self.providers):
            if self._time_left() <= 0:
                errors.append(TranslationError("translation time budget for this cycle is used up", kind="budget"))
                break
            rest = self.rest_until.get(i, 0) - self.clock()
            if rest > 0:
                errors.append(TranslationError(f"{provider.name}: skipped for {rest:.0f} s more "
                                               f"({self.rest_reason.get(i, 'earlier errors')})",
                                               provider=provider.name, kind="resting"))
                continue
            try:
                result = self._with_provider(i, provider, prepared, source, target)
            except TranslationError as e:
                errors.append(e)
                if e.retryable and e.kind != "limit":  # the provider is in trouble, not just this text
                    self.stats.failures[provider.name] = self.stats.failures.get(provider.name, 0) + 1
                self._rest(i, e)
                log.info("translation: %s", e)
                continue
            self._fails.pop(i, None)
            self.cache.cache_translation(prepared, source, target, result, provider.name, self.now())
            self.stats.texts[provider.name] = self.stats.texts.get(provider.name, 0) + 1
            return result, provider.name
        if not errors:
            raise TranslationError("no translation provider configured", retryable=False, kind="error")
        real = [e for e in errors if e.kind not in ("resting", "budget")]
        raise TranslationError("; ".join(str(e) for e in errors), retryable=any(e.retryable for e in errors),
                               kind=(real or errors)[0].kind)

    def _with_provider(self, i: int, provider: Provider, text: str, source: str, target: str) -> str:
        pieces = fit_pieces(text, provider.max_chars, getattr(provider, "url_bytes", None))
        out = []
        for piece in pieces:
            limiter = self.limits[i] if i < len(self.limits) else None
            if limiter is not None:
                wait = limiter.wait_time(len(piece))
                if wait > 0:
                    if wait > min(self.timeout, self._time_left()):
                        raise TranslationError(f"{provider.name}: own rate limit reached (next slot in {wait:.0f} s)",
                                               provider=provider.name, kind="limit", retry_after=wait)
                    self.sleep(wait)
                limiter.take(len(piece))
            out.append(self._call_splitting(provider, piece, source, target))
        return join_pieces(out, target) if len(out) > 1 else out[0]

    def _call_splitting(self, provider: Provider, text: str, source: str, target: str, depth: int = 0) -> str:
        """A server that says 414 (URI too long) or 413 gets the text in halves."""
        try:
            return self._call(provider, text, source, target)
        except TranslationError as e:
            if depth >= 4 or len(text) < 40 or e.kind != "too_long":
                raise
            halves = split_text(text, max(20, len(text) // 2 + 1))
            if len(halves) < 2:
                raise
            return join_pieces([self._call_splitting(provider, h, source, target, depth + 1) for h in halves], target)

    def _call(self, provider: Provider, text: str, source: str, target: str) -> str:
        timeout = max(0.1, min(self.timeout, self._time_left()))
        self.stats.count(provider.name, len(text))
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["result"] = provider.translate(text, source, target, timeout)
            except BaseException as e:  # handed to the caller below
                box["error"] = e
            finally:
                done.set()

        # A daemon thread, not a pool: a call stuck past its bound must not hold the
        # process at exit. The socket timeout bounds each read; this bounds the whole
        # call (a server that drips its answer byte by byte).
        threading.Thread(target=work, name=f"translate-{provider.name}", daemon=True).start()
        if not done.wait(timeout + 1.0):
            raise TranslationError(f"{provider.name}: no answer within {timeout:g} s",
                                   provider=provider.name, kind="timeout")
        if "error" in box:
            e = box["error"]
            raise e if isinstance(e, TranslationError) else _classify(provider.name, e)
        return str(box["result"])

    def _rest(self, i: int, e: TranslationError) -> None:
        now = self.clock()
        if e.retry_after:
            self.rest_until[i] = now + min(e.retry_after, MAX_REST)
            self.rest_reason[i] = f"{e.kind}: asked to wait {e.retry_after:.0f} s"
        elif e.kind in ("timeout", "connection"):
            self.rest_until[i] = now + REST_UNREACHABLE
            self.rest_reason[i] = "no answer earlier this cycle" if e.kind == "timeout" else "unreachable"
        elif e.kind == "auth":
            self.rest_until[i] = now + REST_AUTH
            self.rest_reason[i] = "authorization failed"
        elif e.retryable:
            fails = self._fails[i] = self._fails.get(i, 0) + 1
            # After repeated failures in a cycle, stop hammering the provider for a while.
            if fails >= 3:
                self.rest_until[i] = now + min(30 * 2 ** (fails - 3), 1800)
                self.rest_reason[i] = f"{fails} failures in a row"

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


def chain_signature(cfg: Any) -> str:
    """What identifies a translation setup (providers, their servers, target, glossary):
    entries that failed for good are tried again when it changes."""
    import hashlib
    import json

    data = [cfg.target, [[p.provider, p.url or "", bool(p.api_key)] for p in cfg.providers], sorted(cfg.glossary.items())]
    return hashlib.sha1(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]


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
