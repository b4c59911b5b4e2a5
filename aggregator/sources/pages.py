"""A post's own web page in, the post's body out: decoding and article extraction. Pure.

The article is found by trafilatura (the reference extractor: it drops navigation,
share buttons, related-post widgets and comments). trafilatura also drops
link-dense lines and lists, which is what ``参考:`` lines and the list under a bare
``参考:`` heading are; so the body is rebuilt from the page's own article element (the
smallest element that holds every paragraph trafilatura kept), keeping each block that
trafilatura kept and each citation line it dropped. Chrome is never inside that element
on a normal theme; a block inside something called a comment, widget, share or related
box is never restored even if it is (see docs/fetching.md, "Full text").
"""

from __future__ import annotations

import codecs
import re
from importlib.metadata import version

import charset_normalizer
import lxml.html
from lxml import etree

from aggregator.exceptions import ExtractionError
from aggregator.html_text import CITATION_LINE, block_lines, blocks

EXTRACTOR = f"trafilatura {version('trafilatura')}"

# Less article text than this (a "Home" link, a cookie notice) is no article.
MIN_TEXT = 15
# Paragraphs at least this long locate the article on the page.
DISTINCTIVE = 20
_WS = re.compile(r"\s+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# WHATWG: these labels mean the Windows supersets, which pages in them really use.
_SUPERSETS = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932", "ms_kanji": "cp932",
              "windows-31j": "cp932", "iso-8859-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
              "ascii": "cp1252", "euc-jp": "euc_jp", "gb2312": "gbk", "euc-kr": "cp949", "ks_c_5601-1987": "cp949"}
_LEAF_TAGS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "figcaption", "dd", "dt", "td", "th",
              "pre", "div", "figure"}
_CONTAINERS = {"div", "ul", "ol", "figure", "section", "article", "table", "tbody", "thead", "tr", "blockquote",
               "dl", "main"}
_DROP = ("script", "style", "noscript", "template", "form", "iframe", "ins", "button", "svg", "input",
         "textarea", "select")
# What themes call the element holding a post's text (WordPress's entry-content first).
_CONTENT = re.compile(r"\b(?:entry-content|post-content|entry-body|post-body|article-body|single-content)\b")
# Never restore a line from inside these, whatever trafilatura's verdict on the page.
_CHROME = re.compile(r"comment|respond|share|sharing|sns|social|related|widget|sidebar|breadcrumb|"
                     r"navigation|nav-links|post-nav|footer|author|ad-|ads|sponsor|popular|ranking|recommend",
                     re.IGNORECASE)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_page(content: bytes, content_type: str | None = None) -> tuple[str, str]:
    """A page's bytes as text, and the encoding used.

    UTF-8 when the bytes are valid UTF-8 (a page that says Shift_JIS but is UTF-8, as
    happens after a theme change, is read right); else the charset the server or the
    page declares, when the bytes decode under it; else charset_normalizer's guess."""
    if content.startswith(codecs.BOM_UTF8):
        return content[3:].decode("utf-8", "replace"), "utf-8"
    for bom, enc in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if content.startswith(bom):
            return content.decode(enc, "replace"), enc
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared: list[str | None] = []
    if content_type:
        m = _HEADER_CHARSET.search(content_type)
        declared.append(m.group(1) if m else None)
    m2 = _META_CHARSET.search(content[:4096])
    declared.append(m2.group(1).decode("ascii", "replace") if m2 else None)
    for label in declared:
        codec = _codec(label)
        if codec and codec not in ("utf-8", "utf_8"):
            try:
                return content.decode(codec), codec
            except UnicodeDecodeError:
                continue
    best = charset_normalizer.from_bytes(content).best()
    if best is not None and best.encoding:
        guess = _codec(best.encoding) or best.encoding
        return content.decode(guess, "replace"), guess
    return content.decode("utf-8", "replace"), "utf-8"


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def extract_article(page: str, url: str | None = None) -> str:
    """The article's body as an HTML fragment (paragraphs, links, lists, line breaks).

    Raises :class:`ExtractionError` when there is none."""
    import trafilatura  # a third of a second to import: only when a page is read

    kept_html = trafilatura.extract(page, url=url, output_format="html", include_links=True,
                                    include_comments=False, include_images=False, include_tables=True,
                                    favor_precision=True, with_metadata=False)
    kept = [b.text for b in blocks(kept_html or "")]
    if sum(len(t) for t in kept) < MIN_TEXT:
        raise ExtractionError("no article text found on the page")
    try:
        doc = lxml.html.document_fromstring(page)
    except (etree.ParserError, ValueError) as e:
        raise ExtractionError(f"unreadable HTML: {e}") from None
    for bad in doc.xpath("|".join(f"//{t}" for t in _DROP)):
        bad.drop_tree()
    leaves = [(el, _norm(el.text_content())) for el in doc.iter(*_LEAF_TAGS) if _is_leaf(el)]
    # The article is found by its distinctive paragraphs: a short one ("まとめ", a byline)
    # may also stand in the navigation or a widget, earlier on the page.
    distinctive = [t for t in kept if len(t) >= DISTINCTIVE] or kept
    hits = []
    for text in distinctive:
        hit = next((el for el, t in leaves if text in t), None)
        if hit is not None:
            hits.append(hit)
    if not hits:  # trafilatura's text is nowhere in a paragraph of the page: take it as it is
        return _inner(lxml.html.document_fromstring(kept_html or "<p></p>").body)
    box = _common_ancestor(hits)
    if box.tag in ("p", "li", "h1", "h2", "h3", "h4", "h5", "h6") and box.getparent() is not None:
        box = box.getparent()
    # Themes wrap the text in inner boxes; the post's 参考 lines may sit after them, in the
    # element the theme calls the post's content.
    box = next((a for a in box.iterancestors() if _CONTENT.search(f"{a.get('class', '')} {a.get('id', '')}")),
               box)
    _filter(box, set(kept), "\n".join(kept))
    return _inner(box)


def _inner(el: lxml.html.HtmlElement) -> str:
    return ((el.text or "") + "".join(etree.tostring(c, encoding="unicode", method="html") for c in el)).strip()


def _is_leaf(el: lxml.html.HtmlElement) -> bool:
    return not any(isinstance(c.tag, str) and (c.tag in _LEAF_TAGS or c.tag in _CONTAINERS) for c in el)


def _common_ancestor(els: list[lxml.html.HtmlElement]) -> lxml.html.HtmlElement:
    paths = [list(reversed([el, *el.iterancestors()])) for el in els]
    common = paths[0][0]
    for level in zip(*paths, strict=False):  # up to the shortest path
        if all(x is level[0] for x in level):
            common = level[0]
        else:
            break
    return common


def _in_chrome(el: lxml.html.HtmlElement, box: lxml.html.HtmlElement) -> bool:
    node: lxml.html.HtmlElement | None = el
    while node is not None and node is not box:
        if _CHROME.search(f"{node.get('class', '')} {node.get('id', '')}"):
            return True
        node = node.getparent()
    return False


def _filter(box: lxml.html.HtmlElement, kept: set[str], kept_text: str) -> None:
    """Drop from ``box`` every block that trafilatura dropped, except citation lines.
    A line is kept when trafilatura kept it (whole, or inside a longer block of its own;
    a short line such as a share button's "X" only when whole)."""
    listing = False
    doomed = []
    for el in list(box.iter(*_LEAF_TAGS)):
        if el is box or not _is_leaf(el):
            continue
        lines = block_lines(el)
        if not lines:
            if el.tag != "figure" and not el.xpath(".//img"):
                doomed.append(el)
            continue
        cite = [b for b in lines if CITATION_LINE.match(b.text)]
        keep = any(b.text in kept or (len(b.text) >= DISTINCTIVE // 2 and b.text in kept_text) for b in lines)
        restore = not _in_chrome(el, box) and (bool(cite) or (listing and el.tag == "li"))
        if el.tag != "li":
            listing = bool(cite) and not any(b.links for b in cite)
        if not (keep or restore):
            doomed.append(el)
    for el in doomed:
        el.drop_tree()
