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

from aggregator.models import EntryData, iso, plausible
from aggregator.urls import canonical_url


def entry_hash(e: EntryData) -> str:
    """Changes when anything stored of an entry changes (one update of the joined parts)."""
    parts = (e.link or "", e.title, e.summary, e.content, e.author or "", "\x1f".join(e.categories),
             iso(e.published) or "", iso(e.updated) or "", e.image or "", e.language or "", "")
    return hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def derive(e: EntryData) -> tuple[str, str | None]:
    """(:func:`entry_hash`, canonical link) of ``e``, worked out once and kept on it.

    The parser calls this in its process, so that the storing thread, the cycle's
    critical path, finds both made (a cold cycle hashes and canonicalises 50,000 entries).
    Both are pure functions of the entry's fields, which cannot change (frozen), and
    ``dataclasses.replace`` does not copy them: what is kept is always what would be made."""
    got = e.derived
    if got is None:
        got = (entry_hash(e), canonical_url(e.link) if e.link else None)
        object.__setattr__(e, "derived", got)  # a cache on a frozen instance, see EntryData.derived
    return got


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


def decide_entries(entries: Sequence[EntryData], stored: Mapping[str, tuple[int, str, datetime | None]],
                   now: datetime,
                   by_link_and_title: Mapping[tuple[str, str], tuple[int, str, datetime | None]] | None = None,
                   ) -> EntryIntents:
    """New, changed or unchanged, for each fetched entry; ``stored`` maps a key to the
    stored (id, hash, first seen) of the same source.

    An entry sorts (and is windowed and published) by the date a reader sees: its own
    when plausible, else when we first saw it (:func:`aggregator.models.plausible`), the
    same in every format.

    ``by_link_and_title`` maps (canonical link, title) to the stored (id, hash, first
    seen) of the source's entries that are not in this fetch under their own key. An
    entry whose key is new but whose link and title are there is that entry, back under
    a new guid (some feeds make new guids on every fetch): it keeps its row, and so its
    published id, translation and matches, and takes the new key."""
    out = EntryIntents()
    moved = dict(by_link_and_title or {})
    for e in entries:
        h, canon = derive(e)
        known = stored.get(e.key)
        if known is None and canon is not None:
            known = moved.pop((canon, e.title), None)
            if known is not None:
                out.rekeyed.append((known[0], e.key))
        own = e.published or e.updated
        if known is None:
            out.new.append(NewEntry(e, h, plausible(own, now)))
        elif known[1] != h:
            sort_date = None if own is None else plausible(own, known[2] or now)
            out.changed.append(ChangedEntry(known[0], e, h, sort_date))
        else:
            out.unchanged.append(known[0])
    return out


# -- sources: what a config means for the sources the store knows ----------------------------
# A source's identity is its id *or* its url, not both at once: renaming a source's id
# (same url) or moving it to a new url (same id) keeps its entries and so their published
# ids; only a change of both at once is a new source. A source gone from the config is
# *removed*: no longer fetched, its entries out of the publication (posts citing them keep
# their links, shown with the source's last name), listed by ``status`` until retention
# has dropped its articles. The store applies the intents (``Store.sync_sources``) and
# ``check-config`` explains them (:func:`describe`).

Action = Literal["add", "rename", "url", "remove", "restore", "keep"]


@dataclass(frozen=True, slots=True)
class Configured:
    id: str
    url: str
    role: str
    name: str


@dataclass(frozen=True, slots=True)
class Stored:
    id: str
    config_url: str
    name: str | None
    removed: str | None  # when it left the config (ISO time), None while configured
    entries: int = 0


@dataclass(frozen=True, slots=True)
class Intent:
    action: Action
    id: str  # the configured id (for remove: the stored one)
    old_id: str | None = None  # rename: the stored id
    old_url: str | None = None  # url: the stored url
    url: str | None = None
    role: str | None = None
    name: str | None = None
    entries: int = 0


def plan_sources(configured: Sequence[Configured], stored: Iterable[Stored]) -> list[Intent]:
    """One intent per configured source, and one ``remove`` per stored source the
    config no longer has (not already removed). A configured id the store does not know
    takes over the one stored source with the same url that the config no longer names
    (``rename``); with none, or several, it is a new source."""
    by_id = {s.id: s for s in stored}
    wanted = {c.id for c in configured}
    orphans: dict[str, list[Stored]] = {}
    for o in by_id.values():
        if o.id not in wanted:
            orphans.setdefault(o.config_url, []).append(o)
    taken: set[str] = set()
    out: list[Intent] = []
    for c in configured:
        known = by_id.get(c.id)
        if known is None:
            same_url = [o for o in orphans.get(c.url, ()) if o.id not in taken]
            if len(same_url) == 1:
                old = same_url[0]
                taken.add(old.id)
                out.append(Intent("rename", c.id, old_id=old.id, url=c.url, role=c.role, name=c.name,
                                  entries=old.entries))
            else:
                out.append(Intent("add", c.id, url=c.url, role=c.role, name=c.name))
        elif known.config_url != c.url:
            out.append(Intent("url", c.id, old_url=known.config_url, url=c.url, role=c.role, name=c.name,
                              entries=known.entries))
        elif known.removed is not None:
            out.append(Intent("restore", c.id, url=c.url, role=c.role, name=c.name, entries=known.entries))
        else:
            out.append(Intent("keep", c.id, url=c.url, role=c.role, name=c.name, entries=known.entries))
    for s in by_id.values():
        if s.id not in wanted and s.id not in taken and s.removed is None:
            out.append(Intent("remove", s.id, name=s.name, entries=s.entries))
    return out


def describe(intents: Sequence[Intent]) -> list[str]:
    """What the intents will do, in words, for ``check-config`` (none for keep and add)."""
    lines = []
    for i in intents:
        n = i.entries
        entries = f"{n} entr{'y' if n == 1 else 'ies'}"
        if i.action == "rename":
            lines.append(f"{i.old_id} -> {i.id}: renamed (same url): its {entries} and their published ids are kept")
        elif i.action == "url":
            lines.append(f"{i.id}: url changed: fetched from the new url from now on; its {entries} and their "
                         "published ids are kept")
        elif i.action == "remove":
            lines.append(f"{i.id}: removed: no longer fetched; its {n} article{'s' if n != 1 else ''} leave the "
                         "publication (posts citing them keep their links); listed by `status` until retention "
                         "drops them")
        elif i.action == "restore":
            lines.append(f"{i.id}: back in the config: fetched and published again, with its {entries}")
    return lines
