"""What a fetched feed means for the store, decided over plain data (no disk, no network).

Modelled on reader's ``_update`` Decider: the store reads what it holds, these functions
say what to do with it, and the store applies the resulting intents in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aggregator.models import EntryData, iso
from aggregator.urls import canonical_url


def entry_hash(e: EntryData) -> str:
    """Changes when anything stored of an entry changes (one update of the joined parts)."""
    parts = (e.link or "", e.title, e.summary, e.content, e.author or "", "\x1f".join(e.categories),
             iso(e.published) or "", iso(e.updated) or "", e.image or "", e.language or "", "")
    return hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewEntry:
    entry: EntryData
    hash: str
    sort_date: datetime


@dataclass(frozen=True, slots=True)
class ChangedEntry:
    """An entry whose content changed: it keeps its row (and so its published id), and
    is matched again. ``sort_date`` None keeps the stored one."""

    id: int
    entry: EntryData
    hash: str
    sort_date: datetime | None


@dataclass(frozen=True, slots=True)
class EntryIntents:
    new: list[NewEntry] = field(default_factory=list)
    changed: list[ChangedEntry] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)  # ids seen again: last_seen moves
    rekeyed: list[tuple[int, str]] = field(default_factory=list)  # (id, new key): back under a new guid


def decide_entries(entries: Sequence[EntryData], stored: Mapping[str, tuple[int, str]], now: datetime,
                   by_link_and_title: Mapping[tuple[str, str], tuple[int, str]] | None = None) -> EntryIntents:
    """New, changed or unchanged, for each fetched entry; ``stored`` maps a key to the
    stored (id, hash) of the same source.

    ``by_link_and_title`` maps (canonical link, title) to the stored (id, hash) of the
    source's entries that are not in this fetch under their own key. An entry whose key
    is new but whose link and title are there is that entry, back under a new guid (some
    feeds make new guids on every fetch): it keeps its row, and so its published id,
    translation and matches, and takes the new key."""
    out = EntryIntents()
    moved = dict(by_link_and_title or {})
    for e in entries:
        h = entry_hash(e)
        known = stored.get(e.key)
        if known is None and e.link:
            known = moved.pop((canonical_url(e.link), e.title), None)
            if known is not None:
                out.rekeyed.append((known[0], e.key))
        if known is None:
            out.new.append(NewEntry(e, h, e.published or e.updated or now))
        elif known[1] != h:
            out.changed.append(ChangedEntry(known[0], e, h, e.published or e.updated))
        else:
            out.unchanged.append(known[0])
    return out


SyncAction = Literal["add", "reset", "keep"]


@dataclass(frozen=True, slots=True)
class SourceSync:
    id: str
    url: str
    role: str
    action: SyncAction


def decide_source_sync(configured: Iterable[tuple[str, str, str]],
                       stored_urls: Mapping[str, str]) -> list[SourceSync]:
    """For each configured (id, url, role): add it, keep it, or — when its configured
    URL changed — reset it, since its validators and any permanent redirect belong to
    the old URL."""
    out = []
    for sid, url, role in configured:
        before = stored_urls.get(sid)
        action: SyncAction = "add" if before is None else "reset" if before != url else "keep"
        out.append(SourceSync(sid, url, role, action))
    return out
