"""Retention: what the store may forget, and when to compact it.

The decisions are pure (:func:`articles_to_prune`, :func:`compaction_due`,
:func:`sweep_due`); :func:`prune_articles`, :func:`sweep_translation_cache_if_due` and
:func:`compact_if_due` are the thin shells a cycle calls.

Blog posts are never pruned, nor an article any post cites or cited in an earlier cycle
(a match lost to a transient translator failure must not lose the article for good). An
outlet article is pruned once both its date and its last sighting in its feed are older
than ``retention.articles``: an old article a feed still carries would otherwise come
straight back as "new" on the next fetch, with a new id in the published feed. A feed
that answers 304, or fails, still carries what it carried at its last 200: those entries
count as seen now. A cycle whose matching lacked a translation it needed prunes nothing
(see :func:`aggregator.running.matching.match_stage`).

Translated texts no stored entry uses any more (a feed whose text changes on every
fetch) leave the translation cache at most every ``retention.compact_every``: the cache
holds the texts of the stored entries plus what one period added. See docs/operations.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.config import Config
from aggregator.entryview import derived_keys, translation_keys
from aggregator.exceptions import StorageError
from aggregator.models import Entry, from_iso, iso, text_hash
from aggregator.store import Store

log = logging.getLogger("aggregator")

LAST_COMPACTION = "last_compaction"


@dataclass(frozen=True, slots=True)
class ArticleAge:
    id: int
    date: datetime  # the entry's own date (published, else updated, else first seen)
    last_seen: datetime  # the last fetch whose feed still carried it
    held: bool = False  # in its feed at the feed's last 200, and the feed has answered nothing else since


def articles_to_prune(articles: Iterable[ArticleAge], cited: set[int], *, now: datetime,
                      keep: timedelta | None) -> list[int]:
    """Ids of the outlet articles to forget: older than ``keep`` by date and by last
    sighting (an article its feed still held at its last 200 is seen now, whatever 304s
    or failures came after), and cited by no post, now or before. ``keep`` None keeps
    everything."""
    if keep is None:
        return []
    cutoff = now - keep
    return sorted(a.id for a in articles
                  if a.date < cutoff and a.last_seen < cutoff and not a.held and a.id not in cited)


def sweep_due(last: datetime | None, now: datetime, every: timedelta) -> bool:
    """Sweep the translation cache when the last sweep is ``every`` old."""
    return last is None or now - last >= every


def compaction_due(last: datetime | None, now: datetime, every: timedelta, free_pages: int) -> bool:
    """Compact when there is space to give back and the last compaction is ``every`` old."""
    return free_pages > 0 and (last is None or now - last >= every)


def derived_hashes(article: Entry, glossary: dict[str, str]) -> set[str]:
    """Keys of the rows the store keeps for an article besides its own: its embeddings
    and its cached translations, exactly as the matcher and translation store them."""
    return derived_keys(article, glossary)


def prune_articles(store: Store, config: Config, now: datetime) -> int:
    """Forget the outlet articles retention allows to forget. Returns how many."""
    keep = config.retention.articles
    if keep is None:
        return 0
    candidates = [ArticleAge(i, d, seen, held) for i, d, seen, held in store.outlet_articles_older_than(now - keep)]
    if not candidates:  # nothing old enough: what posts cite (a scan of every entry) is not needed
        return 0
    ids = articles_to_prune(candidates, store.cited_article_ids(), now=now, keep=keep)
    if not ids:
        return 0
    glossary = dict(config.translation.glossary)
    hashes: set[str] = set()
    for e in store.entries_by_ids(ids).values():
        hashes |= derived_hashes(e, glossary)
    pruned = store.delete_articles(ids, hashes)
    log.info("retention: pruned %d outlet articles older than %s that no post cites", pruned, iso(now - keep))
    for sid in store.forget_empty_removed_sources():
        log.info("retention: source %s, removed from the config, has no entries left: forgotten", sid)
    return pruned


LAST_CACHE_SWEEP = "last_translation_cache_sweep"


def texts_in_use(entry: Entry, glossary: dict[str, str]) -> set[str]:
    """Keys of every text of ``entry`` the translation cache may hold: what a reader
    sees and, for a post, what matching translates (each as sent: with the glossary)."""
    keys = translation_keys(entry, glossary)
    if entry.role == "blog":
        from aggregator.citing.extract import extract
        from aggregator.running.matching import foreign_headlines, mention_texts
        from aggregator.translating.text import apply_glossary

        text = extract(entry.content or entry.summary)
        for t in (*mention_texts(entry, text), *foreign_headlines(text)):
            keys |= {text_hash(t), text_hash(apply_glossary(t, glossary))}
    return keys


def sweep_translation_cache_if_due(store: Store, config: Config, now: datetime,
                                   cycle_start: datetime | None = None) -> int:
    """Drop the cached translations of texts no stored entry has any more, when
    :func:`sweep_due` says so. Only rows cached before this cycle began are candidates
    (what this cycle cached is in use). Returns how many rows went."""
    since = cycle_start or now
    last = from_iso(store.get_meta(LAST_CACHE_SWEEP))
    if not sweep_due(last, now, config.retention.compact_every):
        return 0
    if not store.cached_translations_before(since):
        # nothing the sweep could drop (a first cycle, or no translation at all): skip
        # reading every entry's texts, the costliest part of a cold cycle otherwise
        store.set_meta(LAST_CACHE_SWEEP, iso(now) or "")
        return 0
    glossary = dict(config.translation.glossary)
    keep: set[str] = set()
    for batch in store.iter_entries():
        for e in batch:
            keep |= texts_in_use(e, glossary)
    # Only rows older than this cycle's start: a row cached a moment ago is in use.
    gone = store.prune_translation_cache(keep, created_before=since)
    store.set_meta(LAST_CACHE_SWEEP, iso(now) or "")
    if gone:
        log.info("retention: %d cached translations of texts no stored entry has any more dropped", gone)
    return gone


def compact_if_due(store: Store, config: Config, now: datetime) -> bool:
    """Compact the store when :func:`compaction_due` says so. Returns whether it did."""
    last = from_iso(store.get_meta(LAST_COMPACTION))
    if not compaction_due(last, now, config.retention.compact_every, store.free_pages()):
        return False
    before = store.size_bytes()
    try:
        store.compact()
    except StorageError as e:  # the store is fine, only not smaller: try again next cycle
        log.warning("%s", e)
        return False
    store.set_meta(LAST_COMPACTION, iso(now) or "")
    log.info("store compacted: %.2f MB -> %.2f MB", before / 1e6, store.size_bytes() / 1e6)
    return True
