"""Several texts per request: what a provider that takes them answers, and how texts
are grouped into requests (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aggregator.exceptions import TranslationError


@dataclass
class Usage:
    """What a request cost, as the server's ``usage`` says (0 when it says nothing)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class BatchAnswer:
    """One request's outcome. ``error``: the answer as a whole was unusable (not the
    structure asked for), though it was paid for; else ``results`` has, per text, its
    checked translation or why that text failed."""

    results: list[str | TranslationError]
    usage: Usage = field(default_factory=Usage)
    error: TranslationError | None = None


@runtime_checkable
class BatchProvider(Protocol):
    """A provider that translates several texts per request (a language model)."""

    name: str
    max_chars: int  # characters of text per request
    max_texts: int  # texts per request
    url_bytes: int | None

    def translate(self, text: str, source: str, target: str, timeout: float) -> str: ...

    def translate_batch(self, texts: Sequence[str], source: str, target: str, timeout: float,
                        glossary: Mapping[str, str] | None = None) -> BatchAnswer: ...


def plan_batches(sizes: Sequence[int], max_items: int, max_chars: int) -> list[list[int]]:
    """Indexes of items (of these ``sizes``) grouped in order: each group at most
    ``max_items`` long and ``max_chars`` in total, except an item larger than that
    alone, which goes on its own."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if current and (len(current) >= max_items or total + size > max_chars):
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += size
    if current:
        groups.append(current)
    return groups
