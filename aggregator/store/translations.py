"""Translations: the text cache and each entry's translation state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from aggregator.models import from_iso, iso, text_hash
from aggregator.store.backend import upsert
from aggregator.store.base import StoreBase, _chunks
from aggregator.store.records import EntryTranslation

_CACHE_TRANSLATION = upsert("translation_cache",
                            "text_hash, source_lang, target_lang, text, translation, provider, created",
                            "text_hash, source_lang, target_lang")
_SET_ENTRY_TRANSLATION = upsert("entry_translations",
                                "entry_id, target, input_hash, status, provider, error, attempts, retry_at,"
                                " updated, title, summary, content", "entry_id, target")


class TranslationsStore(StoreBase):
    def cached_translations(self, texts: Iterable[str], source: str, target: str) -> dict[str, tuple[str, str]]:
        """text -> (translation, provider) for the texts already translated."""
        by_hash = {text_hash(t): t for t in texts}
        out: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(list(by_hash)):
            for h, tr, prov in self.db.execute(
                "SELECT text_hash, translation, provider FROM translation_cache WHERE source_lang=?"
                f" AND target_lang=? AND text_hash IN ({','.join('?' * len(chunk))})",
                (source, target, *chunk),
            ):
                out[by_hash[h]] = (tr, prov)
        return out

    def cache_translation(self, text: str, source: str, target: str, translation: str,
                          provider: str, now: datetime) -> None:
        with self.transaction():
            self.db.execute(
                _CACHE_TRANSLATION,
                (text_hash(text), source, target, text, translation, provider, iso(now)))

    def translation_cache_stats(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT provider, COUNT(*) FROM translation_cache GROUP BY provider"))

    def set_entry_translation(self, t: EntryTranslation) -> None:
        with self.transaction():
            self.db.execute(
                _SET_ENTRY_TRANSLATION,
                (t.entry_id, t.target, t.input_hash, t.status, t.provider, t.error, t.attempts,
                 iso(t.retry_at), iso(t.updated), t.title, t.summary, t.content))

    def entry_translations(self, ids: Iterable[int], target: str) -> dict[int, EntryTranslation]:
        out: dict[int, EntryTranslation] = {}
        for chunk in _chunks(list(ids)):
            for r in self.db.execute(
                "SELECT entry_id, target, input_hash, status, provider, error, attempts, retry_at, updated,"
                " title, summary, content FROM entry_translations WHERE target=? AND"
                f" entry_id IN ({','.join('?' * len(chunk))})", (target, *chunk),
            ):
                out[r[0]] = EntryTranslation(r[0], r[1], r[2], r[3], r[4], r[5], r[6], from_iso(r[7]),
                                             from_iso(r[8]) or datetime.min, r[9], r[10], r[11])
        return out

    def translation_backlog(self, target: str) -> dict[str, int]:
        rows = dict(self.db.execute(
            "SELECT status, COUNT(*) FROM entry_translations WHERE target=? GROUP BY status", (target,)))
        untouched = self.db.execute(
            "SELECT COUNT(*) FROM entries WHERE (language IS NULL OR language != ?) AND id NOT IN"
            " (SELECT entry_id FROM entry_translations WHERE target=?)", (target, target)).fetchone()[0]
        rows["untranslated"] = untouched
        return rows

    # -- what providers were sent (status) ----------------------------------------------
    def record_translation_usage(self, cycle: Mapping[str, tuple[int, int, int, int]], now: datetime) -> None:
        """One cycle's (requests, characters, prompt tokens, completion tokens) per
        provider: added to the totals, and kept as "the last cycle" (0 for a provider
        this cycle did not use)."""
        with self.transaction():
            self.db.execute("UPDATE translation_usage SET cycle_requests=0, cycle_characters=0,"
                            " cycle_prompt_tokens=0, cycle_completion_tokens=0")
            for provider, (req, chars, prompt, completion) in cycle.items():
                self.db.execute(
                    "INSERT INTO translation_usage(provider, since) VALUES (?, ?) ON CONFLICT(provider) DO NOTHING",
                    (provider, iso(now)))
                self.db.execute(
                    "UPDATE translation_usage SET requests=requests+?, characters=characters+?,"
                    " prompt_tokens=prompt_tokens+?, completion_tokens=completion_tokens+?, cycle_requests=?,"
                    " cycle_characters=?, cycle_prompt_tokens=?, cycle_completion_tokens=?, last_used=?"
                    " WHERE provider=?",
                    (req, chars, prompt, completion, req, chars, prompt, completion, iso(now), provider))

    def translation_usage(self) -> dict[str, dict[str, dict[str, int] | str | None]]:
        """provider -> {"cycle": {...}, "total": {...}, "since", "last_used"}: requests,
        characters, prompt_tokens, completion_tokens."""
        names = ("requests", "characters", "prompt_tokens", "completion_tokens")
        out: dict[str, dict[str, dict[str, int] | str | None]] = {}
        for r in self.db.execute(
                "SELECT provider, requests, characters, prompt_tokens, completion_tokens, cycle_requests,"
                " cycle_characters, cycle_prompt_tokens, cycle_completion_tokens, since, last_used"
                " FROM translation_usage ORDER BY provider"):
            out[r[0]] = {"cycle": dict(zip(names, r[5:9], strict=True)), "total": dict(zip(names, r[1:5], strict=True)),
                         "since": r[9], "last_used": r[10]}
        return out
