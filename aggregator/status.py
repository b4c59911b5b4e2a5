"""``aggregator status``: what the store says about each source, the translation
backlog and the last publication."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aggregator.config import Config, SourceConfig
from aggregator.models import iso
from aggregator.redaction import Redactor
from aggregator.storage import Store


def collect(config: Config, now: datetime | None = None) -> dict[str, Any]:
    """What ``status`` shows, secrets (URL passwords, keys) masked."""
    return Redactor(config.secrets).obj(_collect(config, now))


def _never_fetched(s: SourceConfig) -> dict[str, Any]:
    return {"id": s.id, "role": s.role, "url": s.url, "last_fetch": None, "last_success": None,
            "last_status": None, "result": "never fetched", "last_error": None, "entries": 0,
            "consecutive_failures": 0, "next_fetch": None, "disabled": None}


def _collect(config: Config, now: datetime | None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    if not config.db_path.exists():
        return {"store": str(config.db_path), "store_exists": False,
                "sources": [_never_fetched(s) for s in config.sources],
                "translation": {}, "last_publication": None, "store_bytes": 0}
    with Store(config.db_path) as store:
        states = store.source_states()
        sources = []
        for s in config.sources:
            st = states.get(s.id)
            if st is None:
                sources.append(_never_fetched(s))
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
            "translation": {"target": config.translation.target, **store.translation_backlog(config.translation.target),
                            "cached_texts": store.translation_cache_stats()},
            "last_publication": store.get_meta("last_publication"),
            "output": str(config.output_dir),
        }


def render_text(d: dict[str, Any]) -> str:
    lines = []
    if not d.get("store_exists"):
        lines.append(f"store {d['store']} does not exist yet: run `aggregator run --once` first")
    lines.append(f"{'source':<18} {'role':<6} {'entries':>7}  {'last fetch':<20} {'last success':<20} "
                 f"{'fails':>5}  {'next fetch':<20} result")
    for s in d["sources"]:
        lines.append(f"{s['id']:<18} {s['role']:<6} {s['entries']:>7}  {s['last_fetch'] or '-':<20} "
                     f"{s.get('last_success') or '-':<20} {s['consecutive_failures']:>5}  "
                     f"{'(disabled)' if s.get('disabled') else s['next_fetch'] or '-':<20} {s['result']}")
    t = d.get("translation") or {}
    if t:
        lines.append("")
        lines.append(f"translation to {t.get('target')}: {t.get('done', 0)} done, {t.get('pending', 0)} pending, "
                     f"{t.get('failed', 0)} failed, {t.get('untranslated', 0)} not yet attempted; cache: "
                     + (", ".join(f"{k} {v}" for k, v in (t.get('cached_texts') or {}).items()) or "empty"))
    if "entries" in d:
        lines.append(f"store: {d['entries']['posts']} posts, {d['entries']['articles']} articles, "
                     f"{d.get('matches', 0)} matches, {d.get('store_bytes', 0) / 1e6:.1f} MB ({d['store']})")
    lines.append(f"last publication: {d.get('last_publication') or 'never'}"
                 + (f" -> {d['output']}" if d.get("output") else ""))
    return "\n".join(lines)
