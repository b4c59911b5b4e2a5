"""Embeddings: vectors of texts, keyed by the text's hash."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aggregator.store.backend import upsert
from aggregator.store.base import StoreBase, _chunks

_PUT_EMBEDDING = upsert("embeddings", "text_hash, vector", "text_hash")


class EmbeddingsStore(StoreBase):
    def embeddings(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """text hash -> stored vector bytes, for the texts embedded before."""
        out: dict[str, bytes] = {}
        for chunk in _chunks(list(hashes)):
            out.update(self.db.execute(
                f"SELECT text_hash, vector FROM embeddings WHERE text_hash IN ({','.join('?' * len(chunk))})",
                chunk))
        return out

    def put_embeddings(self, rows: Sequence[tuple[str, bytes]]) -> None:
        with self.transaction():
            self.db.executemany(_PUT_EMBEDDING, rows)
