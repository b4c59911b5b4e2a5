"""Publication records: ids fixed at first publication, what was shown."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aggregator.models import from_iso, iso
from aggregator.store.backend import upsert
from aggregator.store.base import StoreBase, _chunks
from aggregator.store.records import Publication

_SAVE_PUBLICATION = upsert("publications", "entry_id, pub_id, first_published, updated, visible_hash", "entry_id")


class PublicationsStore(StoreBase):
    def publications(self, ids: Iterable[int]) -> dict[int, Publication]:
        out: dict[int, Publication] = {}
        for chunk in _chunks(list(ids)):
            for r in self.db.execute(
                "SELECT entry_id, pub_id, first_published, updated, visible_hash FROM publications"
                f" WHERE entry_id IN ({','.join('?' * len(chunk))})", chunk,
            ):
                out[r[0]] = Publication(r[0], r[1], from_iso(r[2]), from_iso(r[3]), r[4])  # type: ignore[arg-type]
        return out

    def save_publications(self, pubs: Sequence[Publication]) -> None:
        if not pubs:
            return
        with self.transaction():
            self.db.executemany(
                _SAVE_PUBLICATION,
                [(p.entry_id, p.pub_id, iso(p.first_published), iso(p.updated), p.visible_hash) for p in pubs])
