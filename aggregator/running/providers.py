"""Translation providers' health across cycles: which are down, since when, and why.

Pure: :func:`next_states` takes the previous states and what the chain saw in one cycle,
and returns the new states and the transitions to log (one line when a provider goes
down, one when it is back; never one per text). The states are kept in the store's meta
table, so that ``status`` shows them and the next cycle (or process) compares with them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from aggregator.models import iso

META_KEY = "translation_providers"


@dataclass(frozen=True, slots=True)
class ProviderState:
    name: str
    state: str  # "up" | "down"
    since: str  # ISO 8601 UTC: when it entered this state
    error: str | None = None  # the last failure (down only)


@dataclass(frozen=True, slots=True)
class Transition:
    name: str
    state: str  # "down" | "up" (back)
    error: str | None


def next_states(previous: Mapping[str, ProviderState], configured: Sequence[str], failed: Mapping[str, str],
                succeeded: Sequence[str], now: datetime) -> tuple[dict[str, ProviderState], list[Transition]]:
    """A provider that translated something this cycle is up; one that only failed is
    down; one the cycle did not call keeps its state (nothing to say about it)."""
    when = iso(now) or ""
    states: dict[str, ProviderState] = {}
    events: list[Transition] = []
    for name in configured:
        prev = previous.get(name)
        if name in succeeded:
            states[name] = prev if prev is not None and prev.state == "up" else ProviderState(name, "up", when)
            if prev is not None and prev.state == "down":
                events.append(Transition(name, "up", None))
        elif name in failed:
            if prev is not None and prev.state == "down":
                states[name] = ProviderState(name, "down", prev.since, failed[name])
            else:
                states[name] = ProviderState(name, "down", when, failed[name])
                events.append(Transition(name, "down", failed[name]))
        elif prev is not None:
            states[name] = prev
    return states, events


def dump_states(states: Mapping[str, ProviderState]) -> str:
    return json.dumps([asdict(s) for s in states.values()], ensure_ascii=False)


def load_states(text: str | None) -> dict[str, ProviderState]:
    if not text:
        return {}
    try:
        rows = json.loads(text)
        return {r["name"]: ProviderState(r["name"], r["state"], r["since"], r.get("error")) for r in rows}
    except (ValueError, KeyError, TypeError):
        return {}  # an unreadable record only costs the comparison with the last cycle
