"""Sources: their configured URL, fetch state and validators."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from aggregator.models import EntryData, from_iso, iso
from aggregator.sources.decide import decide_source_sync
from aggregator.store.base import StoreBase
from aggregator.store.entries import upsert_entries
from aggregator.store.records import GUID_CHURN_FETCHES, SourceState, StoreResult


class SourcesStore(StoreBase):
    def sync_sources(self, sources: Iterable[tuple[str, str, str]]) -> None:
        """Make the sources table know every configured (id, url, role).

        A source whose configured URL changed starts over at the new URL (its
        validators and any permanent redirect belong to the old one)."""
        with self.transaction():
            stored = dict(self.db.execute("SELECT id, config_url FROM sources"))
            for s in decide_source_sync(sources, stored):
                if s.action == "add":
                    self.db.execute("INSERT INTO sources(id, url, config_url, role) VALUES (?,?,?,?)",
                                    (s.id, s.url, s.url, s.role))
                elif s.action == "reset":
                    self.db.execute(
                        "UPDATE sources SET url=?, config_url=?, role=?, etag=NULL, last_modified=NULL,"
                        " disabled=NULL, consecutive_failures=0, next_fetch=NULL WHERE id=?",
                        (s.url, s.url, s.role, s.id))
                else:
                    self.db.execute("UPDATE sources SET role=? WHERE id=?", (s.role, s.id))

    def source_states(self) -> dict[str, SourceState]:
        counts = dict(self.db.execute("SELECT source_id, COUNT(*) FROM entries GROUP BY source_id"))
        out = {}
        for r in self.db.execute(
            "SELECT id, url, config_url, role, title, etag, last_modified, last_fetch, last_success,"
            " last_status, last_error, consecutive_failures, next_fetch, disabled, last_new, last_updated,"
            " guid_churn FROM sources"
        ):
            out[r[0]] = SourceState(
                id=r[0], url=r[1], config_url=r[2], role=r[3], title=r[4], etag=r[5],
                last_modified=r[6], last_fetch=from_iso(r[7]), last_success=from_iso(r[8]),
                last_status=r[9], last_error=r[10], consecutive_failures=r[11],
                next_fetch=from_iso(r[12]), disabled=r[13], last_new=r[14], last_updated=r[15],
                entry_count=counts.get(r[0], 0), guid_churn=r[16] or "",
            )
        return out

    def record_success(self, source_id: str, role: str, entries: Sequence[EntryData] | None, *,
                       now: datetime, next_fetch: datetime, status: int,
                       etag: str | None, last_modified: str | None, url: str | None = None,
                       title: str | None = None, warning: str | None = None) -> StoreResult:
        """Store a fetched feed's entries and the source's new state in one transaction.

        ``entries`` is None for a 304 Not Modified."""
        new = updated = unchanged = rekeyed = 0
        churn = ""
        with self.transaction():
            if entries:
                new, updated, unchanged, rekeyed = upsert_entries(self.db, source_id, role, entries, now)
                row = self.db.execute("SELECT guid_churn FROM sources WHERE id=?", (source_id,)).fetchone()
                churn = ((row[0] if row else "") + ("1" if rekeyed else "0"))[-GUID_CHURN_FETCHES:]
                self.db.execute("UPDATE sources SET guid_churn=? WHERE id=?", (churn, source_id))
            # A success clears a 410's "disabled": the feed is back (run --once --all tried it).
            sets = ["last_fetch=?", "last_success=?", "last_status=?", "last_error=?",
                    "consecutive_failures=0", "next_fetch=?", "last_new=?", "last_updated=?", "disabled=NULL"]
            args: list[Any] = [iso(now), iso(now), status, warning, iso(next_fetch), new, updated]
            if entries is not None or etag or last_modified:
                sets += ["etag=?", "last_modified=?"]
                args += [etag, last_modified]
            if url:
                sets.append("url=?")
                args.append(url)
            if title:
                sets.append("title=?")
                args.append(title)
            self.db.execute(f"UPDATE sources SET {', '.join(sets)} WHERE id=?", (*args, source_id))
        return StoreResult(new, updated, unchanged, rekeyed, churn)

    def reschedule(self, source_id: str, next_fetch: datetime) -> None:
        """Move a source's next fetch (the daemon does when a reload shortens its interval)."""
        with self.transaction():
            self.db.execute("UPDATE sources SET next_fetch=? WHERE id=?", (iso(next_fetch), source_id))

    def record_failure(self, source_id: str, error: str, *, now: datetime, next_fetch: datetime,
                       status: int | None = None, disable: str | None = None,
                       url: str | None = None) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE sources SET last_fetch=?, last_status=?, last_error=?,"
                " consecutive_failures=consecutive_failures+1, next_fetch=?, disabled=COALESCE(?, disabled),"
                " url=COALESCE(?, url), last_new=0, last_updated=0 WHERE id=?",
                (iso(now), status, error[:2000], iso(next_fetch), disable, url, source_id))
