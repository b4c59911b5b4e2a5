"""Translation providers: deep-translator's clients and DeepL's, behind one protocol,
every failure classified as a :class:`TranslationError` that tells the chain what to do.

Neither deep-translator nor DeepL's client can be given our timeout, so their requests go
through :func:`aggregator._compat.bounded` (see docs/translation.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from aggregator import _compat
from aggregator.config import UNUSABLE_PROVIDERS, ProviderConfig
from aggregator.exceptions import TranslationError
from aggregator.sources.fetch import parse_retry_after

log = logging.getLogger(__name__)


log = logging.getLogger(__name__)


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
            with _compat.bounded(timeout):
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
            with _compat.bounded(timeout):
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
            return str(v)
    return str(next((v for v in values if v.lower().startswith(c + "-")), c))


def _dt() -> Any:
    """deep-translator, imported when a provider first translates: a cycle with nothing to
    translate (most of them) does not pay for its import (0.1-0.2 s: it brings bs4)."""
    import deep_translator

    return deep_translator


def make_provider(cfg: ProviderConfig) -> Provider:
    """Build a provider from its config, without the network. Clients whose constructor
    touches the network (Microsoft's) are made at the first call, inside the timeout."""
    _compat.install_requests_bound()

    name = cfg.provider
    if name in UNUSABLE_PROVIDERS:
        raise TranslationError(f"provider {name} cannot be used: {UNUSABLE_PROVIDERS[name]}",
                               provider=name, retryable=False)
    if name == "google":
        # The free web endpoint: text in the URL, under 5,000 characters.
        return DeepTranslatorProvider("google", 4_999, lambda s, t: _dt().GoogleTranslator(source=s, target=t),
                                      url_bytes=URL_TEXT_BYTES, codes=_mapper({"zh": "zh-CN", "he": "iw", "jv": "jw"}))
    if name == "mymemory":
        # Text in the URL, under 500 characters.
        return DeepTranslatorProvider("mymemory", 499, lambda s, t: _dt().MyMemoryTranslator(
            source=s, target=t, email=cfg.email), url_bytes=URL_TEXT_BYTES, codes=_mymemory_code)
    if name == "libre":
        # The LibreTranslate protocol as deep-translator speaks it puts the text in the
        # URL query of a POST: long texts get HTTP 414 from the server's front end.
        return DeepTranslatorProvider("libre", 2_000, lambda s, t: _dt().LibreTranslator(
            source=s, target=t, custom_url=cfg.url, api_key=cfg.api_key or "-"), url_bytes=URL_TEXT_BYTES)
    if name == "deepl":
        assert cfg.api_key
        return DeepLProvider(cfg.api_key, cfg.url)
    if name == "openai":
        from aggregator.translating.llm import OpenAIProvider

        assert cfg.model
        return OpenAIProvider(model=cfg.model, url=cfg.url, api_key=cfg.api_key,
                              temperature=cfg.temperature or 0.0, max_texts=cfg.max_texts_per_request,
                              max_characters=cfg.max_characters_per_request)
    if name == "microsoft":
        return DeepTranslatorProvider("microsoft", 10_000, lambda s, t: _dt().MicrosoftTranslator(
            api_key=cfg.api_key, region=cfg.region, source=s, target=t),
            codes=_mapper({"zh": "zh-hans", "zh-CN": "zh-hans", "zh-TW": "zh-hant"}))
    if name == "yandex":
        return DeepTranslatorProvider("yandex", 9_999, lambda s, t: _dt().YandexTranslator(
            api_key=cfg.api_key, source=s, target=t))
    if name == "baidu":
        from deep_translator.constants import BAIDU_LANGUAGE_TO_CODE

        # Text in the URL query; Baidu takes at most 6,000 bytes of UTF-8.
        return DeepTranslatorProvider("baidu", 2_000, lambda s, t: _dt().BaiduTranslator(
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

    last = _compat.last_outcome()
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
        return err(f"connection failed: {_connection_reason(cause)}", "connection")
    if isinstance(cause, requests.RequestException):
        return err(f"request failed: {_short(cause)}", "connection")
    if isinstance(last, requests.Response) and last.status_code >= 400:
        status = last.status_code
        detail = _detail(last)
        if status == 429:
            return err(f"HTTP 429 too many requests{detail}", "rate", status=status,
                       retry_after=parse_retry_after(last.headers.get("Retry-After"), datetime.now(UTC)) or 60.0)
        if status in (401, 403):
            return err(f"HTTP {status} authorization failed (check api_key){detail}", "auth", status=status)
        if status == 456:  # DeepL: the billing period's characters are used up
            return err(f"HTTP 456 quota exceeded{detail}", "quota", status=status, retry_after=3600.0)
        if status in (413, 414):
            return err(f"HTTP {status} text too long for one request", "too_long", status=status)
        if status >= 500:
            return err(f"HTTP {status}{detail}", "server", status=status,
                       retry_after=parse_retry_after(last.headers.get("Retry-After"), datetime.now(UTC)))
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


# A URL's query (or a request path's): requests puts the whole request URL in its
# messages, and for the GET protocols that is the text being translated, percent-encoded.
_QUERY = re.compile(r"((?:https?://|url: ?/)[^\s?'\"]*)\?[^\s'\")]*", re.I)


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
_HOST_PORT = re.compile(r"host='([^']+)', port=(\d+)")


def _connection_reason(e: BaseException) -> str:
    """What urllib3's nested message comes down to: ``127.0.0.1:5000: Connection refused``."""
    text = str(e)
    reason = _ERRNO.search(text)
    where = _HOST_PORT.search(text)
    if reason is None:
        return _short(e)
    prefix = f"{where.group(1)}:{where.group(2)}: " if where else ""
    return prefix + reason.group(1).strip()


def _short(e: BaseException) -> str:
    """An exception's message fit for a log line: no query strings (the text sent, an
    api_key), and short."""
    text = str(e)
    text = _QUERY.sub(r"\1", text)
    text = re.sub(r"(api_key|key|auth_key|token|appkey|sign)=[^&\s'\"]+", r"\1=***", text, flags=re.I)
    return text[:200]


# -- rate limiting ------------------------------------------------------------------------
