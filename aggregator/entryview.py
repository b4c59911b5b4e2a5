"""What a reader sees of an entry, and every key derived from it — in one place.

Translation (which texts go to an engine, and the digest that says whether they
changed), matching (which texts are embedded, under which key), publishing (the
lead/body split of a post) and retention (which cached rows hang off an entry) all ask
this module, so that the text one stage stores under a key is the text another stage
looks up or deletes under the same key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aggregator.citing.extract import extract
from aggregator.html_text import blocks, strip_boilerplate, strip_tags
from aggregator.models import Entry, text_hash

EMBED_CHARS = 400        # what of a text is embedded: its opening says what it is about
ARTICLE_CHARS = 5000     # what of an article's summary (or content) the matcher reads
ARTICLE_TEXT_CHARS = 1500  # what of that, as plain text, follows the title in the matcher's text
LEAD_CHARS = 600         # a post without a lead paragraph shows this much of its summary


def apply_glossary(text: str, glossary: dict[str, str]) -> str:
    """Replace glossary terms (longest first) so that names come out consistently.
    Here because the translation cache keys the text as sent, glossary applied."""
    for term in sorted(glossary, key=len, reverse=True):
        if term in text:
            text = text.replace(term, glossary[term])
    return text


@dataclass(frozen=True, slots=True)
class EntryTexts:
    """The texts of one entry that a reader sees, as plain-text paragraphs: markup is
    never sent to an engine as text."""

    title: str
    summary: tuple[str, ...]
    content: tuple[str, ...] = ()

    def all(self) -> list[str]:
        return [t for t in (self.title, *self.summary, *self.content) if t.strip()]

    def digest(self, target: str) -> str:
        """Changes when any text a reader sees (or the target language) changes."""
        h = hashlib.sha1(target.encode())
        for t in (self.title, *self.summary, "\x1e", *self.content):
            h.update(t.encode("utf-8", "surrogatepass") + b"\x1f")
        return h.hexdigest()


def post_paragraphs(entry: Entry) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A blog post's (lead, body) as plain paragraphs: the lead is its first paragraph
    (or the start of its summary), the body the rest, 参考/出典/関連記事 lines excluded."""
    body = extract(entry.body)  # the page's body when its feed gave an excerpt
    lead = (body.lead,) if body.lead else (strip_tags(entry.summary)[:LEAD_CHARS],)
    return lead, tuple(body.body[1:])


def entry_texts(entry: Entry) -> EntryTexts:
    """What of an entry a reader sees, as plain paragraphs."""
    if entry.role == "blog":
        lead, body = post_paragraphs(entry)
        return EntryTexts(entry.title, tuple(p for p in lead if p), body)
    # Publisher footers ("The post … appeared first on …") are not shown, so not translated.
    paras = tuple(b.text for b in blocks(strip_boilerplate(entry.summary or entry.content))) or ()
    return EntryTexts(entry.title, paras)


def article_text(title: str, summary: str) -> str:
    """An outlet article as the matcher reads it: title, then the start of its summary."""
    return (title + ". " + strip_tags(summary[:ARTICLE_CHARS])[:ARTICLE_TEXT_CHARS]).strip()


def embed_input(text: str) -> str:
    """The part of a text that is embedded (and whose hash keys the stored vector)."""
    return text[:EMBED_CHARS]


def embedding_keys(entry: Entry) -> set[str]:
    """Keys of the vectors the matcher may store for an outlet article: its title and
    its matcher text, each as :func:`embed_input` cuts it."""
    texts = (entry.title, article_text(entry.title, entry.page_text or entry.summary or entry.content))
    return {text_hash(embed_input(t)) for t in texts if t}


def translation_keys(entry: Entry, glossary: dict[str, str]) -> set[str]:
    """Keys of the cached translations of the texts a reader sees of ``entry``, with
    and without the glossary applied (the cache holds the text as sent)."""
    texts: set[str] = set()
    for t in entry_texts(entry).all():
        texts.update((t, apply_glossary(t, glossary)))
    return {text_hash(t) for t in texts if t}


def derived_keys(entry: Entry, glossary: dict[str, str]) -> set[str]:
    """Every key of a row the store keeps for ``entry`` besides its own rows."""
    return embedding_keys(entry) | translation_keys(entry, glossary)


def reader_language(entry: Entry, declared: str = "auto") -> str | None:
    """The language an entry is written in, as readers see it: the source's declared
    language wins, else what its text says (offline detection), else the feed's."""
    from aggregator.language import entry_language

    return entry_language(entry.title, entry.summary, entry.content, declared=declared,
                          feed_language=entry.language)


def needs_translation(entry: Entry, target: str, declared: str = "auto") -> bool:
    """Whether a reader of ``target`` needs this entry translated."""
    from aggregator.language import same_language

    return not same_language(reader_language(entry, declared), target)
