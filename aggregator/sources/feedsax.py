"""expat's element events handed straight to feedparser's strict parser.

Through ``xml.sax`` every element costs four Python calls before feedparser's own
``unknown_starttag`` sees it: the SAX reader splits the expat name and builds an
``AttributesNSImpl``, then feedparser's ``startElementNS`` maps the namespace to its
prefix, lower-cases, and rebuilds the attributes as a dictionary (and the same, less
the attributes, at the end tag). That is 7 % of a feed's parse. :func:`handlers` does
the same work in one function per event, and remembers each element name's mapping,
which depends only on the name and the namespaces declared so far.

What reaches ``unknown_starttag``/``unknown_endtag`` is exactly what feedparser 6's
``_StrictFeedParser.startElementNS``/``endElementNS`` pass on, in the same order
(``tests/test_feedsax.py`` compares the two paths event by event).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MATHML = "http://www.w3.org/1998/Math/MathML"
_SVG = "http://www.w3.org/2000/svg"
_USERLAND = "http://backend.userland.com/rss"

StartHandler = Callable[[str, dict[str, str]], None]
EndHandler = Callable[[str], None]
Forget = Callable[[], None]


def _split(name: str) -> tuple[str | None, str]:
    # expat's names: "local", "uri local", or "uri local prefix" (namespace_prefixes)
    parts = name.split()
    if len(parts) == 1:
        return None, name
    return parts[0], parts[1]


def handlers(feed: Any) -> tuple[StartHandler, EndHandler, Forget]:
    """expat ``StartElementHandler`` and ``EndElementHandler`` for feedparser's strict
    parser ``feed`` (an ``xml.sax`` content handler with namespaces on), and what to call
    when the document declares a namespace (before feedparser hears of it): an element
    of a namespace feedparser does not know (Atom's, for one) takes the prefix declared
    for it, so the names remembered so far are forgotten."""
    match: dict[str, str] = feed._matchnamespaces  # fixed per parser: feedparser's known namespaces
    in_use: dict[str | None, str] = feed.namespaces_in_use  # grows as the document declares
    starttag, endtag = feed.unknown_starttag, feed.unknown_endtag
    starts: dict[str, tuple[str | None, str, str]] = {}
    ends: dict[str, str] = {}
    bare = match.get("", "")  # the prefix of an attribute without a namespace

    def declared(namespace: str, localname: str) -> str:
        # A namespace feedparser does not know: the prefix the document declared for it
        for prefix, uri in in_use.items():
            if prefix and uri == namespace:
                return prefix + ":" + localname
        return localname

    def start(name: str, attrs: dict[str, str]) -> None:
        got = starts.get(name)
        if got is None:
            namespace, localname = _split(name)
            lowerns = (namespace or "").lower()
            if lowerns.find("backend.userland.com/rss") != -1:
                namespace = lowerns = _USERLAND
            prefix = match.get(lowerns)
            localname = localname.lower()
            if prefix:
                tag = (prefix.lower() + ":" + localname).lower()
            else:
                tag = declared(namespace, localname).lower() if namespace else localname
            got = starts[name] = (namespace, localname, tag)
        namespace, localname, tag = got
        attrs_d: dict[str, str]
        attrs_d, feed.decls = feed.decls, {}
        if localname == "math" and namespace == _MATHML:
            attrs_d["xmlns"] = namespace
        if localname == "svg" and namespace == _SVG:
            attrs_d["xmlns"] = namespace
        if attrs:
            # feedparser keys each attribute by its prefixed name first, then (for all
            # attributes, after those) by its qualified name, the first such one winning
            qnames: list[tuple[str, str]] = []
            for aname, value in attrs.items():
                parts = aname.split()
                if len(parts) == 1:
                    attrs_d[(bare + ":" + aname if bare else aname).lower()] = value
                    qnames.append((aname, value))
                else:
                    prefix = match.get(parts[0].lower(), "")
                    local = parts[1]
                    attrs_d[(prefix + ":" + local if prefix else local).lower()] = value
                    qnames.append((f"{parts[2]}:{local}" if len(parts) == 3 else local, value))
            seen: set[str] = set()
            for qname, value in qnames:
                if qname not in seen:
                    seen.add(qname)
                    attrs_d[qname.lower()] = value
        starttag(tag, list(attrs_d.items()))

    def end(name: str) -> None:
        tag = ends.get(name)
        if tag is None:
            namespace, localname = _split(name)
            prefix = match.get((namespace or "").lower(), "")
            if prefix:
                tag = (prefix + ":" + localname).lower()
            else:
                tag = declared(namespace, localname).lower() if namespace else localname.lower()
            ends[name] = tag
        endtag(tag)

    def forget() -> None:
        starts.clear()
        ends.clear()

    return start, end, forget
