"""``aggregator explain POST_URL``: the citations found in a post, what each matched
and with what evidence, and, for each that linked nothing, its near misses: the closest
candidates with their scores, the test they missed, and whether a translation was
there to compare content."""

from __future__ import annotations

from aggregator.citing.embeddings import Embedder
from aggregator.citing.extract import PostText, extract
from aggregator.citing.match import Outcome, OutletNames, Params, match_post
from aggregator.config import Config
from aggregator.exceptions import NotFoundError
from aggregator.models import Citation, Entry
from aggregator.running.matching import (
    article_index,
    foreign_headlines,
    mention_texts,
    outlet_language,
    outlets_of,
    own_hosts,
    post_hosts,
)
from aggregator.sources.fulltext import Mode, PageState, is_excerpt, wants_page
from aggregator.store import Store


def rematch(store: Store, config: Config, post: Entry) -> tuple[PostText, Outcome]:
    """Run the matcher again on one post, from the store, without saving: the near
    misses of citations that matched nothing are not stored, so they are recomputed.
    Only cached translations are used (explaining never calls a provider)."""
    outlets = outlets_of(config)
    names = OutletNames({o.id: o.names for o in outlets})
    text = extract(post.body, own_hosts=own_hosts(config) | post_hosts(post), outlets=outlets)
    params = Params(window=config.matching.window)
    index = article_index(store, config, post.date - params.window - params.after, post.date + params.after,
                          names.normalized)
    target = outlet_language(config)
    cache = {**store.cached_translations(mention_texts(post, text), post.language or "ja", target),
             **store.cached_translations(foreign_headlines(text), "auto", target)}
    outcome = match_post(post, text, index, params=params, outlet_names=names,
                         translate=lambda s: cache[s][0] if s in cache else None, embed=Embedder(store))
    return text, outcome


def text_provenance(post: Entry, page: PageState | None, mode: Mode, feed_url: str) -> str:
    """Where the text the matcher read came from, and what became of the post's page."""
    if post.page_text:
        when = f"{post.page_fetched:%Y-%m-%d %H:%M} UTC" if post.page_fetched else "at an unknown time"
        line = f"from the page ({post.page_from or 'extracted'}), fetched {when}"
        if page is not None and page.status == "retry":
            line += f"; fetching it again failed ({page.error}), next try {_when(page)}"
        return line
    feed = "from the feed (its full content)" if post.content else "from the feed (its summary)"
    if not is_excerpt(post):
        return feed
    feed = "the feed's excerpt only"
    if mode == "never":
        return f"{feed} (full_text: never)"
    if not wants_page(mode, post, feed_url):
        return f"{feed} (its page is not on the feed's site; full_text: always would read it)"
    if page is None or page.status == "waiting":
        return f"{feed}; its page waits for a cycle with room (fetch.pages_per_cycle)"
    if page.status == "retry":
        return f"{feed}; fetching its page failed {page.attempts} time(s) ({page.error}), next try {_when(page)}"
    if page.status == "given up":
        return f"{feed}; its page was given up after {page.attempts} tries ({page.error})"
    return feed


def _when(page: PageState) -> str:
    return f"{page.retry_at:%Y-%m-%d %H:%M} UTC" if page.retry_at else "next cycle"


def _citation_line(c: Citation) -> str:
    if c.kind == "mention":
        day = f"day {c.day}" if c.day else "no day"
        also = ", as a further source" if c.also else ""
        return f"  - in-text ({c.form}{also}): {c.text}, {day}, in: {c.context[:80]}…"
    return f"  - {c.kind}: {c.href or c.text}"


def translation_line(store: Store, config: Config, post: Entry) -> str:
    """The operator's view of the post's translation (readers only see whether there is one)."""
    target = config.translation.target
    tr = store.entry_translations([post.id], target).get(post.id)
    if tr is None:
        return f"translation to {target}: not attempted yet (or not needed)"
    if tr.status == "done":
        return f"translation to {target}: done by {tr.provider}"
    if tr.status == "failed":
        return f"translation to {target}: failed after {tr.attempts} attempts: {tr.error}"
    when = f"{tr.retry_at:%Y-%m-%d %H:%M} UTC" if tr.retry_at else "the next cycle"
    return f"translation to {target}: pending, attempt {tr.attempts}, next try {when}: {tr.error}"


def explain_post(store: Store, config: Config, post_url: str) -> str:
    found = [e for e in store.find_entries_by_link(post_url) if e.role == "blog"]
    if not found:
        raise NotFoundError(f"no blog post with the link {post_url} in the store")
    post = found[0]
    text, outcome = rematch(store, config, post)
    stored = store.matches_for([post.id]).get(post.id, [])
    never_matched = store.match_state(post.id) is None
    if never_matched:  # arrived after the last cycle's matching: show what matching would link
        stored = outcome.matches
    arts = store.entries_by_ids([m.article_id for m in stored])
    page = store.page_state(post.id)
    try:
        src = config.source(post.source_id)
        mode, feed_url = src.full_text, src.url
    except KeyError:
        mode, feed_url = "auto", ""
    lines = [f"post: {post.title}", f"      {post.link}  ({post.date:%Y-%m-%d %H:%M} UTC)",
             f"text: {text_provenance(post, page, mode, feed_url)}", translation_line(store, config, post), ""]
    if not text.citations:
        lines.append("no citations: no 参考: line, and no sentence attributing a report to a subscribed outlet")
    else:
        lines.append("citations found:")
        lines.extend(_citation_line(c) for c in text.citations)
    if outcome.set_aside:
        lines.append("")
        lines.append("in-text citations taken as a 参考 line's own article (not linked again):")
        lines.extend(f"  - {c.text}" + (f" (day {c.day})" if c.day else "") for c in outcome.set_aside)
    lines.append("")
    if never_matched:
        lines.append("not matched yet (the next cycle matches it); it would link:" if stored
                     else "not matched yet (the next cycle matches it)")
    if stored:
        lines.append("links to:")
        for m in stored:
            a = arts.get(m.article_id)
            lines.append(f"  - [{m.evidence}] {a.source_id if a else '?'}: {a.title if a else m.article_id}")
            if a:
                lines.append(f"      {a.link}")
    else:
        lines.append("links to nothing")
    if outcome.near:
        lines.append("")
        lines.append("not linked (near misses):")
        for n in outcome.near:
            lines.append("  - " + n.describe())
    return "\n".join(lines)
