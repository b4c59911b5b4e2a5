"""Matches: which outlet articles each post cites, with evidence."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from aggregator.models import Match, iso
from aggregator.store.base import StoreBase, _chunks


class MatchesStore(StoreBase):
    def set_matches(self, post_id: int, matches: Sequence[Match], state: str | None, now: datetime) -> bool:
        """Replace a post's matches. Returns True when they changed. ``state`` None leaves
        the post to be matched again. Every article matched is marked cited for good:
        retention never forgets it, even if a later match (say, without a translator)
        loses it."""
        with self.transaction():
            before = {(r[0], r[1]) for r in self.db.execute(
                "SELECT article_id, evidence FROM matches WHERE post_id=?", (post_id,))}
            after = {(m.article_id, m.evidence) for m in matches}
            if before != after:
                self.db.execute("DELETE FROM matches WHERE post_id=?", (post_id,))
                self.db.executemany(
                    "INSERT INTO matches(post_id, article_id, score, method, evidence, created)"
                    " VALUES (?,?,?,?,?,?)",
                    [(m.post_id, m.article_id, m.score, m.method, m.evidence, iso(now)) for m in matches])
            self.db.executemany("UPDATE entries SET cited=1 WHERE id=? AND cited=0",
                                [(m.article_id,) for m in matches])
            self.db.execute("UPDATE entries SET match_state=? WHERE id=?", (state, post_id))
        return before != after

    def matches_for(self, post_ids: Iterable[int]) -> dict[int, list[Match]]:
        out: dict[int, list[Match]] = {}
        for chunk in _chunks(list(post_ids), 500):
            for r in self.db.execute(
                "SELECT post_id, article_id, score, method, evidence FROM matches"
                f" WHERE post_id IN ({','.join('?' * len(chunk))}) ORDER BY post_id, score DESC, article_id",
                chunk,
            ):
                out.setdefault(r[0], []).append(Match(r[0], r[1], r[2], r[3], r[4]))
        return out

    def all_matches(self) -> list[Match]:
        return [Match(*r) for r in self.db.execute(
            "SELECT post_id, article_id, score, method, evidence FROM matches ORDER BY post_id, article_id")]
