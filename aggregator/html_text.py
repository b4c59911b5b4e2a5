"""HTML helpers shared by the stages: plain text, safe HTML, and text blocks. Pure."""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass
from typing import Any

import lxml.html
import nh3
from lxml import etree

# Bidirectional-text controls (U+061C, U+200E/F, U+202A-E, U+2066-9): invisible, they
# reorder what a reader sees ("Trojan Source"): an outlet's title could show a link or a
# file name backwards, or one part of a line as another's. Nobody's headline needs them.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")

# A tag opens with "<" and a letter, "/", "!" or "?" (HTML tokenizer): "5 < 6" is text.
_TAG = re.compile(r"<[A-Za-z/!?][^>]{0,2000}>")
_WS = re.compile(r"\s+")
# A citation line, "参考:" and its variants (the citation extractor's, and the page
# extractor's, which must keep these lines): full-width colon, brackets, 参考記事, 参照, ソース, Source(s).
CITATION_LINE = re.compile(
    r"^\s*[※＊*・■◆●]?\s*[【\[]?(?:参考(?:記事|資料|文献|リンク)?|参照|ソース|引用元|Sources?)[】\]]?\s*[:：]\s*",
    re.I)

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "u", "ul",
}
_ALLOWED_ATTRS = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"},
    "abbr": {"title"}, "q": {"cite"}, "blockquote": {"cite"},
}


def strip_bidi(text: str) -> str:
    """``text`` without bidirectional-text controls (see BIDI_CONTROLS)."""
    return _BIDI.sub("", text) if text else text


def strip_tags(text: str) -> str:
    """Plain text of an HTML fragment, entities decoded, whitespace collapsed, no
    bidirectional-text controls (``&#x202E;`` included)."""
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return _WS.sub(" ", strip_bidi(text)).strip()


def sanitize_html(fragment: str, base_url: str | None = None) -> str:
    """HTML safe to put in a feed or page: no script, style, iframe, ``on*`` or
    ``javascript:`` URLs; links get ``rel="noopener noreferrer"``.

    Relative ``href``/``src`` are resolved against ``base_url`` (the entry's own link)
    when it is an absolute http(s) URL, and dropped otherwise: a relative link in a
    republished feed would point into the aggregator's site, not the source's."""
    if not fragment:
        return ""
    relative: Any = "deny"  # nh3 takes a Literal or a ("rewrite_with_base", url) tuple
    if base_url and base_url.lower().startswith(("http://", "https://")):
        relative = ("rewrite_with_base", base_url)
    return nh3.clean(strip_bidi(fragment), tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRS,
                     url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer", url_relative=relative)


@dataclass(frozen=True, slots=True)
class Block:
    """One paragraph-like block of a document: its text and the links inside it."""

    text: str
    links: tuple[tuple[str, str], ...] = ()  # (href, anchor text)
    tag: str = ""  # the element it came from (p, li, ...), "" for loose text


_BLOCK_TAGS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figcaption",
               "dd", "dt", "td", "th", "pre"}
_UNSEEN = etree.XPath(".//script|.//style|.//noscript")
# A child of one of these makes its parent a container, not a block.
_BLOCK_OR_CONTAINER = frozenset(_BLOCK_TAGS | {"div", "ul", "ol", "figure", "section", "article", "table", "tbody",
                                               "tr"})


def blocks(fragment: str) -> list[Block]:
    """Split an HTML fragment into paragraph-like blocks, in document order.

    ``<br>``-separated lines inside one block become separate blocks, because WordPress
    themes often put several ``参考:`` lines in one paragraph.
    """
    if not fragment or not fragment.strip():
        return []
    return list(_blocks(fragment))


# A cycle reads the newest posts three times (matching, translation, publication): the
# last few hundred fragments are parsed once.
@functools.lru_cache(maxsize=512)
def _blocks(fragment: str) -> tuple[Block, ...]:
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return (Block(strip_tags(fragment)),)
    for bad in _UNSEEN(root):
        bad.drop_tree()
    out: list[Block] = []
    _walk(root, out)
    return tuple(b for b in out if b.text)


def _walk(el: lxml.html.HtmlElement, out: list[Block]) -> None:
    tag = el.tag
    if not isinstance(tag, str):
        return
    children = list(el)
    has_block_child = any(isinstance(t := c.tag, str) and t in _BLOCK_OR_CONTAINER for c in children)
    if not has_block_child and (tag in _BLOCK_TAGS or tag == "div"):
        out.extend(block_lines(el))
        return
    # Loose text directly inside a container counts as its own block.
    text = el.text
    if text and text.strip():
        out.append(Block(_WS.sub(" ", text).strip()))
    for child in children:
        _walk(child, out)
        tail = child.tail
        if tail and tail.strip():
            out.append(Block(_WS.sub(" ", tail).strip()))


def block_lines(el: lxml.html.HtmlElement) -> list[Block]:
    """A block element's lines (split at ``<br>``), each with its links."""
    lines: list[tuple[list[str], list[tuple[str, str]]]] = [([], [])]

    def visit(node: lxml.html.HtmlElement) -> None:
        if node.text:
            lines[-1][0].append(node.text)
        for child in node:
            tag = child.tag
            if not isinstance(tag, str):
                pass
            elif tag == "br":
                lines.append(([], []))
            elif tag == "a":
                content = child.text_content()
                text = _WS.sub(" ", content).strip()
                lines[-1][0].append(content)
                href = (child.get("href") or "").strip()
                if href:
                    lines[-1][1].append((href, text))
            else:
                visit(child)
            tail = child.tail
            if tail:
                lines[-1][0].append(tail)

    visit(el)
    out = []
    tag = el.tag
    for parts, links in lines:
        text = _WS.sub(" ", "".join(parts)).strip()
        if text:
            out.append(Block(text, tuple(links), tag))
    return out


# Publisher footers that feed generators append to every item: none of it is the article.
# WordPress core/Yoast: "The post <a>Title</a> appeared first on <a>Site</a>."; Jetpack's
# share and related-posts blocks; "Continue reading" / "Read more" links.
_BOILERPLATE_CLASSES = ("sharedaddy", "jp-relatedposts", "jetpack", "yarpp", "wp-block-buttons", "more-link")
_FOOTER_TEXT = re.compile(
    r"^(the post\b.{0,400}\bappeared first on\b.{0,200}"
    r"|this (article|post) (was )?(originally )?(appeared|published) (first )?(on|at)\b.{0,200}"
    r"|(continue reading|read more|read the full (story|article))\b.{0,200}"
    r"|(share this|like this|related)\s*:?.{0,0})$",
    re.IGNORECASE | re.DOTALL)
_TRAILING_MORE = re.compile(r"\s*(?:\[(?:…|\.\.\.|&hellip;)\]\s*)?(?:continue reading|read more)\b[^<]{0,200}$",
                            re.IGNORECASE)


# The WordPress footer as loose text and links at the very end of a fragment.
_RAW_FOOTER = re.compile(r"(?:<p[^>]*>\s*)?The post\s(?:(?!</p>).){0,800}?\sappeared first on\s(?:(?!</p>).){0,400}?"
                         r"(?:</p>\s*)?\Z", re.IGNORECASE | re.DOTALL)


def strip_boilerplate(fragment: str) -> str:
    """``fragment`` without publisher boilerplate: footers (WordPress' "The post … appeared
    first on …", Yoast's, Jetpack's share/related blocks) and "Continue reading" links."""
    if not fragment or not fragment.strip():
        return fragment
    cut = _RAW_FOOTER.search(fragment)
    if cut is not None:
        fragment = fragment[:cut.start()].rstrip()
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return fragment
    changed = cut is not None
    for el in list(root.iter()):
        if not isinstance(el.tag, str) or el is root or el.getparent() is None:
            continue
        classes = (el.get("class") or "").lower()
        text = _WS.sub(" ", el.text_content()).strip()
        if any(c in classes for c in _BOILERPLATE_CLASSES) or (
                el.tag in ("p", "div", "a", "span", "small", "em") and _FOOTER_TEXT.match(text)):
            el.drop_tree()
            changed = True
    # A loose footer with no element of its own ("… The post X appeared first on Y.").
    last = root[-1] if len(root) else None
    tail_owner = last if last is not None else root
    loose = (last.tail if last is not None else root.text) or ""
    m = re.search(r"the post\b.{0,400}?\bappeared first on\b.*$", loose, re.IGNORECASE | re.DOTALL)
    if m is None:
        m = _TRAILING_MORE.search(loose)
    if m is not None:
        if last is not None:
            tail_owner.tail = loose[:m.start()]
        else:
            root.text = loose[:m.start()]
        changed = True
    if not changed:
        return fragment
    out = (root.text or "") + "".join(etree.tostring(c, encoding="unicode", method="html") for c in root)
    return out.strip()
