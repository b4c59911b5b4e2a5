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
        return self.set_many_matches([(post_id, matches, state)], now) > 0

    def set_many_matches(self, results: Sequence[tuple[int, Sequence[Match], str | None]], now: datetime) -> int:
        """:meth:`set_matches` for many posts, (post id, matches, state) each, in one
        transaction (a cold cycle matches thousands of posts). Returns how many posts'
        matches changed."""
        if not results:
            return 0
        before: dict[int, set[tuple[int, str]]] = {}
        final: dict[int, Sequence[Match]] = {}  # the posts whose matches change, and to what
        changed = 0
        created = iso(now)
        with self.transaction():
            for chunk in _chunks(list(dict.fromkeys(p for p, _, _ in results))):
                for r in self.db.execute("SELECT post_id, article_id, evidence FROM matches"
                                         f" WHERE post_id IN ({','.join('?' * len(chunk))})", chunk):
                    before.setdefault(r[0], set()).add((r[1], r[2]))
            for post_id, matches, _ in results:
                after = {(m.article_id, m.evidence) for m in matches}
                if before.get(post_id, set()) != after:
                    changed += 1
                    final[post_id] = matches
                    before[post_id] = after
            self.db.executemany("DELETE FROM matches WHERE post_id=?", [(p,) for p in final])
            self.db.executemany(
                "INSERT INTO matches(post_id, article_id, score, method, evidence, created) VALUES (?,?,?,?,?,?)",
                [(m.post_id, m.article_id, m.score, m.method, m.evidence, created)
                 for matches in final.values() for m in matches])
            self.db.executemany("UPDATE entries SET cited=1 WHERE id=? AND cited=0",
                                [(m.article_id,) for _, matches, _ in results for m in matches])
            self.db.executemany("UPDATE entries SET match_state=? WHERE id=?",
                                [(state, post_id) for post_id, _, state in results])
        return changed

    def match_states(self, post_ids: Iterable[int]) -> dict[int, str | None]:
        """:meth:`match_state` of many posts, in a few queries; an unknown id is left out."""
        out: dict[int, str | None] = {}
        for chunk in _chunks(list(post_ids)):
            out.update(self.db.execute(
                f"SELECT id, match_state FROM entries WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def matches_for(self, post_ids: Iterable[int]) -> dict[int, list[Match]]:
        out: dict[int, list[Match]] = {}
        for chunk in _chunks(list(post_ids)):
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
