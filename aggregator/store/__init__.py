"""The store: SQLite behind one class, its methods split by domain.

``Store`` combines the per-domain parts (sources, entries, matches, translations,
embeddings, publications, maintenance); the schema and its numbered migrations are in
:mod:`aggregator.store.migrations`. A thin shell: it applies what the stages decided.
"""

from __future__ import annotations

from aggregator.store.base import StoreBase, text_hash
from aggregator.store.embeddings import EmbeddingsStore
from aggregator.store.entries import EntriesStore, entry_hash
from aggregator.store.lock import StoreLock
from aggregator.store.maintenance import MaintenanceStore
from aggregator.store.matches import MatchesStore
from aggregator.store.migrations import SCHEMA_VERSION
from aggregator.store.publications import PublicationsStore
from aggregator.store.records import (
    EntryTranslation,
    Publication,
    SourceState,
    StoreResult,
)
from aggregator.store.sources import SourcesStore
from aggregator.store.translations import TranslationsStore


class Store(SourcesStore, EntriesStore, MatchesStore, TranslationsStore, EmbeddingsStore,
            PublicationsStore, MaintenanceStore):
    """The SQLite store. Not shared between threads: one per thread that needs it."""

    def __enter__(self) -> Store:
        return self


__all__ = ["SCHEMA_VERSION", "EntryTranslation", "Publication", "SourceState", "Store", "StoreBase",
           "StoreLock", "StoreResult", "entry_hash", "text_hash"]
