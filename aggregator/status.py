"""``aggregator status``: what the store says about each source, the translation
backlog and the last publication."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from aggregator.config import Config
from aggregator.models import iso
from aggregator.storage import Store


def collect(config: Config, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    if not config.db_path.exists():
        return {"store": str(config.db_path), "store_exists": False, "sources": [
            {"id": s.id, "role": s.role, "url": s.url, "last_fetch": None, "result": "never fetched",
             "entries": 0, "consecutive_failures": 0, "next_fetch": None} for s in config.sources],
            "translation": {}, "last_publication": None, "store_bytes": 0}
    with Store(config.db_path) as store:
        states = store.source_states()
        sources = []
        for s in config.sources:
            st = states.get(s.id)
            if st is None:
                sources.append({"id": s.id, "role": s.role, "url": s.url, "last_fetch": None,
                                "result": "never fetched", "entries": 0, "consecutive_failures": 0,
                                "next_fetch": None})
                continue
            if st.disabled:
                result = f"disabled: {st.disabled}"
            elif st.last_fetch is None:
                result = "never fetched"
            elif st.consecutive_failures:
                result = f"error: {st.last_error}"
            elif st.last_status == 304:
                result = "not modified"
            else:
                result = f"ok: {st.last_new} new, {st.last_updated} updated"
                if st.last_error:
                    result += f" (warning: {st.last_error})"
            sources.append({
                "id": s.id, "role": s.role, "url": st.url, "last_fetch": iso(st.last_fetch),
                "last_success": iso(st.last_success), "last_status": st.last_status, "result": result,
                "last_error": st.last_error, "entries": st.entry_count,
                "consecutive_failures": st.consecutive_failures, "next_fetch": iso(st.next_fetch),
                "disabled": st.disabled,
            })
        counts = store.count_entries()
        return {
            "store": str(config.db_path), "store_exists": True, "store_bytes": store.size_bytes(),
            "sources": sources,
            "entries": {"posts": counts.get("blog", 0), "articles": counts.get("outlet", 0)},
            "matches": len(store.all_matches()),
            "translation": translation_backlog(store, config),
            "last_publication": store.get_meta("last_publication"),
            "output": str(config.output_dir),
        }


def translation_backlog(store: Store, config: Config) -> dict[str, Any]:
    """Where the translation of the entries the publication holds stands: done, pending
    (with the next retry), failed (with the reasons), not yet attempted, not needed (in
    the readers' language); and how many texts each provider translated (the cache)."""
    from aggregator.language import entry_language, same_language
    from aggregator.publishing import selection

    target = config.translation.target
    declared = {s.id: s.language for s in config.sources}
    entries = selection(store, config)
    rows = store.entry_translations([e.id for e in entries], target)
    counts = {"done": 0, "pending": 0, "failed": 0, "untranslated": 0, "not_needed": 0}
    by_provider: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    next_retry = None
    for e in entries:
        lang = entry_language(e.title, e.summary, e.content, declared=declared.get(e.source_id, "auto"),
                              feed_language=e.language)
        if same_language(lang, target):
            counts["not_needed"] += 1
            continue
        row = rows.get(e.id)
        if row is None:
            counts["untranslated"] += 1
            continue
        counts[row.status] = counts.get(row.status, 0) + 1
        if row.status == "done":
            by_provider.update((row.provider or "cache").split("+"))
        elif row.status == "failed":
            reasons[row.error or "unknown"] += 1
        elif row.retry_at is not None and (next_retry is None or row.retry_at < next_retry):
            next_retry = row.retry_at
    return {"target": target, **counts, "next_retry": iso(next_retry),
            "entries_by_provider": dict(by_provider.most_common()),
            "failed_reasons": dict(reasons.most_common(5)),
            "cached_texts": store.translation_cache_stats()}


def render_text(d: dict[str, Any]) -> str:
    lines = []
    if not d.get("store_exists"):
        lines.append(f"store {d['store']} does not exist yet: run `aggregator run --once` first")
    lines.append(f"{'source':<18} {'role':<6} {'entries':>7}  {'last fetch':<20} {'fails':>5}  {'next fetch':<20} result")
    for s in d["sources"]:
        lines.append(f"{s['id']:<18} {s['role']:<6} {s['entries']:>7}  {s['last_fetch'] or '-':<20} "
                     f"{s['consecutive_failures']:>5}  {s['next_fetch'] or '-':<20} {s['result']}")
    t = d.get("translation") or {}
    if t:
        lines.append("")
        retry = f" (next retry {t['next_retry']})" if t.get("next_retry") else ""
        lines.append(f"translation to {t.get('target')} of the published entries: {t.get('done', 0)} done, "
                     f"{t.get('pending', 0)} pending{retry}, {t.get('failed', 0)} failed, "
                     f"{t.get('untranslated', 0)} not yet attempted, {t.get('not_needed', 0)} not needed")
        for reason, n in (t.get("failed_reasons") or {}).items():
            lines.append(f"  failed ({reason}): {n}")
        lines.append("texts translated, by provider: "
                     + (", ".join(f"{k} {v}" for k, v in (t.get('cached_texts') or {}).items()) or "none yet"))
    if "entries" in d:
        lines.append(f"store: {d['entries']['posts']} posts, {d['entries']['articles']} articles, "
                     f"{d.get('matches', 0)} matches, {d.get('store_bytes', 0) / 1e6:.1f} MB ({d['store']})")
    lines.append(f"last publication: {d.get('last_publication') or 'never'}"
                 + (f" -> {d['output']}" if d.get("output") else ""))
    return "\n".join(lines)
