"""The translate stage: what the publication will show, translated through the chain
(decisions in :mod:`aggregator.translating.decide`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from aggregator.config import Config, TranslationConfig
from aggregator.entryview import entry_texts, reader_language
from aggregator.exceptions import TranslationError
from aggregator.language import same_language
from aggregator.models import Entry, from_iso, iso
from aggregator.redaction import Redactor
from aggregator.running.clock import Clock, utcnow
from aggregator.store import Store
from aggregator.store.records import EntryTranslation
from aggregator.translating import decide
from aggregator.translating.chain import Translator, chain_signature

log = logging.getLogger("aggregator")


def translate_stage(store: Store, config: Config, entries: Sequence[Entry], translator: Translator, *,
                    now: Clock = utcnow, stop: threading.Event | None = None) -> tuple[int, int]:
    """Translate what the publication will show. Returns (done, still pending).

    An entry is done only when every one of its texts is translated; otherwise it stays
    pending with a retry time (backoff) or, once every provider refused it for good
    PERMANENT_ATTEMPTS times, failed with the reason. Failed entries are tried again
    when their text or the translation setup (providers, glossary) changes. When
    ``stop`` is set, the rest waits for the next cycle."""
    tc = config.translation
    target = tc.target
    langs = {s.id: s.language for s in config.sources}
    existing = store.entry_translations([e.id for e in entries], target)
    signature = chain_signature(tc, translator.memory)
    if store.get_meta("translation_chain") != signature:
        store.set_meta("translation_chain", signature)
        store.set_meta("translation_chain_since", iso(now()) or "")
    chain_since = from_iso(store.get_meta("translation_chain_since"))
    redactor = Redactor(config.secrets)
    translator.deadline = translator.clock() + tc.budget.total_seconds()
    done = pending = 0
    # The entries' records and the texts the translator caches commit together, every so
    # many writes or seconds (Store.grouped): a commit each was 560 of a cold cycle's
    # commits, on its last, single-core stretch. A killed process loses at most that much
    # of the cycle's translations, which the next cycle asks for again.
    with store.grouped():
        for e in entries:
            store.commit_group_if_due()
            got = _translate_entry(store, e, tc, langs, existing, translator, redactor, chain_since, now, stop)
            done += got == "done"
            pending += got == "pending"
    return done, pending


_Outcome = Literal["done", "pending", ""]


def _translate_entry(store: Store, e: Entry, tc: TranslationConfig, langs: dict[str, str],
                     existing: dict[int, EntryTranslation], translator: Translator, redactor: Redactor,
                     chain_since: datetime | None, now: Clock, stop: threading.Event | None) -> _Outcome:
    """Translate one entry's texts when due: "done", "pending" (to be tried again), or ""
    (nothing to do, or failed for good)."""
    target = tc.target
    lang = reader_language(e, langs.get(e.source_id, "auto"))
    if same_language(lang, target):
        return ""
    source = lang or "auto"  # unknown: the provider detects it
    texts = entry_texts(e)
    digest = texts.digest(target)
    t = now()
    step = decide.plan(existing.get(e.id), digest, t, chain_since)
    if step.action == "leave":
        return ""
    if step.action == "wait" or (translator.deadline is not None and translator.clock() >= translator.deadline) \
            or (stop is not None and stop.is_set()):
        return "pending"
    try:
        out = translator.translate_many(texts.all(), source, target)
    except TranslationError as err:
        record = decide.after_failure(e.id, target, digest, step.attempts, redactor(str(err))[:500],
                                      retryable=err.retryable, now=t, backoff=tc.retry_backoff,
                                      max_backoff=tc.max_retry_backoff)
        store.set_entry_translation(record)
        if record.status == "failed":
            log.warning("translation of %s failed for good after %d attempts: %s", e.link, step.attempts,
                        record.error)
            return ""
        return "pending"
    store.set_entry_translation(decide.after_success(e.id, target, digest, step.attempts, texts, out, t))
    return "done"
