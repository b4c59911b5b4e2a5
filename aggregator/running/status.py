"""``aggregator status``: what the store says about each source, the translation
backlog of the feed, the last publication, the store, and whether a run holds it.

:func:`collect` reads the store (beside a running daemon: SQLite in WAL mode lets
it); :func:`translation_backlog` and :func:`source_result` are pure; :func:`render_text`
draws a table with rich (styled and compact on a terminal, plain columns otherwise, so
that it greps and diffs well)."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aggregator.config import Config
from aggregator.models import Entry, from_iso, iso
from aggregator.redaction import Redactor
from aggregator.running import workplan
from aggregator.running.providers import META_KEY as PROVIDERS_KEY
from aggregator.running.providers import load_states
from aggregator.store import EntryTranslation, SourceState, Store
from aggregator.store import workers as worker_rows
from aggregator.store.records import guid_churn_warning


def source_result(st: SourceState | None) -> str:
    """The outcome of a source's last fetch, in words."""
    if st is None or (st.last_fetch is None and not st.disabled):
        return "never fetched"
    if st.disabled:
        return f"disabled: {st.disabled}"
    if st.consecutive_failures:
        if (st.last_error or "").startswith("fetch: skipped: "):  # not tried: its server did not answer
            return (st.last_error or "").removeprefix("fetch: ")
        return f"error: {st.last_error}"
    result = "not modified" if st.last_status == 304 else f"ok: {st.last_new} new, {st.last_updated} updated"
    if st.last_error:
        result += f" (warning: {st.last_error})"
    if st.unstable_guids:
        result += f" (warning: {guid_churn_warning(st.guid_churn)})"
    return result


def translation_backlog(entries: Sequence[Entry], translations: Mapping[int, EntryTranslation],
                        source_languages: Mapping[str, str], target: str) -> dict[str, Any]:
    """Of the entries the feed shows, how many need translating and where they stand:
    done, pending (with the next retry), failed (with the reasons), not yet attempted,
    not needed (already in the readers' language); and which providers did them."""
    from aggregator.entryview import reader_language
    from aggregator.language import same_language

    out: dict[str, Any] = {"target": target, "in_feed": len(entries), "needed": 0, "done": 0, "pending": 0,
                           "failed": 0, "untranslated": 0, "not_needed": 0, "next_retry": None}
    by_provider: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    retries: list[datetime] = []
    for e in entries:
        lang = reader_language(e, source_languages.get(e.source_id, "auto"))
        if same_language(lang, target):
            out["not_needed"] += 1
            continue
        out["needed"] += 1
        t = translations.get(e.id)
        if t is None:
            out["untranslated"] += 1
        elif t.status == "done":
            out["done"] += 1
            by_provider.update((t.provider or "cache").split("+"))
        elif t.status == "failed":
            out["failed"] += 1
            reasons[t.error or "unknown"] += 1
        else:
            out["pending"] += 1
            if t.retry_at is not None:
                retries.append(t.retry_at)
    out["backlog"] = out["needed"] - out["done"]
    out["next_retry"] = iso(min(retries)) if retries else None
    out["entries_by_provider"] = dict(by_provider.most_common())
    out["failed_reasons"] = dict(reasons.most_common(5))
    return out


def _pages(counts: Mapping[str, Any] | None) -> dict[str, Any]:
    """A source's entries by the state of their own page (sources[].full_text)."""
    c = counts or {}
    return {"from_page": c.get("done", 0), "waiting": c.get("waiting", 0), "failing": c.get("retry", 0),
            "given_up": c.get("given up", 0), "last_error": c.get("last_error")}


def page_line(source_id: str, p: Mapping[str, Any], now: datetime) -> str | None:
    """``status``'s line on a source's pages, when it has any to speak of."""
    if not (p["from_page"] or p["waiting"] or p["failing"] or p["given_up"]):
        return None
    line = f"full text: {source_id}: {p['from_page']} entries read from their pages"
    if p["waiting"]:
        line += f", {p['waiting']} waiting for a later cycle"
    if p["failing"]:
        line += f", {p['failing']} failing (their excerpt is kept)"
    if p["given_up"]:
        line += f", {p['given_up']} given up"
    err = p.get("last_error")
    if err:
        retry = f"; next try {ago(err['retry_at'], now)}" if err.get("retry_at") else ""
        line += f"; last error: {err['url']}: {err['error']}{retry}"
    return line


def _never(config: Config, running: str | None) -> dict[str, Any]:
    return {"store": config.store_name, "store_exists": False, "running": running, "workers": [], "sources": [
        {"id": s.id, "role": s.role, "url": s.url, "last_fetch": None, "last_success": None, "last_status": None,
         "result": "never fetched", "last_error": None, "entries": 0, "consecutive_failures": 0,
         "next_fetch": None, "due": True, "disabled": None, "full_text": s.full_text, "pages": _pages(None)}
        for s in config.sources],
        "translation": {}, "last_publication": None, "store_bytes": 0, "output": str(config.output_dir)}


def collect(config: Config, store: Store | None, running: str | None, now: datetime) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-ready data, secrets (URL passwords, keys) masked.
    ``store`` is None when there is none yet; ``running`` says who holds the run lock."""
    masked: dict[str, Any] = Redactor(config.secrets).obj(_collect(config, store, running, now))
    return masked


def _collect(config: Config, store: Store | None, running: str | None, now: datetime) -> dict[str, Any]:
    from aggregator.publishing.publish import selection

    if store is None:
        return _never(config, running)
    states = store.source_states()
    pages = store.page_counts()
    fetched_by = worker_rows.fetched_by(store)
    sources = []
    for s in config.sources:
        st = states.get(s.id)
        nxt = st.next_fetch if st is not None else None
        sources.append({
            "id": s.id, "role": s.role, "url": st.url if st else s.url,
            "last_fetch": iso(st.last_fetch) if st else None,
            "last_success": iso(st.last_success) if st else None,
            "last_status": st.last_status if st else None, "result": source_result(st),
            "last_error": st.last_error if st else None, "entries": st.entry_count if st else 0,
            "consecutive_failures": st.consecutive_failures if st else 0,
            "next_fetch": iso(nxt), "due": bool(st is None or not st.disabled and (nxt is None or nxt <= now)),
            "disabled": st.disabled if st else None,
            "unstable_guids": bool(st and st.unstable_guids),
            "full_text": s.full_text, "pages": _pages(pages.get(s.id)),
            "fetched_by": fetched_by.get(s.id),
        })
    configured = {s.id for s in config.sources}
    removed = [{"id": st.id, "name": st.name or st.id, "role": st.role, "removed": st.removed,
                "entries": st.entry_count, "url": st.url}
               for st in states.values() if st.id not in configured]
    counts = store.count_entries()
    entries = selection(store, config)
    target = config.translation.target
    backlog = translation_backlog(entries, store.entry_translations([e.id for e in entries], target),
                                  {s.id: s.language for s in config.sources}, target)
    published = store.get_meta("last_publication")
    return {
        "store": config.store_name, "store_exists": True, "store_bytes": store.size_bytes(),
        "running": running,
        "workers": _workers(store, now),
        "sources": sources,
        "removed_sources": removed,
        "unreadable_entries": store.unreadable_entries(),
        "entries": {"posts": counts.get("blog", 0), "articles": counts.get("outlet", 0)},
        "matches": len(store.all_matches()),
        "translation": {**backlog, "cached_texts": store.translation_cache_stats(),
                        "usage": store.translation_usage(),
                        "providers": _providers(config, store.get_meta(PROVIDERS_KEY))},
        "last_publication": iso(from_iso(published)) if published else None,
        "published_entries": len(entries) if published else 0,
        "last_compaction": store.get_meta("last_compaction"),
        "output": str(config.output_dir),
    }


def _workers(store: Store, now: datetime) -> list[dict[str, Any]]:
    """The cooperating workers on a PostgreSQL store (none on SQLite): who, since when,
    what each holds, and whether it still answers (docs/scaling.md)."""
    return [{"id": w.id, "host": w.host, "pid": w.pid, "since": iso(w.since), "heartbeat": iso(w.heartbeat),
             "holds": w.holds.split("; ") if w.holds else [],
             "alive": not workplan.lost_workers({w.id: w.heartbeat}, now)}
            for w in worker_rows.workers(store)]


def _providers(config: Config, meta: str | None) -> list[dict[str, Any]]:
    """Each configured provider's state as the last cycles saw it (``unknown``: not used yet)."""
    from dataclasses import asdict

    states = load_states(meta)
    out = []
    for p in config.translation.providers:
        st = states.get(p.label)
        out.append(asdict(st) if st else {"name": p.label, "state": "unknown", "since": None, "error": None})
    if config.translation.memory:
        out.insert(0, {"name": "memory", "state": "up", "since": None, "error": None,
                       "file": str(config.memory_path)})
    return out


# -- text -------------------------------------------------------------------------------
def _usage(u: Mapping[str, int]) -> str:
    """"3 requests, 1,234 characters, 900 + 400 tokens" (tokens only when a server counted them)."""
    text = f"{u['requests']:,} requests, {u['characters']:,} characters"
    if u["prompt_tokens"] or u["completion_tokens"]:
        text += f", {u['prompt_tokens']:,} + {u['completion_tokens']:,} tokens (prompt + answer)"
    return text




def ago(when: str | None, now: datetime, *, short: bool = False) -> str:
    """``2026-05-01 10:00 (5m ago)``, ``… (in 25m)``, ``-`` for never; ``short``: ``5m ago``."""
    t = from_iso(when)
    if t is None:
        return "-"
    d = now - t
    words = _span(abs(d))
    rel = "now" if abs(d) < timedelta(seconds=30) else (f"{words} ago" if d > timedelta(0) else f"in {words}")
    return rel if short else f"{t:%Y-%m-%d %H:%M} ({rel})"


def _span(d: timedelta) -> str:
    s = int(d.total_seconds())
    if s < 90:
        return f"{s}s"
    if s < 90 * 60:
        return f"{round(s / 60)}m"
    if s < 36 * 3600:
        return f"{s / 3600:.1f}h".replace(".0h", "h")
    return f"{round(s / 86400)}d"


def render_text(d: dict[str, Any], *, now: datetime | None = None, terminal: bool = False,
                width: int | None = None) -> str:
    """The status as a table and a few lines: boxed and coloured for a terminal,
    plain aligned columns otherwise."""
    from rich.console import Console
    from rich.table import Table

    now = now or datetime.now(UTC)
    # On a terminal, times are relative ("5m ago") to fit; plain output says both.
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold underline" if terminal else "")
    # A terminal has no room for a last-success column: a failing source's result says it.
    columns = ((("source", "left"), ("role", "left"), ("entries", "right"), ("fetched", "left"),
                ("result", "left"), ("errors", "right"), ("next", "left")) if terminal else
               (("source", "left"), ("role", "left"), ("entries", "right"), ("last fetch (UTC)", "left"),
                ("last success (UTC)", "left"), ("result", "left"), ("errors", "right"),
                ("next fetch (UTC)", "left")))
    by_worker = any(s.get("fetched_by") for s in d["sources"])
    if by_worker:  # cooperating workers (PostgreSQL): which one fetched each source last
        columns = (*columns, ("fetched by", "left"))
    for name, justify in columns:
        wraps = name == "result"
        table.add_column(name, justify=justify, no_wrap=not wraps,  # type: ignore[arg-type]
                         overflow="fold" if wraps else "ellipsis", min_width=12 if wraps else None)
    for s in d["sources"]:
        failing = s["consecutive_failures"] > 0 or s.get("disabled") is not None
        nxt = "due now" if s.get("due") and s.get("last_fetch") else ago(s["next_fetch"], now, short=terminal)
        if s.get("disabled"):
            nxt = "never (disabled)"
        if terminal:
            result = s["result"]
            if failing:
                ok = ago(s.get("last_success"), now, short=True)
                result += f" (last ok: {'never' if ok == '-' else ok})"
            row = [s["id"], s["role"], str(s["entries"]), ago(s["last_fetch"], now, short=True), result,
                   str(s["consecutive_failures"]), nxt]
        else:
            row = [s["id"], s["role"], str(s["entries"]), ago(s["last_fetch"], now),
                   ago(s.get("last_success"), now), s["result"], str(s["consecutive_failures"]), nxt]
        if by_worker:
            row.append(s.get("fetched_by") or "-")
        table.add_row(*row, style="red" if terminal and failing else "")
    lines: list[str] = []
    for s in d["sources"]:
        pl = page_line(s["id"], s["pages"], now) if s.get("pages") else None
        if pl:
            lines.append(pl)
    if not d.get("store_exists"):
        lines.append(f"store {d['store']} does not exist yet: run `aggregator run --once` first")
    running = d.get("running")
    lines.append(f"run: {running}" if running else
                 "run: none running (sources are fetched when `aggregator run` or `run --once` runs)")
    for w in d.get("workers") or []:
        holds = ", ".join(w["holds"]) if w["holds"] else "nothing (idle)"
        state = "" if w["alive"] else f"; NOT ANSWERING since {ago(w['heartbeat'], now)} (taken for dead)"
        lines.append(f"worker {w['id']} (host {w['host']}, pid {w['pid']}): since {ago(w['since'], now)}, "
                     f"holds {holds}{state}")
    t = d.get("translation") or {}
    if t:
        line = (f"translation to {t['target']}: {t['backlog']} of the {t['needed']} entries in the feed that "
                f"need it are not translated yet ({t['pending']} pending, {t['failed']} failed, "
                f"{t['untranslated']} not yet attempted)")
        if t.get("next_retry"):
            line += f"; next retry {ago(t['next_retry'], now)}"
        lines.append(line)
        retry = f" (next retry {t['next_retry']})" if t.get("next_retry") else ""
        lines.append(f"  of the {t['in_feed']} published entries: {t['done']} done, {t['pending']} pending{retry}, "
                     f"{t['failed']} failed, {t['untranslated']} not yet attempted, {t['not_needed']} not needed")
        for reason, n in (t.get("failed_reasons") or {}).items():
            lines.append(f"  failed ({reason}): {n}")
        for p in t.get("providers") or []:
            if p["state"] == "down":
                lines.append(f"  provider {p['name']}: DOWN since {ago(p['since'], now)}: {p['error']}")
            elif p["state"] == "up":
                lines.append(f"  provider {p['name']}: up" + (f" ({p['file']})" if p.get("file") else ""))
            else:
                lines.append(f"  provider {p['name']}: not used yet")
        lines.append("texts translated, by provider: "
                     + (", ".join(f"{k} {v}" for k, v in (t.get("cached_texts") or {}).items()) or "none yet"))
        for provider, u in (t.get("usage") or {}).items():
            lines.append(f"  sent to {provider}: last cycle {_usage(u['cycle'])}; in total {_usage(u['total'])}")
    for r in d.get("removed_sources") or []:
        lines.append(f"removed source {r['id']} ({r['name']}): not in the config since "
                     f"{ago(r['removed'], now) if r.get('removed') else '?'}, no longer fetched or published; "
                     f"{r['entries']} entries kept until retention drops them")
    for u in d.get("unreadable_entries") or []:
        lines.append(f"unreadable entry {u['id']} ({u['source_id']}: {u['link'] or u['key']}): {u['error']}; "
                     "left out of the publication")
    pub = d.get("last_publication")
    lines.append(f"last publication: {ago(pub, now)}, {d.get('published_entries', 0)} entries in {d['output']}"
                 if pub else f"last publication: never ({d['output']})")
    if "entries" in d:
        lines.append(f"store: {d['store']}, {d.get('store_bytes', 0) / 1e6:.1f} MB: {d['entries']['posts']} posts, "
                     f"{d['entries']['articles']} articles, {d.get('matches', 0)} links from posts to articles; "
                     f"last compacted {ago(d.get('last_compaction'), now) if d.get('last_compaction') else 'never'}")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, no_color=not terminal, highlight=False,
                      width=width or (None if terminal else 400), soft_wrap=False)
    console.print(table)
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=not terminal)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()).strip("\n")


def render_sources(config: Config, *, terminal: bool = False, width: int | None = None) -> str:
    """``sources list``: one row per configured source."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from aggregator.config import format_duration

    redact = Redactor(config.secrets)
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold underline" if terminal else "")
    # A terminal gets name, aliases and URL stacked in one column, so that rows stay
    # readable in 80 columns; plain output keeps one line per source, for grep.
    names = ("id", "role", "lang", "every", "feed") if terminal else ("id", "role", "lang", "every", "name",
                                                                      "aliases", "url")
    for name in names:
        table.add_column(name, no_wrap=name not in ("aliases", "url", "feed"), overflow="fold")
    for s in config.sources:
        every = format_duration(config.interval(s)) + ("" if s.every is not None else "*")
        aliases = ", ".join(s.aliases) or "-"
        if terminal:
            feed = Text(s.title, style="bold")
            feed.append(f"  aliases: {aliases}" if s.aliases else "", style="dim")
            feed.append("\n" + redact(s.url))
            table.add_row(s.id, s.role, s.language, every, feed)
        else:
            table.add_row(s.id, s.role, s.language, every, s.title, aliases, redact(s.url))
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, no_color=not terminal, highlight=False,
                      width=width or (None if terminal else 1000), soft_wrap=False)
    console.print(table)
    console.print(f"{len(config.sources)} sources; * every: schedule.every (no interval of its own)",
                  markup=False, highlight=False)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()).strip("\n")
