"""Retention: what the store may forget, and when to compact it.

The decisions are pure (:func:`articles_to_prune`, :func:`compaction_due`);
:func:`prune_articles` and :func:`compact_if_due` are the thin shells a cycle calls.
Blog posts are never pruned, nor an article any post cites. An outlet article is
pruned once both its date and its last sighting in its feed are older than
``retention.articles``: an old article a feed still carries would otherwise come
straight back as "new" on the next fetch, with a new id in the published feed. See
docs/operations.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aggregator.config import Config
from aggregator.entryview import derived_keys
from aggregator.exceptions import StorageError
from aggregator.models import Entry, from_iso, iso
from aggregator.store import Store

log = logging.getLogger("aggregator")

LAST_COMPACTION = "last_compaction"


@dataclass(frozen=True, slots=True)
class ArticleAge:
    id: int
    date: datetime  # the entry's own date (published, else updated, else first seen)
    last_seen: datetime  # the last fetch whose feed still carried it


def articles_to_prune(articles: Iterable[ArticleAge], cited: set[int], *, now: datetime,
                      keep: timedelta | None) -> list[int]:
    """Ids of the outlet articles to forget: older than ``keep`` by date and by last
    sighting, and cited by no post. ``keep`` None keeps everything."""
    if keep is None:
        return []
    cutoff = now - keep
    return sorted(a.id for a in articles if a.date < cutoff and a.last_seen < cutoff and a.id not in cited)


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
    candidates = [ArticleAge(i, d, seen) for i, d, seen in store.outlet_articles_older_than(now - keep)]
    ids = articles_to_prune(candidates, store.cited_article_ids(), now=now, keep=keep)
    if not ids:
        return 0
    glossary = dict(config.translation.glossary)
    hashes: set[str] = set()
    for e in store.entries_by_ids(ids).values():
        hashes |= derived_hashes(e, glossary)
    pruned = store.delete_articles(ids, hashes)
    log.info("retention: pruned %d outlet articles older than %s that no post cites", pruned, iso(now - keep))
    return pruned


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
