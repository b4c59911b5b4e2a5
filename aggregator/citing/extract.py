"""What a blog post cites: ``参考:`` lines (linked or not) and the outlets its running
text attributes reported content to (「米POLITICOは13日…と報じた」「ロイター通信によると」
「Brussels Signalのインタビューに」). Pure.

Image credits (``出典:``), the blog's own related-post lists (``関連記事``) and the
WordPress footer ("The post … appeared first on …") are never citations.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aggregator.html_text import CITATION_LINE as _CITE
from aggregator.html_text import Block, blocks
from aggregator.models import Citation
from aggregator.urls import host_of, is_http_url

_CREDIT = re.compile(r"^\s*[※＊*・■◆●]?\s*[【\[]?(?:出典|画像出典|写真|画像|Photo(?: by)?|Image(?: by)?|Credit)[】\]]?\s*[:：]", re.I)  # noqa: E501
_RELATED = re.compile(r"^\s*[【\[]?関連(?:記事|リンク)?[】\]]?\s*[:：]?")
_FOOTER = re.compile(r"^The post .{0,400} appeared first on ", re.S)
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

    @functools.cached_property
    def patterns(self) -> dict[str, list[tuple[int, Outlet, re.Pattern[str]]]]:
        """outlet id -> (its place among the outlets, the outlet, the pattern of its names)."""
        out: dict[str, list[tuple[int, Outlet, re.Pattern[str]]]] = {}
        for i, o in enumerate(self):
            out.setdefault(o.id, []).append((i, o, _alias_pattern(tuple(o.names))))
        return out


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
    ``outlets`` are used to find in-text citations (mentions), in every post: beside
    ``参考:`` lines too, where the matcher sets aside those that name a ``参考:`` line's
    own outlet (that line's article, summarised)."""
    own = {h.removeprefix("www.") for h in own_hosts}
    cites: list[Citation] = []
    body: list[str] = []
    listing = False  # after a bare "参考:" heading, the list items below it are the sources
    for b in blocks(html):
        kind = classify(b)
        if listing and b.tag == "li" and kind == "body":
            cites.extend(_cite_line(b, own, prefixed=False))
            continue
        listing = False
        if kind == "cite":
            found = _cite_line(b, own)
            listing = not found and not b.links
            cites.extend(found)
        elif kind == "body":
            body.append(b.text)
    if outlets:
        cites.extend(find_mentions(body, outlets))
    return PostText(tuple(cites), tuple(body), body[0] if body else "")


# The outlets of the last extract_many call, with their name finder built (per process).
_OUTLETS: dict[tuple[Outlet, ...], Outlets] = {}


def extract_many(work: tuple[tuple[Outlet, ...], Sequence[tuple[str, tuple[str, ...]]]]) -> list[PostText]:
    """:func:`extract` for several posts, (html, own hosts) each, with the same outlets:
    what a worker process runs for the match stage. Building the outlets' name finder
    costs more than a post, so it is made once per process and set of outlets."""
    outlets, posts = work
    found = _OUTLETS.get(outlets)
    if found is None:
        _OUTLETS.clear()
        found = _OUTLETS[outlets] = Outlets(outlets)
    return [extract(html, own_hosts=hosts, outlets=found) for html, hosts in posts]


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


# -- in-text citations ------------------------------------------------------------------
# A sentence cites an outlet when it attributes reported content to it. What follows the
# outlet's name says which role the name plays: 「Xによると」「Xの取材に」「Xのインタビュー」
# 「Xに語った」 attribute; 「Xは/も/が … 報じた」 attributes when a reporting verb follows in a
# past or progressive form. Anything else is another role and cites nothing: an employer
# (「Xに寄稿していた」「Xで…を担当していた」), a comparison (「Xのような」「Xなど」), its
# readers (「Xの読者には」), a prospect (「Xも今後…報じるだろう」), a habit (「Xは普段から」).
_OUTLET_SUFFIX = re.compile(r"^(?:紙|誌|通信|電子版|社)")
_ACCORDING = re.compile(r"^(?:(?:の(?:[0-9０-９]{1,2}日(?:付)?の)?(?:報道|記事|報告|電子版))?"
                        r"(?:によると|によれば|によりますと)|の(?:[0-9０-９]{1,2}日(?:付)?の)?(?:報道|記事)(?:では|で、))")
_INTERVIEW = re.compile(
    r"^(?:の(?:単独|独占)?(?:取材|インタビュー)|との(?:単独|独占)?インタビュー|"
    r"に(?:対し(?:て)?、?)?(?:語|述べ|明か|話し|答え|コメントし))")
_INTERVIEW_ALSO = re.compile(r"^(?:の|との)(?:単独|独占)?(?:取材|インタビュー)(?:に(?:対し)?|で)も")
_SUBJECT = re.compile(r"^(?:は|も|が)")
_REPORT_VERB = re.compile(
    r"(?:(?:報じ|伝え|報道し|掲載し|配信し|明らかにし|指摘し|分析し|書い|報告し|特報し|スクープし|入手し|取り上げ)"
    r"(?!ていない|ておらず|ていません|ず|ない|ません)(?:た|て|ま|、)|と(?:し(?:た|て(?:いる|おり))))")
# Between the name and the verb: the sentence speaks of a habit or of the future.
_NOT_REPORTED = re.compile(r"今後|将来|いずれ|普段|いつも|常に|常々|しばしば|度々|たびたび|好んで|繰り返し")
_PROSPECT = re.compile(r"(?:予定|見通し|だろう|でしょう|かもしれ|見込み|はずだ|ない)")
_DAY_AFTER = re.compile(r"^(?:は|も|が)、?\s*([0-9０-９]{1,2})日")
_DAY_BEFORE = re.compile(r"([0-9０-９]{1,2})日(?:付)?(?:の|に|、)?\s*[米英独仏露豪加]?$")
_DAY_OF_REPORT = re.compile(r"^の([0-9０-９]{1,2})日(?:付)?の")


def attribution(sentence: str, start: int, end: int) -> tuple[str, bool, int | None] | None:
    """How ``sentence`` attributes reported content to the outlet named at
    ``sentence[start:end]``: (form, also, day of the month or None), or None when the
    name plays another role (employer, comparison, readers, prospect, habit)."""
    after = _OUTLET_SUFFIX.sub("", sentence[end:], count=1)
    form: str | None = None
    also = False
    if _ACCORDING.match(after):
        form = "according"
    elif _INTERVIEW.match(after):
        form, also = "interview", bool(_INTERVIEW_ALSO.match(after))
    elif _SUBJECT.match(after):
        # A reporting verb, or the day of the report right after the name (「Xは13日、…。」:
        # outlets do nothing else on a day), and no habit or prospect before it.
        verb = _REPORT_VERB.search(after)
        dated = _DAY_AFTER.match(after)
        if verb is None and (dated is None or _PROSPECT.search(after)):
            return None
        if _NOT_REPORTED.search(after[: verb.start()] if verb is not None else after):
            return None
        form, also = "report", after.startswith("も")
    if form is None:
        return None
    day: int | None = None
    m = _DAY_AFTER.match(after) or _DAY_OF_REPORT.match(after) or _DAY_BEFORE.search(sentence[:start])
    if m:
        day = int(unicodedata.normalize("NFKC", m.group(1)))
        if not 1 <= day <= 31:
            day = None
    return form, also, day


def find_mentions(body: Sequence[str], outlets: Sequence[Outlet]) -> list[Citation]:
    """In-text citations: sentences that attribute reported content to a subscribed
    outlet (see :func:`attribution`), with the day of the month the text gives for the
    report (「米POLITICOは13日…」「13日付の…」) and the paragraph as context. One per outlet
    and day; an outlet cited with a day is not also cited without one."""
    seen: set[tuple[str, int | None]] = set()
    out: list[Citation] = []
    # Only the outlets whose names occur at all (one pass over the text, however many
    # outlets there are) are looked for sentence by sentence.
    finder, owners = outlets.finder if isinstance(outlets, Outlets) else \
        name_owners(tuple((o.id, tuple(n.strip() for n in o.names)) for o in outlets))
    named = {oid for n in finder.find("\n".join(body)) for oid in owners[n]}
    if isinstance(outlets, Outlets):  # hundreds of outlets, a few named: no walk over them all
        patterns = [(o, pat) for _, o, pat in sorted((x for oid in named for x in outlets.patterns[oid]),
                                                     key=lambda x: x[0])]
    else:
        patterns = [(o, _alias_pattern(tuple(o.names))) for o in outlets if o.id in named]
    for para in body:
        for sentence in _SENTENCE.findall(para):
            if not sentence.strip():
                continue
            for outlet, pat in patterns:
                for m in pat.finditer(sentence):
                    how = attribution(sentence, m.start(), m.end())
                    if how is None:
                        continue
                    form, also, day = how
                    if (outlet.id, day) not in seen:
                        seen.add((outlet.id, day))
                        out.append(Citation(kind="mention", text=m.group(0), outlet=outlet.id, day=day,
                                            context=para, form=form, also=also))
                    break
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
