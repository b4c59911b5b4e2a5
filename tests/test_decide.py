"""The pure deciders: what a fetched feed means for the store, and what to do about an
entry's translation. Plain data in, intents out: no disk, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregator.entryview import EntryTexts
from aggregator.models import EntryData
from aggregator.sources.decide import Configured, Stored, decide_entries, describe, entry_hash, plan_sources
from aggregator.store.records import EntryTranslation
from aggregator.translating import decide

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _e(key: str, title: str = "T", published: datetime | None = None) -> EntryData:
    return EntryData(key=key, link=f"https://x.example/{key}", title=title, published=published)


def test_new_changed_and_unchanged_entries() -> None:
    same, edited = _e("a"), _e("b", "new title", NOW - timedelta(days=1))
    stored = {"a": (1, entry_hash(same), NOW), "b": (2, entry_hash(_e("b", "old title")), NOW)}
    got = decide_entries([same, edited, _e("c")], stored, NOW)
    assert got.unchanged == [1]
    assert [(c.id, c.entry.title, c.sort_date) for c in got.changed] == [(2, "new title", NOW - timedelta(days=1))]
    assert [(n.entry.key, n.sort_date) for n in got.new] == [("c", NOW)]  # undated: first seen


def test_a_changed_undated_entry_keeps_its_sort_date() -> None:
    stored = {"a": (1, entry_hash(_e("a", "old")), NOW)}
    (changed,) = decide_entries([_e("a", "new")], stored, NOW).changed
    assert changed.sort_date is None


def test_an_implausible_date_sorts_by_first_seen() -> None:
    seen = NOW - timedelta(days=3)
    epoch, ahead = datetime(1970, 1, 1, tzinfo=UTC), NOW + timedelta(days=30)
    got = decide_entries([_e("n", "x", epoch), _e("c", "y", ahead)], {"c": (2, "old", seen)}, NOW)
    assert [n.sort_date for n in got.new] == [NOW]
    assert [c.sort_date for c in got.changed] == [seen]


def test_a_source_whose_url_changed_keeps_its_entries_and_a_renamed_one_takes_them_along() -> None:
    got = plan_sources([Configured("a", "https://a/feed", "outlet", "A"), Configured("b", "https://b/new", "outlet", "B"),
                        Configured("c", "https://c/feed", "blog", "C"), Configured("e2", "https://e/feed", "outlet", "E")],
                       [Stored("a", "https://a/feed", "A", None, 3), Stored("b", "https://b/old", "B", None, 4),
                        Stored("e", "https://e/feed", "E", None, 5), Stored("gone", "https://g/feed", "G", None, 6),
                        Stored("old", "https://o/feed", "O", "2026-01-01T00:00:00Z", 1)])
    assert [(i.action, i.id, i.old_id, i.entries) for i in got] == [
        ("keep", "a", None, 3), ("url", "b", None, 4), ("add", "c", None, 0), ("rename", "e2", "e", 5),
        ("remove", "gone", None, 6)]
    assert describe(got) == [
        "b: url changed: fetched from the new url from now on; its 4 entries and their published ids are kept",
        "e -> e2: renamed (same url): its 5 entries and their published ids are kept",
        "gone: removed: no longer fetched; its 6 articles leave the publication (posts citing them keep their "
        "links); listed by `status` until retention drops them"]


def test_a_new_id_on_a_url_two_removed_sources_shared_is_a_new_source_and_a_removed_one_comes_back() -> None:
    got = plan_sources([Configured("x", "https://s/feed", "outlet", "X"), Configured("old", "https://o/feed", "outlet", "O")],
                       [Stored("p", "https://s/feed", None, None), Stored("q", "https://s/feed", None, None),
                        Stored("old", "https://o/feed", "O", "2026-01-01T00:00:00Z", 1)])
    assert [(i.action, i.id) for i in got] == [("add", "x"), ("restore", "old"), ("remove", "p"), ("remove", "q")]


def _t(status: str, *, digest: str = "d", attempts: int = 1, retry_at: datetime | None = None,
       updated: datetime = NOW) -> EntryTranslation:
    return EntryTranslation(1, "en", digest, status, None, None, attempts, retry_at, updated, None, None, None)


def test_translation_plan() -> None:
    since = NOW - timedelta(hours=1)
    assert decide.plan(None, "d", NOW, since) == decide.Plan("translate", 1)
    assert decide.plan(_t("done"), "d", NOW, since).action == "leave"
    assert decide.plan(_t("done", digest="old"), "d", NOW, since) == decide.Plan("translate", 1)  # text changed
    assert decide.plan(_t("failed"), "d", NOW, since).action == "leave"
    # failed before the translation setup changed: tried again
    assert decide.plan(_t("failed", updated=NOW - timedelta(days=1)), "d", NOW, since) == decide.Plan("translate", 1)
    assert decide.plan(_t("pending", retry_at=NOW + timedelta(minutes=5)), "d", NOW, since).action == "wait"
    assert decide.plan(_t("pending", attempts=2, retry_at=NOW - timedelta(seconds=1)), "d", NOW, since) == \
        decide.Plan("translate", 3)


def test_failures_back_off_then_fail_for_good() -> None:
    args = {"now": NOW, "backoff": timedelta(minutes=10), "max_backoff": timedelta(hours=1)}
    first = decide.after_failure(1, "en", "d", 1, "timeout", retryable=True, **args)  # type: ignore[arg-type]
    assert (first.status, first.retry_at) == ("pending", NOW + timedelta(minutes=10))
    capped = decide.after_failure(1, "en", "d", 9, "timeout", retryable=True, **args)  # type: ignore[arg-type]
    assert capped.retry_at == NOW + timedelta(hours=1)
    refused = decide.after_failure(1, "en", "d", decide.PERMANENT_ATTEMPTS, "HTTP 400", retryable=False,
                                   **args)  # type: ignore[arg-type]
    assert (refused.status, refused.retry_at, refused.error) == ("failed", None, "HTTP 400")
    early = decide.after_failure(1, "en", "d", 1, "HTTP 400", retryable=False, **args)  # type: ignore[arg-type]
    assert early.status == "pending"


def test_success_names_the_providers_and_keeps_every_text() -> None:
    texts = EntryTexts("見出し", ("リード",), ("本文",))
    out = {"見出し": ("Headline", "libre"), "リード": ("Lead", "cache"), "本文": ("Body", "deepl")}
    got = decide.after_success(1, "en", "d", 2, texts, out, NOW)
    assert (got.status, got.provider, got.title, got.summary, got.content) == (
        "done", "cache+deepl+libre", "Headline", '["Lead"]', '["Body"]')
