"""Machine translation behind our own interface: providers through deep-translator
(DeepL through its official client), each call bounded in time, a provider chain,
rate limits, splitting of long texts, a glossary, and a cache in the store so that
no text is ever sent twice.

The providers live in :mod:`aggregator.translating.providers`, the pure text helpers in
:mod:`aggregator.translating.text`; this module is the chain. See docs/translation.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aggregator.answers import banner_kind, not_a_translation
from aggregator.exceptions import TranslationError
from aggregator.translating.memory import Memory
from aggregator.translating.providers import Provider, _classify, make_provider
from aggregator.translating.text import (
    apply_glossary,
    fit_pieces,
    join_pieces,
    split_text,
)

log = logging.getLogger(__name__)

MEMORY = "memory"  # the "provider" of a translation found in translation.memory


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
    memory_hits: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)  # provider -> its last failure this cycle

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
# A provider that answered with its quota message (MyMemory's daily limit) is not asked
# again for this long.
BANNER_REST = 3600.0
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
                 now: Callable[[], datetime] | None = None, memory: Memory | None = None):
        self.providers = list(providers)
        self.memory = memory
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
        if self.memory is not None:
            # Human translations win over the cache and every provider: by the exact
            # source text, then by the text after the glossary.
            human = self.memory.lookup(text, source, target) or self.memory.lookup(prepared, source, target)
            if human is not None:
                self.stats.memory_hits += 1
                return human, MEMORY
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
                    self.stats.last_error[provider.name] = str(e)
                self._rest(i, e)
                # Per text, so DEBUG: the cycle says once per provider what failed (WARNING).
                log.debug("translation: %s", e)
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
        result = str(box["result"])
        why = not_a_translation(text, result, source, target)
        if why is not None:
            # A failure of this provider, like an HTTP error: the next one is asked, and
            # nothing is cached. MyMemory's quota warning rests it like a 429 would.
            kind = banner_kind(text, result) or "bad_answer"
            raise TranslationError(f"{provider.name}: answered {why}", provider=provider.name, kind=kind,
                                   retryable=kind != "language",
                                   retry_after=BANNER_REST if kind == "quota" else None)
        return result

    def _rest(self, i: int, e: TranslationError) -> None:
        now = self.clock()
        if e.retry_after:
            self.rest_until[i] = now + min(e.retry_after, MAX_REST)
            self.rest_reason[i] = f"{e.kind}: asked to wait {e.retry_after:.0f} s"
        elif e.kind in ("timeout", "connection"):
            self.rest_until[i] = now + REST_UNREACHABLE
            # The cause itself, so that every text skipped meanwhile says what is wrong.
            self.rest_reason[i] = str(e).removeprefix(f"{e.provider}: ") if e.provider else str(e)
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
                     now: Callable[[], datetime] | None = None, memory: Memory | None = None) -> Translator:
    """A :class:`Translator` for ``cfg`` (a ``TranslationConfig``), with ``memory`` (the
    loaded ``translation.memory``) in front. Providers that cannot be built (a missing
    optional package) are left out with a warning."""
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
                      glossary=dict(cfg.glossary), clock=clock, now=now, memory=memory)


def chain_signature(cfg: Any, memory: Memory | None = None) -> str:
    """What identifies a translation setup (providers, their servers, target, glossary,
    the memory's content): entries that failed for good are tried again when it changes."""
    import hashlib
    import json

    data: list[Any] = [cfg.target, [[p.provider, p.url or "", bool(p.api_key)] for p in cfg.providers],
                       sorted(cfg.glossary.items())]
    if memory is not None:
        data.append(memory.digest)
    return hashlib.sha1(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]
