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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aggregator.answers import banner_kind, not_a_translation
from aggregator.exceptions import TranslationError
from aggregator.translating.batch import BatchAnswer, BatchProvider, plan_batches
from aggregator.translating.memory import Memory
from aggregator.translating.providers import Provider, _classify, make_provider
from aggregator.translating.text import apply_glossary, fit_pieces, join_pieces, split_text
from aggregator.translating.threads import Threads

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
    # Tokens the servers said a request took (language models' ``usage``).
    prompt_tokens: dict[str, int] = field(default_factory=dict)
    completion_tokens: dict[str, int] = field(default_factory=dict)

    def count(self, provider: str, chars: int) -> None:
        self.requests[provider] = self.requests.get(provider, 0) + 1
        self.characters[provider] = self.characters.get(provider, 0) + chars

    def count_tokens(self, provider: str, prompt: int, completion: int) -> None:
        self.prompt_tokens[provider] = self.prompt_tokens.get(provider, 0) + prompt
        self.completion_tokens[provider] = self.completion_tokens.get(provider, 0) + completion

    def usage(self) -> dict[str, tuple[int, int, int, int]]:
        """provider -> (requests, characters, prompt tokens, completion tokens)."""
        return {p: (n, self.characters.get(p, 0), self.prompt_tokens.get(p, 0), self.completion_tokens.get(p, 0))
                for p, n in self.requests.items()}

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
        self.memory = memory
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
        self._threads = Threads()

    def close(self) -> None:
        """End the idle call threads (a call still running ends with its socket timeout)."""
        self._threads.close()

    def cached(self, texts: Iterable[str], source: str, target: str) -> dict[str, tuple[str, str]]:
        prepared = {t: apply_glossary(t, self.glossary) for t in texts}
        hits = self.cache.cached_translations(prepared.values(), source, target)
        return {orig: hits[p] for orig, p in prepared.items() if p in hits}

    def translate(self, text: str, source: str, target: str) -> tuple[str, str]:
        """(translation, provider). Raises :class:`TranslationError` when no provider could;
        it is retryable unless every provider refused the text for good."""
        return self.translate_many([text], source, target)[text]

    def translate_many(self, texts: Sequence[str], source: str, target: str) -> dict[str, tuple[str, str]]:
        """text -> (translation, provider) for each of ``texts`` (an entry's title, lead and
        paragraphs): from the cache, else through the chain, several texts per request for
        a provider that takes them (a language model: they give each other context), one
        by one for the others. A text one provider failed goes to the next. What was
        translated is cached even when another text failed.

        Raises :class:`TranslationError` when a text could not be translated; it is
        retryable unless every provider refused such texts for good."""
        out: dict[str, tuple[str, str]] = {}
        todo: list[str] = []
        for t in dict.fromkeys(texts):
            if not t.strip() or source == target:
                out[t] = (t, "none")
            else:
                todo.append(t)
        if not todo:
            return out
        prepared = {t: apply_glossary(t, self.glossary) for t in todo}
        if self.memory is not None:
            # Human translations win over the cache and every provider: by the exact
            # source text, then by the text after the glossary.
            for t in todo:
                human = self.memory.lookup(t, source, target) or self.memory.lookup(prepared[t], source, target)
                if human is not None:
                    self.stats.memory_hits += 1
                    out[t] = (human, MEMORY)
            todo = [t for t in todo if t not in out]
        hits = self.cache.cached_translations(set(prepared[t] for t in todo), source, target) if todo else {}
        errors: dict[str, list[TranslationError]] = {}
        for t in todo:
            if prepared[t] in hits:
                self.stats.cache_hits += 1
                out[t] = hits[prepared[t]]
            else:
                errors[t] = []
        if errors and not self.providers:
            raise TranslationError("no translation provider configured", retryable=False, kind="error")
        for i, provider in enumerate(self.providers):
            pending = [t for t in errors if t not in out]
            if not pending:
                break
            if self._time_left() <= 0:
                for t in pending:
                    errors[t].append(TranslationError("translation time budget for this cycle is used up",
                                                      kind="budget"))
                break
            if isinstance(provider, BatchProvider):
                done = self._batches(i, provider, pending, source, target, errors)
            else:
                done = {}
                for t in pending:
                    busy = self._unavailable(i, provider)
                    if busy is not None:
                        errors[t].append(busy)
                        continue
                    try:
                        done[t] = self._with_provider(i, provider, prepared[t], source, target)
                    except TranslationError as e:
                        self._failed(i, provider, e, errors[t])
                        continue
                    self._fails.pop(i, None)
            for t, result in done.items():
                self.cache.cache_translation(prepared[t], source, target, result, provider.name, self.now())
                self.stats.texts[provider.name] = self.stats.texts.get(provider.name, 0) + 1
                out[t] = (result, provider.name)
        failed = [t for t in errors if t not in out]
        if failed:
            raise _chain_error(failed, errors)
        return out

    def _unavailable(self, i: int, provider: Provider) -> TranslationError | None:
        """Why ``provider`` cannot be asked now (the budget is used up, it rests), or None."""
        if self._time_left() <= 0:
            return TranslationError("translation time budget for this cycle is used up", kind="budget")
        rest = self.rest_until.get(i, 0) - self.clock()
        if rest > 0:
            return TranslationError(f"{provider.name}: skipped for {rest:.0f} s more "
                                    f"({self.rest_reason.get(i, 'earlier errors')})",
                                    provider=provider.name, kind="resting")
        return None

    def _failed(self, i: int, provider: Provider, e: TranslationError, errors: list[TranslationError]) -> None:
        """A request to ``provider`` failed: note it, and rest the provider if it should."""
        errors.append(e)
        if e.retryable and e.kind != "limit":  # the provider is in trouble, not just this text
            self.stats.failures[provider.name] = self.stats.failures.get(provider.name, 0) + 1
            self.stats.last_error[provider.name] = str(e)
        self._rest(i, e)
        # Per text, so DEBUG: the cycle says once per provider what failed (WARNING).
        log.debug("translation: %s", e)

    def _slot(self, i: int, provider: Provider, chars: int) -> None:
        """Wait for the provider's own rate limit, or fail with ``limit`` if that takes too long."""
        limiter = self.limits[i] if i < len(self.limits) else None
        if limiter is None:
            return
        wait = limiter.wait_time(chars)
        if wait > 0:
            if wait > min(self.timeout, self._time_left()):
                raise TranslationError(f"{provider.name}: own rate limit reached (next slot in {wait:.0f} s)",
                                       provider=provider.name, kind="limit", retry_after=wait)
            self.sleep(wait)
        limiter.take(chars)

    def _with_provider(self, i: int, provider: Provider, text: str, source: str, target: str) -> str:
        pieces = fit_pieces(text, provider.max_chars, getattr(provider, "url_bytes", None))
        out = []
        for piece in pieces:
            self._slot(i, provider, len(piece))
            out.append(self._call_splitting(provider, piece, source, target))
        return join_pieces(out, target) if len(out) > 1 else out[0]

    # -- several texts per request ----------------------------------------------------------
    def _batches(self, i: int, provider: BatchProvider, pending: list[str], source: str, target: str,
                 errors: dict[str, list[TranslationError]]) -> dict[str, str]:
        """``pending`` through a provider that takes several texts per request: in order, as
        few requests as its limits allow (a text longer than a request's characters goes in
        pieces). The provider is given the texts as written and the glossary, which it puts
        in its instructions and checks in the answer."""
        pieces = {t: split_text(t, provider.max_chars) for t in pending}
        items = [(t, k) for t in pending for k in range(len(pieces[t]))]
        got: dict[tuple[str, int], str] = {}
        for group in plan_batches([len(pieces[t][k]) for t, k in items], provider.max_texts, provider.max_chars):
            self._send_batch(i, provider, [items[j] for j in group], pieces, source, target, errors, got)
        done: dict[str, str] = {}
        for t in pending:
            parts = [got.get((t, k)) for k in range(len(pieces[t]))]
            if all(p is not None for p in parts):
                done[t] = join_pieces([str(p) for p in parts], target)
        return done

    def _send_batch(self, i: int, provider: BatchProvider, batch: list[tuple[str, int]],
                    pieces: dict[str, list[str]], source: str, target: str,
                    errors: dict[str, list[TranslationError]], got: dict[tuple[str, int], str],
                    depth: int = 0) -> None:
        owners = list(dict.fromkeys(t for t, _ in batch))
        busy = self._unavailable(i, provider)
        if busy is not None:
            for t in owners:
                errors[t].append(busy)
            return
        texts = [pieces[t][k] for t, k in batch]
        try:
            self._slot(i, provider, sum(map(len, texts)))
            answer = self._call_batch(provider, texts, source, target)
        except TranslationError as e:
            # An answer cut off at the model's output limit: the same texts in two requests.
            if e.kind == "too_long" and len(batch) > 1 and depth < 4:
                half = len(batch) // 2
                for part in (batch[:half], batch[half:]):
                    self._send_batch(i, provider, part, pieces, source, target, errors, got, depth + 1)
                return
            self._failed(i, provider, e, errors[owners[0]])
            for t in owners[1:]:
                errors[t].append(e)
            return
        bad: list[TranslationError] = []
        for (t, k), r in zip(batch, answer.results, strict=True):
            if isinstance(r, str):
                r = _not_a_translation(provider.name, pieces[t][k], r, source, target) or r
            if isinstance(r, str):
                got[t, k] = r
            else:
                errors[t].append(r)
                bad.append(r)
                log.debug("translation: %s", r)
        if len(bad) == len(batch):  # nothing usable: as a failed request
            self.stats.failures[provider.name] = self.stats.failures.get(provider.name, 0) + 1
            self.stats.last_error[provider.name] = str(bad[0])
            self._rest(i, bad[0])
        else:
            self._fails.pop(i, None)

    def _call_batch(self, provider: BatchProvider, texts: list[str], source: str, target: str) -> BatchAnswer:
        timeout = max(0.1, min(self.timeout, self._time_left()))
        self.stats.count(provider.name, sum(map(len, texts)))
        answer = self._bounded_call(provider, lambda: provider.translate_batch(
            texts, source, target, timeout, self.glossary), timeout)
        assert isinstance(answer, BatchAnswer)
        if answer.error is None and len(answer.results) != len(texts):
            answer.error = TranslationError(f"{provider.name}: {len(answer.results)} results for {len(texts)} texts",
                                            provider=provider.name, kind="bad_answer")
        self.stats.count_tokens(provider.name, answer.usage.prompt_tokens, answer.usage.completion_tokens)
        if answer.error is not None:
            raise answer.error
        return answer

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
        result = str(self._bounded_call(provider, lambda: provider.translate(text, source, target, timeout), timeout))
        bad = _not_a_translation(provider.name, text, result, source, target)
        if bad is not None:
            raise bad
        return result

    def _bounded_call(self, provider: Provider, call: Callable[[], Any], timeout: float) -> Any:
        """``call()``, waited for at most ``timeout`` + 1 s."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["result"] = call()
            except BaseException as e:  # handed to the caller below
                box["error"] = e
            finally:
                done.set()

        # A daemon thread, not a pool: a call stuck past its bound must not hold the
        # process at exit (aggregator.translating.threads). The socket timeout bounds each
        # read; this bounds the whole call (a server that drips its answer byte by byte).
        name = f"translate-{provider.name}"
        worker = self._threads.take(name)
        worker.submit(work)
        if not done.wait(timeout + 1.0):
            worker.stop()  # ends when its call does; the next call gets another thread
            raise TranslationError(f"{provider.name}: no answer within {timeout:g} s",
                                   provider=provider.name, kind="timeout")
        self._threads.give_back(name, worker)
        if "error" in box:
            e = box["error"]
            raise e if isinstance(e, TranslationError) else _classify(provider.name, e)
        return box["result"]

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


def _chain_error(failed: Sequence[str], errors: Mapping[str, Sequence[TranslationError]]) -> TranslationError:
    """The error of a chain that could not translate ``failed``: what happened to the first
    of them at each provider (what status shows); retryable unless every provider refused
    them all for good."""
    every = [e for t in failed for e in errors[t]]
    real = [e for e in every if e.kind not in ("resting", "budget")]
    message = "; ".join(dict.fromkeys(str(e) for e in errors[failed[0]])) or "not translated"
    return TranslationError(message, retryable=any(e.retryable for e in every), kind=(real or every or [
        TranslationError("", kind="error")])[0].kind)


def _not_a_translation(provider: str, text: str, answer: str, source: str, target: str) -> TranslationError | None:
    """The provider's failure when ``answer`` is not a translation of ``text``
    (:mod:`aggregator.answers`): the next provider is asked, and nothing is cached.
    MyMemory's quota warning rests the provider as a 429 would."""
    why = not_a_translation(text, answer, source, target)
    if why is None:
        return None
    kind = banner_kind(text, answer) or "bad_answer"
    return TranslationError(f"{provider}: answered {why}", provider=provider, kind=kind, retryable=kind != "language",
                            retry_after=BANNER_REST if kind == "quota" else None)


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

    # A model is part of the setup (another model may translate what one refused); the
    # list keeps its old form for other providers, so their signature does not change.
    providers = [[p.provider, p.url or "", bool(p.api_key), *([p.model] if p.model else [])] for p in cfg.providers]
    data: list[Any] = [cfg.target, providers, sorted(cfg.glossary.items())]
    if memory is not None:
        data.append(memory.digest)
    return hashlib.sha1(json.dumps(data, ensure_ascii=False).encode()).hexdigest()[:16]
