"""What a blog post cites: ``参考:`` lines (linked or not) and, failing those, the
outlets its running text names with a day ("米POLITICOは13日…と報じた"). Pure.

Image credits (``出典:``), the blog's own related-post lists (``関連記事``) and the
WordPress footer ("The post … appeared first on …") are never citations.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aggregator.html_text import Block, blocks
from aggregator.models import Citation
from aggregator.urls import host_of, is_http_url

# "参考:" and its variants: full-width colon, brackets, 参考記事, 参照, ソース, Source(s).
_CITE = re.compile(
    r"^\s*[※＊*・■◆●]?\s*[【\[]?(?:参考(?:記事|資料|文献|リンク)?|参照|ソース|引用元|Sources?)[】\]]?\s*[:：]\s*",
    re.I)
_CREDIT = re.compile(r"^\s*[※＊*・■◆●]?\s*[【\[]?(?:出典|画像出典|写真|画像|Photo(?: by)?|Image(?: by)?|Credit)[】\]]?\s*[:：]", re.I)  # noqa: E501
_RELATED = re.compile(r"^\s*[【\[]?関連(?:記事|リンク)?[】\]]?\s*[:：]?")
_FOOTER = re.compile(r"^The post .{0,400} appeared first on ", re.S)
_DAY = re.compile(r"(?<![0-9０-９])([0-9０-９]{1,2})日")
_SENTENCE = re.compile(r"[^。！？!?]*[。！？!?]?")


@dataclass(frozen=True, slots=True)
class Outlet:
    """A subscribed outlet as the citation finder needs it."""

    id: str
    names: tuple[str, ...]  # the source name and its aliases


class Outlets(tuple[Outlet, ...]):
    """The subscribed outlets, and the finder of their names made once for all the
    posts of a cycle (hundreds of outlets: building it is not free)."""

    @functools.cached_property
    def finder(self) -> tuple[NameFinder, dict[str, set[str]]]:
        return name_owners(tuple((o.id, tuple(n.strip() for n in o.names)) for o in self))


@dataclass(frozen=True, slots=True)
class PostText:
    """A blog post split into what the matcher needs."""

    citations: tuple[Citation, ...]
    body: tuple[str, ...]  # commentary paragraphs (no 参考/出典/関連記事/footer lines)
    lead: str


def classify(block: Block) -> str:
    t = block.text
    if _CITE.match(t):
        return "cite"
    if _CREDIT.match(t):
        return "credit"
    if _RELATED.match(t):
        return "related"
    if _FOOTER.match(t):
        return "footer"
    return "body"


def extract(html: str, *, own_hosts: Iterable[str] = (), outlets: Sequence[Outlet] = ()) -> PostText:
    """Citations and body paragraphs of a post's HTML.

    ``own_hosts`` are the blog's hosts: a link back to the blog is never a citation.
    ``outlets`` are used to find mentions, only in posts without any ``参考:`` line —
    a post that lists its sources has said what it cites."""
    own = {h.removeprefix("www.") for h in own_hosts}
    cites: list[Citation] = []
    body: list[str] = []
    has_cite_line = False
    listing = False  # after a bare "参考:" heading, the list items below it are the sources
    for b in blocks(html):
        kind = classify(b)
        if listing and b.tag == "li" and kind == "body":
            cites.extend(_cite_line(b, own, prefixed=False))
            continue
        listing = False
        if kind == "cite":
            has_cite_line = True
            found = _cite_line(b, own)
            listing = not found and not b.links
            cites.extend(found)
        elif kind == "body":
            body.append(b.text)
    if not has_cite_line and outlets:
        cites.extend(find_mentions(body, outlets))
    return PostText(tuple(cites), tuple(body), body[0] if body else "")


def _cite_line(block: Block, own: set[str], prefixed: bool = True) -> list[Citation]:
    rest = _CITE.sub("", block.text, count=1).strip() if prefixed else block.text.strip()
    out = []
    for href, text in block.links:
        if not is_http_url(href) or host_of(href).removeprefix("www.") in own:
            continue
        out.append(Citation(kind="link", text=text or rest, href=href))
    if not out and rest:
        out.append(Citation(kind="headline", text=rest))
    return out


def find_mentions(body: Sequence[str], outlets: Sequence[Outlet]) -> list[Citation]:
    """Outlets named in running text, each with the day of the month named beside it
    (in the same sentence), and the paragraph as context. One per outlet and day."""
    seen: set[tuple[str, int | None]] = set()
    out: list[Citation] = []
    # Only the outlets whose names occur at all (one pass over the text, however many
    # outlets there are) are looked for sentence by sentence.
    finder, owners = outlets.finder if isinstance(outlets, Outlets) else \
        name_owners(tuple((o.id, tuple(n.strip() for n in o.names)) for o in outlets))
    named = {oid for n in finder.find("\n".join(body)) for oid in owners[n]}
    patterns = [(o, _alias_pattern(tuple(o.names))) for o in outlets if o.id in named]
    for para in body:
        for sentence in _SENTENCE.findall(para):
            if not sentence.strip():
                continue
            for outlet, pat in patterns:
                m = pat.search(sentence)
                if not m:
                    continue
                # The day closest after the outlet's name, else before it.
                days = [(d.start(), int(unicodedata.normalize("NFKC", d.group(1))))
                        for d in _DAY.finditer(sentence)]
                after = [d for p, d in days if p >= m.end()]
                before = [d for p, d in days if p < m.start()]
                day = after[0] if after else (before[-1] if before else None)
                if day is not None and not 1 <= day <= 31:
                    day = None
                if (outlet.id, day) in seen:
                    continue
                seen.add((outlet.id, day))
                out.append(Citation(kind="mention", text=m.group(0), outlet=outlet.id, day=day,
                                    context=para))
    # A named outlet with a day beats the same outlet without one.
    dated = {c.outlet for c in out if c.day is not None}
    return [c for c in out if c.day is not None or c.outlet not in dated]


class NameFinder:
    """Which of many names occur in a text, compared casefolded (as ``name.casefold() in
    text.casefold()`` would say for each): one regex pass over the text, so hundreds of
    outlets cost about what a few do."""

    def __init__(self, names: Iterable[str]):
        folded = sorted({n.casefold() for n in names if n}, key=len, reverse=True)
        # A lookahead at every position finds the longest name starting there (the
        # alternatives are tried longest first); the names that are prefixes of it start
        # there too, so every occurrence of every name is seen.
        self._re = re.compile("(?=(" + "|".join(map(re.escape, folded)) + "))") if folded else None
        known = set(folded)
        self._prefixes = {n: tuple(n[:k] for k in range(1, len(n) + 1) if n[:k] in known) for n in folded}

    def find(self, text: str) -> set[str]:
        """The casefolded names that occur in ``text``."""
        found: set[str] = set()
        if self._re is not None:
            for m in self._re.finditer(text.casefold()):
                found.update(self._prefixes[m.group(1)])
        return found


@functools.lru_cache(maxsize=16)
def name_owners(outlets: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[NameFinder, dict[str, set[str]]]:
    """A finder for the outlets' names, and which outlets each casefolded name belongs to."""
    owners: dict[str, set[str]] = {}
    for oid, names in outlets:
        for n in names:
            if n:
                owners.setdefault(n.casefold(), set()).add(oid)
    return NameFinder(owners), owners


def outlets_named_in(text: str, outlets: Iterable[tuple[str, Iterable[str]]]) -> set[str]:
    """The ids of the outlets one of whose names occurs in ``text`` (casefolded)."""
    finder, owners = name_owners(tuple((oid, tuple(names)) for oid, names in outlets))
    return {oid for n in finder.find(text) for oid in owners[n]}


@functools.lru_cache(maxsize=4096)
def _alias_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for n in sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True):
        esc = re.escape(n)
        if n.isascii():
            # ASCII names need word edges (so "War Zone" does not fire inside a word),
            # but Japanese text puts them right against kana: 米POLITICOは.
            parts.append(rf"(?<![A-Za-z0-9]){esc}(?![A-Za-z0-9])")
        else:
            parts.append(esc)
    return re.compile("|".join(parts) or r"(?!x)x", re.I)
