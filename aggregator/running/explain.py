"""``aggregator explain POST_URL``: the citations found in a post, what each matched
and with what evidence, and why the others matched nothing."""

from __future__ import annotations

from aggregator.citing.embeddings import Embedder
from aggregator.citing.extract import PostText, extract
from aggregator.citing.match import (
    ArticleIndex,
    Outcome,
    Params,
    article_from_entry,
    match_post,
)
from aggregator.config import Config
from aggregator.exceptions import AggregatorError
from aggregator.models import Entry
from aggregator.running.cycle import (
    foreign_headlines,
    mention_texts,
    outlet_language,
    outlets_of,
    own_hosts,
    post_hosts,
)
from aggregator.store import Store


def rematch(store: Store, config: Config, post: Entry) -> tuple[PostText, Outcome]:
    """Run the matcher again on one post, from the store, without saving: the notes
    on citations that matched nothing are not stored, so they are recomputed."""
    outlets = outlets_of(config)
    text = extract(post.content or post.summary, own_hosts=own_hosts(config) | post_hosts(post), outlets=outlets)
    params = Params(window=config.matching.window)
    index = ArticleIndex(article_from_entry(a, [n for o in outlets for n in o.names])
                         for a in store.articles_between(post.date - params.window, post.date + params.after))
    target = outlet_language(config)
    cache = {**store.cached_translations(mention_texts(post, text), post.language or "ja", target),
             **store.cached_translations(foreign_headlines(text), "auto", target)}
    outcome = match_post(post, text, index, params=params, outlet_names={o.id: o.names for o in outlets},
                         translate=lambda s: cache[s][0] if s in cache else None, embed=Embedder(store))
    return text, outcome


def explain_post(store: Store, config: Config, post_url: str) -> str:
    found = [e for e in store.find_entries_by_link(post_url) if e.role == "blog"]
    if not found:
        raise AggregatorError(f"no blog post with the link {post_url} in the store")
    post = found[0]
    text, outcome = rematch(store, config, post)
    stored = store.matches_for([post.id]).get(post.id, [])
    never_matched = store.match_state(post.id) is None
    if never_matched:  # not in the publication yet: show what matching would link
        stored = outcome.matches
    arts = store.entries_by_ids([m.article_id for m in stored])
    lines = [f"post: {post.title}", f"      {post.link}  ({post.date:%Y-%m-%d %H:%M} UTC)", ""]
    if not text.citations:
        lines.append("no citations: no 参考: line, and no subscribed outlet named with a day in the text")
    else:
        lines.append("citations found:")
        for c in text.citations:
            what = c.href or c.text
            if c.kind == "mention":
                what = f"{c.text} (day {c.day}) in: {c.context[:80]}…"
            lines.append(f"  - {c.kind}: {what}")
    lines.append("")
    if never_matched:
        lines.append("not matched yet (matching works on the posts the publication holds); it would link:"
                     if stored else "not matched yet (matching works on the posts the publication holds)")
    if stored:
        lines.append("links to:")
        for m in stored:
            a = arts.get(m.article_id)
            lines.append(f"  - [{m.evidence}] {a.source_id if a else '?'}: {a.title if a else m.article_id}")
            if a:
                lines.append(f"      {a.link}")
    else:
        lines.append("links to nothing")
    if outcome.notes:
        lines.append("")
        lines.append("not linked:")
        lines.extend(f"  - {n}" for n in outcome.notes)
    return "\n".join(lines)
