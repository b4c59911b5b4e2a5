"""Pages: the body extracted from each entry's own page, and the page's fetch state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from aggregator.models import from_iso, iso
from aggregator.sources.fulltext import Candidate, PageHead, PageState, PageStatus
from aggregator.store.backend import upsert
from aggregator.store.base import _ENTRY_COLUMNS, _MAX_IDS, StoreBase, _chunks, _entry
from aggregator.store.records import PageText

_STATE_COLUMNS = "entry_id, version, status, url, etag, last_modified, attempts, error, retry_at, checked"
_SAVE_STATE = upsert("pages", _STATE_COLUMNS, "entry_id")
# An entry whose page needs a decision: never decided for its current version, waiting
# for a cycle with room, or due for a retry (one parameter: now).
_UNDECIDED = ("(p.entry_id IS NULL OR p.version != e.hash OR p.status='waiting'"
              " OR (p.status='retry' AND (p.retry_at IS NULL OR p.retry_at <= ?)))")


def _state(r: Sequence[Any]) -> PageState:
    return PageState(r[0], r[1], cast(PageStatus, r[2]), r[3], r[4], r[5], r[6], r[7], from_iso(r[8]),
                     from_iso(r[9]))


class PagesStore(StoreBase):
    def page_candidates(self, source_id: str, now: datetime) -> list[Candidate]:
        """A source's entries whose page needs a decision: never decided for their
        current version, waiting for a cycle with room, or due for a retry."""
        return self._candidates("e.source_id=?", (source_id,), now)

    def page_heads(self, source_ids: Sequence[str], now: datetime) -> list[PageHead]:
        """The entries of these sources whose page needs a decision (those of
        :meth:`page_candidates`), without their text, in entry order. A cycle asks for
        every source it fetched: one query per source cost 0.1–0.45 s for 1,000 304s.

        Only a source with ``pages_pending`` (entries stored since its last page stage)
        can have entries never decided for their version: its entries are all read. Of
        the others, only the pages waiting for room or due for a retry are (an index on
        the status), not every entry's hash (after its content, in overflow pages: 50–70 ms
        for 50,000 entries when every feed answered 304)."""
        if not source_ids:
            return []
        asked = set(source_ids)
        pending = [sid for sid in self._pages_pending() if sid in asked]
        rows: list[Any] = []
        if pending:
            wanted = set(pending) if len(pending) > _MAX_IDS else None
            within = "" if wanted is not None else f"e.source_id IN ({','.join('?' * len(pending))}) AND "
            args = () if wanted is not None else tuple(pending)
            rows += [r for r in self.db.execute(
                "SELECT e.source_id, e.id, e.link, e.hash, e.page_text != '', p.entry_id IS NOT NULL FROM entries e"
                f" LEFT JOIN pages p ON p.entry_id = e.id WHERE {within}{_UNDECIDED}",
                (*args, iso(now))) if wanted is None or r[0] in wanted]
        others = asked.difference(pending)
        if others:
            rows += [r for r in self.db.execute(
                "SELECT e.source_id, e.id, e.link, e.hash, e.page_text != '', 1 FROM pages p"
                " JOIN entries e ON e.id = p.entry_id WHERE p.status IN ('waiting', 'retry')"
                " AND (p.status = 'waiting' OR p.retry_at IS NULL OR p.retry_at <= ?)", (iso(now),))
                if r[0] in others]
        return [PageHead(r[0], r[1], r[2], r[3], bool(r[4]), bool(r[5])) for r in sorted(rows, key=lambda r: r[1])]

    def _pages_pending(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM sources WHERE pages_pending != 0")]

    def pages_decided(self, source_ids: Iterable[str]) -> None:
        """The page stage has decided every entry of these sources stored so far (see
        :meth:`page_heads`)."""
        ids = set(source_ids)
        decided = [sid for sid in self._pages_pending() if sid in ids]
        if not decided:
            return
        with self.transaction():
            for chunk in _chunks(decided):
                self.db.execute(f"UPDATE sources SET pages_pending=0 WHERE pages_pending != 0 AND id IN"
                                f" ({','.join('?' * len(chunk))})", chunk)

    def page_candidates_of(self, entry_ids: Sequence[int], now: datetime) -> list[Candidate]:
        """:meth:`page_candidates` for these entries (those still needing a decision)."""
        out: list[Candidate] = []
        for chunk in _chunks(entry_ids):
            out += self._candidates(f"e.id IN ({','.join('?' * len(chunk))})", tuple(chunk), now)
        return out

    def _candidates(self, where: str, args: tuple[Any, ...], now: datetime) -> list[Candidate]:
        cols = ", ".join(f"e.{c.strip()}" for c in _ENTRY_COLUMNS.split(","))
        pcols = ", ".join(f"p.{c.strip()}" for c in _STATE_COLUMNS.split(","))
        rows = self.db.execute(
            f"SELECT {cols}, e.hash, {pcols} FROM entries e LEFT JOIN pages p ON p.entry_id = e.id"
            f" WHERE {where} AND {_UNDECIDED} ORDER BY e.sort_date DESC, e.id DESC",
            (*args, iso(now))).fetchall()
        n = len(_ENTRY_COLUMNS.split(","))
        out = []
        for r in rows:
            try:
                out.append(Candidate(_entry(r[:n]), r[n], _state(r[n + 1:]) if r[n + 1] is not None else None))
            except (ValueError, TypeError, OverflowError):
                continue  # a row with an unreadable date: status reports it; no page for it
        return out

    def save_pages(self, states: Iterable[PageState], texts: Iterable[PageText] = ()) -> None:
        """Record page states, and the texts fetched, in one transaction. An entry whose
        text changes is matched again (its id stays; what it shows, and so its
        ``updated``, moves when the text does)."""
        with self.transaction():
            self.db.executemany(
                _SAVE_STATE,
                [(s.entry_id, s.version, s.status, s.url, s.etag, s.last_modified, s.attempts, s.error,
                  iso(s.retry_at), iso(s.checked)) for s in states])
            for t in texts:
                self.db.execute(
                    "UPDATE entries SET page_text=?, page_from=?, page_fetched=?,"
                    " match_state=CASE WHEN page_text != ? THEN NULL ELSE match_state END WHERE id=?",
                    (t.text, t.source, iso(t.fetched), t.text, t.entry_id))

    def page_state(self, entry_id: int) -> PageState | None:
        row = self.db.execute(f"SELECT {_STATE_COLUMNS} FROM pages WHERE entry_id=?", (entry_id,)).fetchone()
        return _state(row) if row else None

    def page_counts(self) -> dict[str, dict[str, Any]]:
        """Per source: entries by page status, and the latest error of a failing page."""
        out: dict[str, dict[str, Any]] = {}
        for sid, status, n in self.db.execute(
                "SELECT e.source_id, p.status, COUNT(*) FROM pages p JOIN entries e ON e.id = p.entry_id"
                " GROUP BY e.source_id, p.status"):
            out.setdefault(sid, {})[status] = n
        for sid, error, url, retry in self.db.execute(
                "SELECT e.source_id, p.error, p.url, p.retry_at FROM pages p JOIN entries e ON e.id = p.entry_id"
                " WHERE p.status IN ('retry', 'given up') ORDER BY p.checked"):
            out.setdefault(sid, {})["last_error"] = {"error": error, "url": url, "retry_at": retry}
        return out
