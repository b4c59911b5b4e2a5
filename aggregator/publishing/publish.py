"""What to publish, and how it looks to a reader. The choice is pure
(:func:`select_entries`, :func:`build_items`); :func:`publish` is the thin shell that
reads the store and writes the files.

Ids are fixed at first publication (a ``tag:`` URI kept in the store); ``updated``
moves only when what a reader sees (title, summary, sources, translation) changes.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from aggregator import __version__
from aggregator.config import Config
from aggregator.entryview import post_paragraphs, reader_language
from aggregator.exceptions import PublicationRefused
from aggregator.html_text import sanitize_html, strip_boilerplate, strip_tags
from aggregator.language import same_language
from aggregator.models import Entry, Match, iso, plausible
from aggregator.publishing.render import (
    ATOM_NAME,
    ATOM_XSL_NAME,
    HTML_NAME,
    JSON_NAME,
    RSS_NAME,
    RSS_XSL_NAME,
    FeedItem,
    FeedMeta,
    SourceLink,
    write_output,
)
from aggregator.store import EntryTranslation, Publication, Store

log = logging.getLogger(__name__)


def select_entries(posts: Sequence[Entry], articles: Sequence[Entry], matches: Mapping[int, Sequence[Match]],
                   include: str, max_entries: int) -> list[Entry]:
    """The newest ``max_entries`` blog posts with, per ``include``, outlet articles; newest first.

    Posts come first: ``max_entries`` counts posts, and the articles a chosen post cites
    come with it whatever their number. ``include``: ``cited`` (those articles),
    ``all`` (also the newest ``max_entries`` uncited articles), ``blog`` (posts only)."""
    chosen_posts = sorted(posts, key=lambda e: (e.date, e.id), reverse=True)[:max_entries]
    chosen: dict[int, Entry] = {p.id: p for p in chosen_posts}
    if include in ("cited", "all"):
        cited = {m.article_id for p in chosen_posts for m in matches.get(p.id, ())}
        chosen.update((a.id, a) for a in articles if a.id in cited)
        if include == "all":
            uncited = sorted((a for a in articles if a.id not in cited), key=lambda e: (e.date, e.id), reverse=True)
            chosen.update((a.id, a) for a in uncited[:max_entries])
    return sorted(chosen.values(), key=lambda e: (e.date, e.id), reverse=True)


def publication_id(authority: str, entry: Entry) -> str:
    """A ``tag:`` URI (RFC 4151) made only of what never changes for an entry (its
    source, its identity there, the day we first saw it), so that even a publication
    interrupted before its ids were recorded publishes the same ids the next time."""
    digest = hashlib.sha1(f"{entry.source_id}\x00{entry.key}".encode()).hexdigest()[:20]
    return f"tag:{authority},{entry.first_seen.strftime('%Y-%m-%d')}:{entry.source_id}/{digest}"


def visible_hash(item: FeedItem) -> str:
    """Hash of what a reader sees; ``updated`` moves only when it changes."""
    data = [item.link, item.title, item.title_original, item.summary_html, item.content_html or "",
            item.language, item.translation_status, item.author or "", list(item.categories),
            item.image or "", [(s.url, s.outlet, s.headline, s.headline_translated, s.evidence, s.summary,
                                               s.published.isoformat() if s.published else None)
                                              for s in item.sources]]
    return hashlib.sha1(json.dumps(data, ensure_ascii=False).encode()).hexdigest()


def first_updated(updated: datetime | None, published: datetime, first_seen: datetime) -> datetime:
    """``updated`` at first publication: the source's, never before ``published``."""
    if updated is None:
        return published
    return max(plausible(updated, first_seen), published)


def paragraphs_html(paras: Sequence[str]) -> str:
    return "".join(f"<p>{html.escape(p)}</p>" for p in paras if p.strip())


@dataclass(frozen=True, slots=True)
class Display:
    """What one entry shows, before ids and dates are settled."""

    title: str
    summary_html: str
    content_html: str | None
    language: str
    translated: bool
    status: str


def display(entry: Entry, original_language: str, target: str,
            translation: EntryTranslation | None, now: datetime) -> Display:
    """The entry in the readers' language when its translation is complete, else in its
    own language with an honest status. A partly translated entry is never shown as done."""
    if entry.role == "blog":
        summary_paras, content_paras = post_paragraphs(entry)
        orig_summary = paragraphs_html(summary_paras)
        orig_content = paragraphs_html(content_paras) or None
    else:
        orig_summary = sanitize_html(strip_boilerplate(entry.summary or entry.content), base_url=entry.link)
        orig_content = None
    if same_language(original_language, target):
        return Display(entry.title, orig_summary, orig_content, original_language, False, "not needed")
    if translation is not None and translation.status == "done" and translation.title is not None:
        summary = json.loads(translation.summary or "[]")
        content = json.loads(translation.content or "[]")
        return Display(translation.title, paragraphs_html(summary), paragraphs_html(content) or None,
                       target, True, f"done by {translation.provider}")
    # Readers get one coarse state: why it is not translated yet (provider, error, next
    # retry) is the operator's business, shown by status, explain and the log.
    return Display(entry.title, orig_summary, orig_content, original_language, False, NOT_AVAILABLE)


NOT_AVAILABLE = "not available yet"
SUMMARY_CHARS = 400  # a cited article's summary inside a post's card


def build_items(entries: Sequence[Entry], *, config: Config, source_languages: Mapping[str, str],
                matches: Mapping[int, Sequence[Match]], articles: Mapping[int, Entry],
                translations: Mapping[int, EntryTranslation], publications: Mapping[int, Publication],
                now: datetime, source_names: Mapping[str, str] | None = None,
                ) -> tuple[list[FeedItem], list[Publication]]:
    """FeedItems for ``entries`` and the publication records to save (new or changed).
    ``source_names``: the last names of sources no longer configured (a removed outlet's
    articles are still linked from the posts that cite them)."""
    target = config.translation.target
    authority = urlsplit(config.output.link).hostname or "aggregator.invalid"
    names = {**(source_names or {}), **{s.id: s.title for s in config.sources}}
    items: list[FeedItem] = []
    changed: list[Publication] = []
    def language_of(e: Entry) -> str:
        return reader_language(e, source_languages.get(e.source_id, "auto")) or "und"

    for e in entries:
        lang = language_of(e)
        shown = display(e, lang, target, translations.get(e.id), now)
        sources = []
        for m in matches.get(e.id, ()):
            a = articles.get(m.article_id)
            if a is None or not a.link:
                continue
            a_lang = reader_language(a, source_languages.get(a.source_id, "auto"))
            a_shown = display(a, a_lang or "und", target, translations.get(a.id), now)
            summary = strip_tags(a_shown.summary_html)
            if len(summary) > SUMMARY_CHARS:
                summary = summary[:SUMMARY_CHARS].rsplit(" ", 1)[0].rstrip(",.;:") + "…"
            sources.append(SourceLink(
                url=a.link, outlet=names.get(a.source_id, a.source_id), outlet_id=a.source_id, headline=a.title,
                headline_translated=a_shown.title if a_shown.translated and a_shown.title != a.title else None,
                evidence=m.evidence, score=m.score, summary=summary, published=a.date, language=a_lang))
        pub = publications.get(e.id)
        published = e.date
        item = FeedItem(
            id=pub.pub_id if pub else publication_id(authority, e),
            kind="post" if e.role == "blog" else "article",
            link=e.link or "", title=shown.title or "(untitled)", title_original=e.title,
            summary_html=shown.summary_html, content_html=shown.content_html, language=shown.language,
            original_language=lang, translated=shown.translated, translation_status=shown.status,
            source_id=e.source_id, source_name=names.get(e.source_id, e.source_id), author=e.author,
            categories=e.categories, published=published,
            updated=pub.updated if pub else first_updated(e.updated, published, e.first_seen),
            image=e.image, sources=tuple(sources),
        )
        h = visible_hash(item)
        if pub is None:
            changed.append(Publication(e.id, item.id, now, item.updated, h))
        elif pub.visible_hash != h:
            item = _with_updated(item, now)
            changed.append(Publication(e.id, pub.pub_id, pub.first_published, now, h))
        items.append(item)
    return items, changed


def _with_updated(item: FeedItem, when: datetime) -> FeedItem:
    from dataclasses import replace

    return replace(item, updated=when)


def feed_meta(config: Config, items: Sequence[FeedItem], published_at: datetime) -> FeedMeta:
    """``published_at``: when what the feed holds last changed (see :func:`published_at`)."""
    return FeedMeta(
        title=config.output.title, link=config.output.link, base_url=config.output.base_url,
        description=config.output.description, language=config.translation.target,
        updated=published_at, generator=f"aggregator {__version__}",
    )


def content_key(items: Sequence[FeedItem]) -> str:
    """What the feed holds, as a reader sees it (entries, their order and their text)."""
    return hashlib.sha1(json.dumps([(i.id, visible_hash(i)) for i in items]).encode()).hexdigest()


def published_at(previous_key: str | None, previous_at: str | None, key: str, now: datetime) -> datetime:
    """The feed's "updated": the publication that last changed what it holds, so that a
    publication changing nothing a reader sees keeps the files byte for byte."""
    if previous_key == key and previous_at:
        try:
            return datetime.fromisoformat(previous_at)
        except ValueError:
            pass
    return now


def shrink_refusal(previous_posts: int, posts: int) -> str | None:
    """Why a publication of ``posts`` blog posts must not replace one of
    ``previous_posts`` (it drops more than half of them at once), or None."""
    if previous_posts and posts * 2 < previous_posts:
        return (f"publication refused: it would drop {previous_posts - posts} of the {previous_posts} published "
                f"posts at once (a lost or replaced store, or a config that lost the blog?); the last publication "
                f"is kept; if this is intended, run `aggregator run --once --allow-shrink`")
    return None


def published_posts(out_dir: Path) -> int:
    """How many blog posts the last publication (``feed.json``) holds; 0 when there is
    none or it cannot be read. Read from the output, not the store: a lost store must
    not make an empty publication look like no change."""
    try:
        items = json.loads((out_dir / JSON_NAME).read_bytes()).get("items", [])
        return sum(1 for i in items if (i.get("_aggregator") or {}).get("kind") == "post")
    except (OSError, ValueError, AttributeError, TypeError):
        return 0


def publish(store: Store, config: Config, *, now: datetime, entries: Sequence[Entry] | None = None,
            translations: Mapping[int, EntryTranslation] | None = None,
            allow_shrink: bool = False) -> tuple[list[Path], int]:
    """Write the output files from the store. Returns (paths written, entries published).

    Raises :class:`PublicationRefused` instead when the publication would drop more than
    half of the published posts at once, unless ``allow_shrink``."""
    if entries is None:
        entries = selection(store, config)
    ids = [e.id for e in entries]
    matches = store.matches_for(ids)
    article_ids = {m.article_id for ms in matches.values() for m in ms}
    articles = store.entries_by_ids(article_ids)
    if translations is None:
        translations = store.entry_translations(set(ids) | article_ids, config.translation.target)
    publications = store.publications(ids)
    # Nothing a reader could see changed since the files were written (a warm cycle):
    # building and rendering 200 entries again would give the same bytes.
    before = inputs_digest(config, entries, matches, articles, translations, publications)
    if before == store.get_meta(INPUTS_KEY) and all((config.output_dir / n).is_file() for n in OUTPUT_NAMES):
        log.debug("publication: nothing changed since the last one; files kept")
        store.set_meta("last_publication", now.isoformat())
        return [], len(entries)
    items, changed = build_items(
        entries, config=config, source_languages={s.id: s.language for s in config.sources},
        matches=matches, articles=articles, translations=translations,
        publications=publications, now=now, source_names=store.source_names())
    if not allow_shrink:
        refusal = shrink_refusal(published_posts(config.output_dir), sum(1 for i in items if i.kind == "post"))
        if refusal:
            raise PublicationRefused(refusal)
    key = content_key(items)
    when = published_at(store.get_meta(CONTENT_KEY), store.get_meta(CONTENT_AT_KEY), key, now)
    meta = feed_meta(config, items, when)
    paths = write_output(config.output_dir, meta, items)
    store.set_meta(CONTENT_KEY, key)
    store.set_meta(CONTENT_AT_KEY, when.isoformat())
    # Ids are recorded after the files are in place: a crash in between only means the
    # same ids are computed again next time (they depend on the entry, not on the run).
    store.save_publications(changed)
    store.set_meta("last_publication", now.isoformat())
    after = {**publications, **{p.entry_id: p for p in changed}}
    store.set_meta(INPUTS_KEY, inputs_digest(config, entries, matches, articles, translations, after))
    return paths, len(items)


INPUTS_KEY = "publication_inputs"
CONTENT_KEY = "publication_content"
CONTENT_AT_KEY = "publication_content_at"
OUTPUT_NAMES = (ATOM_NAME, RSS_NAME, JSON_NAME, HTML_NAME, ATOM_XSL_NAME, RSS_XSL_NAME)


@functools.cache
def _code_digest() -> str:
    """The code and templates that turn the inputs into files (the whole package, read
    once per process): an upgrade, or any edit, renders anew."""
    h = hashlib.sha1(__version__.encode())
    base = Path(str(resources.files("aggregator")))
    files = [f for f in base.rglob("*") if f.is_file() and (f.suffix == ".py" or f.parent.name == "templates")]
    for f in sorted(files):
        h.update(str(f.relative_to(base)).encode() + b"\x00" + f.read_bytes())
    return h.hexdigest()


def inputs_digest(config: Config, entries: Sequence[Entry], matches: Mapping[int, Sequence[Match]],
                  articles: Mapping[int, Entry], translations: Mapping[int, EntryTranslation],
                  publications: Mapping[int, Publication]) -> str:
    """A digest of everything the published files are made from (pure)."""
    parts = [_code_digest(), config.output.model_dump_json(), config.translation.target,
             repr([(s.id, s.title, s.language) for s in config.sources]),
             repr(list(entries)), repr(sorted(matches.items())), repr(sorted(articles.items())),
             repr(sorted(translations.items())),
             # as stored (whole seconds), so that a digest made before saving them agrees with
             # one made from what the store gives back
             repr(sorted((p.entry_id, p.pub_id, iso(p.first_published), iso(p.updated), p.visible_hash)
                         for p in publications.values()))]
    return hashlib.sha1("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def posts_in_publication(store: Store, config: Config) -> set[int]:
    """The ids of the blog posts the next publication will hold: the newest
    ``max_entries``, whatever ``include`` says (it only adds articles). Matching is limited
    to them: work on posts no reader will see would be wasted."""
    return {p.id for p in store.newest_entries(["blog"], config.output.max_entries)}


def selection(store: Store, config: Config) -> list[Entry]:
    """The entries the next publication will hold."""
    n = config.output.max_entries
    posts = store.newest_entries(["blog"], n)
    if config.output.include == "blog":
        return select_entries(posts, [], {}, "blog", n)
    matches = store.matches_for([p.id for p in posts])
    cited = store.entries_by_ids({m.article_id for ms in matches.values() for m in ms})
    # A removed source's articles leave the publication; the posts citing them keep their links.
    removed = store.removed_source_ids()
    articles = [a for a in cited.values() if a.source_id not in removed]
    if config.output.include == "all":
        articles += [a for a in store.newest_entries(["outlet"], n + len(cited))
                     if a.id not in cited and a.source_id not in removed]
    return select_entries(posts, articles, matches, config.output.include, n)
