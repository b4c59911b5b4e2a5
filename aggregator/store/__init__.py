"""The store: SQLite behind one class, its methods split by domain.

``Store`` combines the per-domain parts (sources, entries, matches, translations,
embeddings, publications, maintenance, pages); the schema and its numbered migrations are in
:mod:`aggregator.store.migrations`. A thin shell: it applies what the stages decided.
"""

from __future__ import annotations

from aggregator.models import text_hash
from aggregator.sources.decide import entry_hash
from aggregator.store.base import StoreBase
from aggregator.store.embeddings import EmbeddingsStore
from aggregator.store.entries import EntriesStore
from aggregator.store.lock import StoreLock
from aggregator.store.maintenance import MaintenanceStore
from aggregator.store.matches import MatchesStore
from aggregator.store.migrations import SCHEMA_VERSION
from aggregator.store.pages import PagesStore
from aggregator.store.protocol import StoreType
from aggregator.store.publications import PublicationsStore
from aggregator.store.records import (
    EntryTranslation,
    PageText,
    Publication,
    SourceState,
    StoreResult,
)
from aggregator.store.sources import SourcesStore
from aggregator.store.translations import TranslationsStore


class Store(SourcesStore, EntriesStore, MatchesStore, TranslationsStore, EmbeddingsStore,
            PublicationsStore, MaintenanceStore, PagesStore):
    """The SQLite store. Not shared between threads: one per thread that needs it."""

    def __enter__(self) -> Store:
        return self


def _conforms(store: Store) -> StoreType:
    return store  # mypy checks here that Store satisfies the protocol the stages use


__all__ = ["SCHEMA_VERSION", "EntryTranslation", "PageText", "Publication", "SourceState", "Store", "StoreBase",
           "StoreLock", "StoreResult", "StoreType", "entry_hash", "text_hash"]
