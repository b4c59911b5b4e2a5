"""Entries: stored feed items, written as one batch per fetched feed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from aggregator.models import Entry, EntryData, from_iso, iso, plausible
from aggregator.sources.decide import decide_entries, derive
from aggregator.store.backend import DB
from aggregator.store.base import (
    _ARTICLE_TEXT,
    _ENTRY_COLUMNS,
    StoreBase,
    _chunks,
    _entry,
    _readable,
)
from aggregator.urls import canonical_url

# Store.article_heads: (id, source_id, title, link, canonical_link, source_site, date, published_offset)
ArticleHead = tuple[int, str, str, str | None, str | None, str | None, datetime, int | None]


def _by_link_and_title(db: DB, source_id: str, entries: Sequence[EntryData], fetched: set[str],
                       stored: Mapping[str, object]) -> dict[tuple[str, str], tuple[int, str, datetime | None]]:
    """The source's stored entries that share a canonical link with a fetched entry of a
    new key and are not in this fetch under their own key, by (canonical link, title)."""
    canons = {c for e in entries if e.key not in stored and (c := derive(e)[1]) is not None}
    out: dict[tuple[str, str], tuple[int, str, datetime | None]] = {}
    for chunk in _chunks(sorted(canons)):
        q = ("SELECT id, key, hash, canonical_link, title, first_seen FROM entries WHERE source_id=?"
             f" AND canonical_link IN ({','.join('?' * len(chunk))}) ORDER BY id")
        for i, k, h, canon, title, seen in db.execute(q, (source_id, *chunk)):
            if k not in fetched:
                out.setdefault((canon, title), (i, h, _seen(seen)))
    return out


# json.dumps with an argument builds an encoder per call (1 s of a 50,000-entry cold cycle).
_categories = json.JSONEncoder(ensure_ascii=False).encode


def upsert_entries(db: DB, source_id: str, role: str, entries: Sequence[EntryData],
                   now: datetime) -> tuple[int, int, int, int]:
    """Read what the source holds of ``entries``, let :func:`decide_entries` say what each
    one is, and apply that. Returns (new, updated, unchanged, rekeyed)."""
    keys = [e.key for e in entries]
    stored: dict[str, tuple[int, str, datetime | None]] = {}
    for chunk in _chunks(keys):
        q = (f"SELECT key, id, hash, first_seen FROM entries WHERE source_id=?"
             f" AND key IN ({','.join('?' * len(chunk))})")
        for k, i, h, seen in db.execute(q, (source_id, *chunk)):
            stored[k] = (i, h, _seen(seen))
    # A source with nothing stored yet (every feed of a first cycle) has nothing to rekey.
    empty = not stored and db.execute("SELECT 1 FROM entries WHERE source_id=? LIMIT 1",
                                      (source_id,)).fetchone() is None
    moved = {} if empty else _by_link_and_title(db, source_id, entries, set(keys), stored)
    intents = decide_entries(entries, stored, now, moved)
    now_s = iso(now)
    if intents.rekeyed:
        db.executemany("UPDATE entries SET key=? WHERE id=?", [(key, i) for i, key in intents.rekeyed])

    def row(e: EntryData, h: str) -> tuple[Any, ...]:
        return (e.link, derive(e)[1], e.title, e.summary, e.content, e.author, _categories(list(e.categories)),
                iso(e.published), iso(e.updated),
                e.published_offset, e.image, e.language, e.source_site, h)

    if intents.new:
        db.executemany(
            "INSERT INTO entries(source_id, role, key, link, canonical_link, title, summary, content,"
            " author, categories, published, updated, published_offset, image, language, source_site, hash,"
            " first_seen, last_seen, sort_date) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(source_id, role, n.entry.key, *row(n.entry, n.hash), now_s, now_s, iso(n.sort_date))
             for n in intents.new])
    if intents.changed:
        db.executemany(
            "UPDATE entries SET link=?, canonical_link=?, title=?, summary=?, content=?, author=?,"
            " categories=?, published=?, updated=?, published_offset=?, image=?, language=?, source_site=?,"
            " hash=?,"
            " last_seen=?, sort_date=COALESCE(?, sort_date), match_state=NULL WHERE id=?",
            [(*row(c.entry, c.hash), now_s, iso(c.sort_date), c.id) for c in intents.changed])
    if intents.unchanged:
        db.executemany("UPDATE entries SET last_seen=? WHERE id=?", [(now_s, i) for i in intents.unchanged])
        # An aggregator's item stored before its <source url> was kept gets it when seen again.
        sites = {e.key: e.source_site for e in entries if e.source_site}
        if sites:
            db.executemany("UPDATE entries SET source_site=? WHERE source_id=? AND key=? AND source_site IS NULL",
                           [(site, source_id, key) for key, site in sites.items()])
    return len(intents.new), len(intents.changed), len(intents.unchanged), len(intents.rekeyed)


def _seen(text: str) -> datetime | None:
    try:
        return from_iso(text)
    except ValueError:  # an unreadable row (status reports it)
        return None


class EntriesStore(StoreBase):
    def _iso_date_test(self) -> tuple[str, str]:
        """(operator, pattern) that tells a stored ISO date from what no version of us wrote."""
        if self.dialect == "sqlite":
            return "GLOB", "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*"
        return "~", r"^\d{4}-\d\d-\d\dT"

    def _entries(self, where: str, args: Sequence[Any] = ()) -> list[Entry]:
        rows = self.db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE {where}", args).fetchall()
        return _readable(rows, self.name)

    def iter_entries(self, batch: int = 500) -> Iterator[list[Entry]]:
        """Every stored entry, ``batch`` at a time (a whole store never sits in memory)."""
        last = 0
        while True:
            rows = self.db.execute(f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE id>? ORDER BY id LIMIT ?",
                                   (last, batch)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield _readable(rows, self.name)

    def unreadable_entries(self) -> list[dict[str, Any]]:
        """The rows :meth:`_entries` leaves out, with why (for ``status``)."""
        like, date = self._iso_date_test()
        # PostgreSQL 15 has no JSON test on text: a list's brackets at least; _entry reads it below
        valid = "json_valid(categories)" if self.dialect == "sqlite" else r"categories ~ '^\[.*\]$'"
        suspects = self.db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE NOT (first_seen {like} ?)"
            f" OR (published IS NOT NULL AND NOT published {like} ?) OR (updated IS NOT NULL AND NOT updated {like} ?)"
            f" OR NOT {valid}", (date, date, date)).fetchall()
        out = []
        for r in suspects:
            try:
                _entry(r)
            except (ValueError, TypeError, OverflowError) as e:
                out.append({"id": r[0], "source_id": r[1], "key": r[3], "link": r[4], "error": str(e)})
        return out

    def get_entry(self, entry_id: int) -> Entry | None:
        got = self._entries("id=?", (entry_id,))
        return got[0] if got else None

    def entries_by_ids(self, ids: Iterable[int]) -> dict[int, Entry]:
        out: dict[int, Entry] = {}
        for chunk in _chunks(list(ids)):
            for e in self._entries(f"id IN ({','.join('?' * len(chunk))})", chunk):
                out[e.id] = e
        return out

    def find_entries_by_link(self, url: str) -> list[Entry]:
        return self._entries("canonical_link=? ORDER BY id", (canonical_url(url),))

    def count_entries(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT role, COUNT(*) FROM entries GROUP BY role"))

    def posts_to_match(self, *, new_articles: bool, late_after: datetime,
                       incomplete: bool = False) -> list[Entry]:
        """Blog posts never matched (or changed since); with ``incomplete``, those matched
        without all the translations they needed; and, when new articles arrived, posts
        first seen after ``late_after`` that still have an unresolved citation (the
        article they cite may be among the new ones)."""
        states = "match_state IS NULL OR match_state='incomplete'" if incomplete else "match_state IS NULL"
        posts = self._entries(f"role='blog' AND ({states}) ORDER BY sort_date")
        if new_articles:
            posts += self._entries(
                "role='blog' AND match_state='unresolved' AND first_seen>=? ORDER BY sort_date",
                (iso(late_after),))
        return posts

    def incomplete_matches(self) -> int:
        """How many posts were matched without all the translations they needed."""
        # Only posts are matched: through the (role, date) index, not a scan of every article.
        return int(self.db.execute("SELECT COUNT(*) FROM entries WHERE role='blog' AND match_state='incomplete'"
                                   ).fetchone()[0])

    def articles_between(self, start: datetime, end: datetime) -> list[Entry]:
        return self._entries("role='outlet' AND sort_date>=? AND sort_date<=? ORDER BY id",
                             (iso(start), iso(end)))

    def article_heads(self, start: datetime, end: datetime) -> list[ArticleHead]:
        """What the matcher's index needs of the outlet articles dated between ``start``
        and ``end``, by id: (id, source_id, title, link, canonical_link, source_site, date,
        published_offset), ``date`` as :attr:`Entry.date` says. No texts and no
        :class:`Entry` objects: a cold cycle reads tens of thousands of articles. A row
        whose dates cannot be read is left out (and logged) as :meth:`_entries` does."""
        rows = self.db.execute(
            "SELECT id, source_id, title, link, canonical_link, source_site, published, updated, first_seen,"
            " published_offset FROM entries WHERE role='outlet' AND sort_date>=? AND sort_date<=? ORDER BY id",
            (iso(start), iso(end)))
        out: list[ArticleHead] = []
        bad = []
        for r in rows:  # one at a time: never all the rows and all the heads at once
            try:
                date = plausible(from_iso(r[6]) or from_iso(r[7]), from_iso(r[8]))  # type: ignore[arg-type]
            except (ValueError, TypeError, OverflowError):
                bad.append(r[0])
                continue
            out.append((r[0], r[1], r[2], r[3], r[4], r[5], date, r[9]))
        if bad:
            self.entries_by_ids(bad)  # logs why each is skipped, once
        return out

    def article_text(self, entry_id: int, chars: int) -> str:
        """The first ``chars`` characters of an entry's summary (its content when it has
        no summary); '' for an unknown id."""
        row = self.db.execute(f"SELECT {_ARTICLE_TEXT} FROM entries WHERE id=?", (chars, entry_id)).fetchone()
        return row[0] if row else ""

    def match_state(self, entry_id: int) -> str | None:
        """``resolved``, ``unresolved``, or None for a post never matched (or changed since)."""
        row = self.db.execute("SELECT match_state FROM entries WHERE id=?", (entry_id,)).fetchone()
        return row[0] if row else None

    def latest_outlet_first_seen(self) -> datetime | None:
        like, date = self._iso_date_test()
        row = self.db.execute(f"SELECT MAX(first_seen) FROM entries WHERE role='outlet' AND first_seen {like} ?",
                              (date,)).fetchone()
        return from_iso(row[0]) if row and row[0] else None

    def outlet_dates_first_seen_after(self, since: datetime) -> list[datetime]:
        """The dates of the outlet articles that arrived after ``since``: which posts'
        windows a cycle's new articles fall in."""
        rows = self.db.execute("SELECT sort_date FROM entries WHERE role='outlet' AND first_seen>?",
                               (iso(since),)).fetchall()
        return [d for (s,) in rows if (d := from_iso(s)) is not None]

    def article_texts(self, entry_ids: Sequence[int], chars: int) -> dict[int, str]:
        """:meth:`article_text` of many entries, in a few queries."""
        out: dict[int, str] = {}
        for chunk in _chunks(list(entry_ids)):
            q = f"SELECT id, {_ARTICLE_TEXT} FROM entries WHERE id IN ({','.join('?' * len(chunk))})"
            out.update(self.db.execute(q, (chars, *chunk)).fetchall())
        return out

    def newest_entries(self, roles: Sequence[str], limit: int) -> list[Entry]:
        """The newest entries of sources still configured (a removed source's leave the publication)."""
        q = ",".join("?" * len(roles))
        return self._entries(
            f"role IN ({q}) AND source_id NOT IN (SELECT id FROM sources WHERE removed IS NOT NULL)"
            " ORDER BY sort_date DESC, id DESC LIMIT ?", (*roles, limit))

    def entries_needing_translation(self, target: str, now: datetime, limit: int = 100_000) -> list[Entry]:
        """Entries not in ``target`` with no translation yet, or one due for retry."""
        return self._entries(
            "(language IS NULL OR language != ?) AND id NOT IN ("
            "  SELECT entry_id FROM entry_translations WHERE target=? AND"
            "  (status='done' OR (retry_at IS NOT NULL AND retry_at > ?)))"
            " ORDER BY role='blog' DESC, sort_date DESC LIMIT ?",
            (target, target, iso(now), limit))
