"""A SAX driver for feedparser's strict parser that refuses XML entity declarations.

feedparser strips entity declarations with a regex anchored at line starts, so a DOCTYPE
written on one line keeps its entities, and expat expands them: a 5 MB "billion laughs"
document cost 2 minutes and 4 GB here (expat's amplification limit grows with the input
size). This driver is defusedxml's expat reader, its refusal turned into the SAX error
feedparser expects: the document then goes to feedparser's loose parser, which expands
no declared entity. Selected in :mod:`aggregator.sources.parse` by name, as ``xml.sax`` wants.
"""

from __future__ import annotations

import xml.sax
from typing import Any

import feedparser.parsers.strict
from defusedxml.common import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

from aggregator.sources import feedsax


class SafeExpatParser(DefusedExpatParser):
    def reset(self) -> None:
        super().reset()
        # Hand each run of text over whole: expat otherwise calls back at every entity
        # and line end, and escaped HTML in a feed (&lt;p&gt;…) is all entities: 2,000
        # calls into feedparser's Python per feed, which joins the pieces again anyway.
        # The same text reaches feedparser in fewer pieces (pyexpat's own option).
        self._parser.buffer_text = True
        self._parser.buffer_size = 1 << 16
        handler = self._cont_handler
        if self._namespaces and isinstance(handler, feedparser.parsers.strict._StrictFeedParser):
            # Elements straight to feedparser's handler, past xml.sax's reader (feedsax).
            start, end, forget = feedsax.handlers(handler)
            self._parser.StartElementHandler, self._parser.EndElementHandler = start, end
            self._parser.CharacterDataHandler = handler.handle_data
            declare = self._parser.StartNamespaceDeclHandler  # the reader's: feedparser's startPrefixMapping

            def declared(prefix: str | None, uri: str) -> None:
                forget()
                declare(prefix, uri)

            self._parser.StartNamespaceDeclHandler = declared

    def feed(self, data: Any, isFinal: bool = False) -> None:
        try:
            super().feed(data, isFinal)
        except DefusedXmlException as e:
            name = getattr(e, "name", None)
            what = f"the XML entity {name!r}" if name else "XML entities"
            raise xml.sax.SAXParseException(f"declares {what}, refused (entity-bomb defence)", None, self) from None


def create_parser(*args: Any, **kwargs: Any) -> SafeExpatParser:
    return SafeExpatParser(*args, **kwargs)
