"""Translation providers' health across cycles (aggregator.running.providers, pure): one
transition when a provider goes down, one when it is back, none in between."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregator.running.providers import ProviderState, dump_states, load_states, next_states

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def test_down_once_back_once_and_silence_in_between() -> None:
    states, events = next_states({}, ["libre", "google"], {"libre": "libre: connection failed"}, ["google"], T0)
    assert [(e.name, e.state) for e in events] == [("libre", "down")]
    assert states["libre"] == ProviderState("libre", "down", "2026-12-06T08:00:00Z", "libre: connection failed")
    assert states["google"].state == "up"
    # still down for the next 10 cycles: no new line, the time it went down is kept
    for n in range(1, 11):
        states, events = next_states(states, ["libre", "google"], {"libre": "libre: timed out"}, ["google"],
                                     T0 + timedelta(minutes=15 * n))
        assert events == []
    assert states["libre"].since == "2026-12-06T08:00:00Z" and states["libre"].error == "libre: timed out"
    # a cycle that did not call it (nothing to translate) says nothing either
    states, events = next_states(states, ["libre", "google"], {}, [], T0 + timedelta(hours=4))
    assert events == [] and states["libre"].state == "down"
    states, events = next_states(states, ["libre", "google"], {}, ["libre"], T0 + timedelta(hours=5))
    assert [(e.name, e.state) for e in events] == [("libre", "up")]
    assert states["libre"].since == "2026-12-06T13:00:00Z"


def test_states_round_trip_through_the_store_text() -> None:
    states, _ = next_states({}, ["libre"], {"libre": "x"}, [], T0)
    assert load_states(dump_states(states)) == states
    assert load_states("not json") == {} and load_states(None) == {}


def test_run_once_lines_failed_this_cycle_or_still_known_down() -> None:
    from aggregator.running.cycle import CycleReport

    states, _ = next_states({}, ["libre", "google"], {"libre": "libre: connection failed: h:1: Connection refused"},
                            [], T0)
    report = CycleReport(translation_pending=15, waiting_texts=55, provider_states=states)
    # a cycle that did not call it (nothing due): said from what the store knows
    assert report.provider_warnings() == [
        "translation: libre down since 2026-12-06 08:00 UTC (libre: connection failed: h:1: Connection refused); "
        "55 texts of 15 entries wait for a translation"]
    report.provider_failures = {"libre": "libre: timed out"}
    assert report.provider_warnings() == [
        "translation: libre failed this cycle (libre: timed out); 55 texts of 15 entries wait for a translation"]
    # nothing waits: nothing to say
    assert CycleReport(provider_states=states).provider_warnings() == []
