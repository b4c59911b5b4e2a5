"""The cooperating workers' decisions (aggregator.running.workplan): pure, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config import parse_config
from aggregator.running import workplan
from aggregator.store import SourceState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _config(*sources: tuple[str, str]):
    lines = ["storage: {url: 'postgresql://u:p@127.0.0.1:5432/agg'}", "sources:"]
    lines += [f"  - {{id: {sid}, url: '{url}', role: outlet}}" for sid, url in sources]
    return parse_config("\n".join(lines) + "\n")


def _state(sid: str, url: str, next_fetch: datetime | None, *, disabled: str | None = None) -> SourceState:
    return SourceState(id=sid, url=url, config_url=url, role="outlet", title=None, etag=None, last_modified=None,
                       last_fetch=None if next_fetch is None else next_fetch - timedelta(minutes=30),
                       last_success=None, last_status=200, last_error=None, consecutive_failures=0,
                       next_fetch=next_fetch, disabled=disabled, last_new=0, last_updated=0)


def test_due_sources_are_batched_per_host_longest_waiting_first() -> None:
    cfg = _config(("a1", "https://a.example/1.xml"), ("b1", "https://b.example/1.xml"),
                  ("a2", "https://A.example:8443/2.xml"), ("c1", "https://c.example/1.xml"),
                  ("b2", "https://b.example/2.xml"))
    states = {
        "a1": _state("a1", "https://a.example/1.xml", NOW - timedelta(minutes=1)),
        "a2": _state("a2", "https://A.example:8443/2.xml", NOW - timedelta(minutes=2)),
        "b1": _state("b1", "https://b.example/1.xml", NOW - timedelta(minutes=5)),
        "b2": _state("b2", "https://b.example/2.xml", NOW),  # not due yet (a second after)
        "c1": _state("c1", "https://c.example/1.xml", NOW + timedelta(minutes=5)),  # not due
    }
    batches = workplan.fetch_batches(cfg, states, NOW)
    # a.example on two ports is one host (politeness is per host); b waited longest.
    assert batches == [workplan.FetchBatch("b.example", ("b1",)), workplan.FetchBatch("a.example", ("a1", "a2"))]
    assert batches[1].lock == "fetch:a.example" and batches[1].label == "fetch a.example (2 sources)"


def test_a_never_fetched_source_comes_first_and_a_disabled_one_never() -> None:
    cfg = _config(("old", "https://old.example/f"), ("new", "https://new.example/f"),
                  ("gone", "https://gone.example/f"))
    states = {"old": _state("old", "https://old.example/f", NOW - timedelta(hours=3)),
              "gone": _state("gone", "https://gone.example/f", None, disabled="HTTP 410")}
    assert [b.host for b in workplan.fetch_batches(cfg, states, NOW)] == ["new.example", "old.example"]


def test_a_permanently_redirected_source_counts_against_its_new_host() -> None:
    cfg = _config(("moved", "https://old.example/f"), ("other", "https://new.example/g"))
    due = NOW - timedelta(seconds=1)
    states = {"moved": replace(_state("moved", "https://new.example/f", due), config_url="https://old.example/f"),
              "other": _state("other", "https://new.example/g", due)}
    assert workplan.fetch_batches(cfg, states, NOW) == [workplan.FetchBatch("new.example", ("moved", "other"))]
    assert workplan.sources_of_host(cfg, states, "new.example") == ["moved", "other"]
    assert workplan.sources_of_host(cfg, states, "old.example") == []


def test_nothing_due_enqueues_nothing() -> None:
    cfg = _config(("a", "https://a.example/f"))
    assert workplan.fetch_batches(cfg, {"a": _state("a", "https://a.example/f", NOW + timedelta(seconds=1))},
                                  NOW) == []


def test_a_source_is_due_a_second_after_its_stored_next_fetch() -> None:
    """Stored times are whole seconds, rounded down: due at the stored time itself, a
    source fetched at 12:00:00.9 (next fetch stored as 12:01:00) would be requested again
    59.1 s later, within its minute."""
    cfg = _config(("a", "https://a.example/f"))
    at = {"a": _state("a", "https://a.example/f", NOW)}
    assert workplan.fetch_batches(cfg, at, NOW) == []
    assert workplan.fetch_batches(cfg, at, NOW + timedelta(milliseconds=999)) == []
    assert workplan.fetch_batches(cfg, at, NOW + timedelta(seconds=1)) == [workplan.FetchBatch("a.example", ("a",))]


def test_processing_runs_when_a_fetch_brought_something_or_every_schedule_period() -> None:
    assert workplan.wants_processing(1, 0, 0) and workplan.wants_processing(0, 2, 0)
    assert workplan.wants_processing(0, 0, 3) and not workplan.wants_processing(0, 0, 0)
    every = timedelta(minutes=30)
    assert workplan.processing_due(None, NOW, every)
    assert not workplan.processing_due(NOW - timedelta(minutes=29), NOW, every)
    assert workplan.processing_due(NOW - timedelta(minutes=30), NOW, every)


def test_a_worker_silent_longer_than_the_stall_timeout_is_lost() -> None:
    beats = {"h1:1": NOW - timedelta(seconds=5), "h2:2": NOW - workplan.STALLED_AFTER - timedelta(seconds=1),
             "h3:3": NOW - workplan.STALLED_AFTER}
    assert workplan.lost_workers(beats, NOW) == ["h2:2"]
    assert workplan.lost_workers(beats, NOW, timedelta(seconds=4)) == ["h1:1", "h2:2", "h3:3"]


def test_the_takeover_bound_adds_up_detection_reaping_and_the_next_poll_or_plan() -> None:
    assert workplan.takeover_bound() == workplan.STALLED_AFTER + workplan.REAP_EVERY + workplan.PLAN_EVERY
    assert workplan.takeover_bound(timedelta(seconds=30), timedelta(seconds=5), timedelta(seconds=9),
                                   timedelta(seconds=5)) == timedelta(seconds=44)
    # The bound the docs promise (docs/scaling.md).
    assert workplan.takeover_bound() <= timedelta(seconds=30)


def test_periodic_crons_fire_every_few_seconds() -> None:
    assert workplan.every_seconds_cron(timedelta(seconds=5)) == "* * * * * */5"
    with pytest.raises(ValueError):
        workplan.every_seconds_cron(timedelta(seconds=7))
    with pytest.raises(ValueError):
        workplan.every_seconds_cron(timedelta(milliseconds=500))


def test_what_a_worker_holds_and_what_it_really_fetched() -> None:
    assert workplan.holds_text({"process (match, translate, publish)", "fetch a.example"}) == \
        "fetch a.example; process (match, translate, publish)"
    assert workplan.holds_text(set()) == ""
    assert workplan.fetched_ids([("a", "new entries"), ("b", "abandoned"), ("c", "skipped"), ("d", "error"),
                                 ("e", "not modified")]) == ["a", "d", "e"]


def test_the_plan_runs_often_enough_for_the_shortest_interval() -> None:
    cfg = _config(("a", "https://a.example/f"))
    assert workplan.plan_period(cfg) == workplan.PLAN_EVERY
    short = cfg.model_copy(update={"sources": [cfg.sources[0].model_copy(update={"every": timedelta(seconds=2)})]})
    assert workplan.plan_period(short) == timedelta(seconds=2)
    odd = cfg.model_copy(update={"sources": [cfg.sources[0].model_copy(update={"every": timedelta(seconds=4)})]})
    assert workplan.plan_period(odd) == timedelta(seconds=4)
