"""What to do about an entry's translation, decided over plain data: translate it now,
wait for its retry time, or leave it (done, or failed for good under this setup); and
what an attempt's outcome makes of it (done, pending with backoff, failed).

The cycle (aggregator/running/cycle.py) reads the entry's previous state, asks these
functions, and stores the record they return."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from aggregator.entryview import EntryTexts
from aggregator.store.records import EntryTranslation

# A text every provider refuses for good (language not supported, HTTP 400) is tried
# this many times, with backoff, before its entry is marked failed.
PERMANENT_ATTEMPTS = 3


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Backoff before retrying an entry's translation: base × 2^(attempts-1), capped."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True, slots=True)
class Plan:
    action: Literal["leave", "wait", "translate"]
    attempts: int = 0  # the number this attempt will be, for "translate"


def plan(prev: EntryTranslation | None, digest: str, now: datetime, chain_since: datetime | None) -> Plan:
    """``leave`` a done entry, or one failed for good since the translation setup last
    changed; ``wait`` for a pending entry's retry time; else ``translate``."""
    same = prev is not None and prev.input_hash == digest
    if prev is None or not same:
        return Plan("translate", 1)
    if prev.status == "done":
        return Plan("leave")
    if prev.status == "failed" and (chain_since is None or prev.updated >= chain_since):
        return Plan("leave")
    if prev.status == "pending":
        if prev.retry_at and prev.retry_at > now:
            return Plan("wait")
        return Plan("translate", prev.attempts + 1)
    return Plan("translate", 1)


def after_failure(entry_id: int, target: str, digest: str, attempts: int, reason: str, *, retryable: bool,
                  now: datetime, backoff: timedelta, max_backoff: timedelta) -> EntryTranslation:
    """Pending with a retry time, or failed once a refusal for good has been seen
    :data:`PERMANENT_ATTEMPTS` times."""
    if not retryable and attempts >= PERMANENT_ATTEMPTS:
        return EntryTranslation(entry_id, target, digest, "failed", None, reason, attempts, None, now,
                                None, None, None)
    delay = retry_delay(attempts, backoff.total_seconds(), max_backoff.total_seconds())
    return EntryTranslation(entry_id, target, digest, "pending", None, reason, attempts,
                            now + timedelta(seconds=delay), now, None, None, None)


def after_success(entry_id: int, target: str, digest: str, attempts: int, texts: EntryTexts,
                  out: Mapping[str, tuple[str, str]], now: datetime) -> EntryTranslation:
    """Done, with every text a reader sees in ``target`` (``out``: text -> (translation,
    provider)); the providers that did it are named ("cache" when none was asked)."""
    providers = sorted({p for _, p in out.values() if p != "none"}) or ["cache"]
    return EntryTranslation(
        entry_id, target, digest, "done", "+".join(providers), None, attempts, None, now,
        out.get(texts.title, (texts.title, ""))[0],
        json.dumps([out[s][0] if s in out else s for s in texts.summary], ensure_ascii=False),
        json.dumps([out[s][0] if s in out else s for s in texts.content], ensure_ascii=False))
