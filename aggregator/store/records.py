"""The plain records the store hands out (besides models.Entry and models.Match)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SourceState:
    id: str
    url: str
    config_url: str
    role: str
    title: str | None
    etag: str | None
    last_modified: str | None
    last_fetch: datetime | None
    last_success: datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_failures: int
    next_fetch: datetime | None
    disabled: str | None
    last_new: int
    last_updated: int
    entry_count: int | None = 0  # None: not counted (Store.source_states(counts=False))
    guid_churn: str = ""  # '1' per recent fetch whose entries came back under new guids
    name: str | None = None  # as configured (kept once the source is removed)
    removed: str | None = None  # when the source left the config (ISO time)
    last_content: datetime | None = None  # the last fetch that brought content (a 200)

    @property
    def unstable_guids(self) -> bool:
        return unstable_guids(self.guid_churn)


GUID_CHURN_FETCHES = 10  # fetches remembered


def unstable_guids(churn: str) -> bool:
    """Whether the guids changed on most of a source's recent fetches (3 at least)."""
    return len(churn) >= 3 and churn.count("1") * 2 > len(churn)


def guid_churn_warning(churn: str) -> str:
    return (f"its entries come back under new guids (on {churn.count('1')} of the last {len(churn)} fetches): "
            "they are recognised by link and title instead, so nothing is stored or published twice")


@dataclass(frozen=True, slots=True)
class StoreResult:
    new: int
    updated: int
    unchanged: int
    rekeyed: int = 0  # stored entries that came back under a new guid (same link and title)
    guid_churn: str = ""


@dataclass(frozen=True, slots=True)
class EntryTranslation:
    entry_id: int
    target: str
    input_hash: str
    status: str  # done | pending | failed
    provider: str | None
    error: str | None
    attempts: int
    retry_at: datetime | None
    updated: datetime
    title: str | None
    summary: str | None
    content: str | None


@dataclass(frozen=True, slots=True)
class Publication:
    entry_id: int
    pub_id: str
    first_published: datetime
    updated: datetime
    visible_hash: str


@dataclass(frozen=True, slots=True)
class PageText:
    """A page's extracted body to keep with its entry (``text`` "" drops a kept one)."""

    entry_id: int
    text: str
    source: str | None  # the extractor ("trafilatura 2.3.1")
    fetched: datetime | None
