"""Loopback HTTP servers: a feed server with fault injection, LibreTranslate and DeepL stand-ins.

Used by the test-suite and by ``aggregator eval-matching``, so that fetching and
translating can be exercised end to end without touching the internet. Each server
binds 127.0.0.1 on an ephemeral port and runs a ``ThreadingHTTPServer`` in a daemon
thread. stop() returns promptly even with handlers hung on purpose: every wait in a
handler is on the server's stop Event, and every open connection is shut down on stop.

    with FeedServer() as feeds:
        url = feeds.add("/feed.xml", rss_bytes)
        feeds.fault("/slow.xml", "drip", interval=0.1)

    with LibreTranslateServer.from_jsonl(path, unknown="echo") as lt:
        LibreTranslator(source="ja", target="en", custom_url=lt.url, api_key="x").translate(text)
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import mimetypes
import socket
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from gzip import compress as gzip_compress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self, get_args
from urllib.parse import parse_qs, urlsplit

from deep_translator.constants import LIBRE_LANGUAGES_TO_CODES

HOST = "127.0.0.1"
RSS_TYPE = "application/rss+xml; charset=utf-8"
JSON_TYPE = "application/json"
DEFAULT_BIG_SIZE = 50 * 2**20  # gzip_bomb / huge: far above any sane feed-size cap

# Served by the streaming faults when the path has no content of its own.
_SMALL_FEED = (b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
               b"<title>Loopback</title><link>http://127.0.0.1/</link><description>d</description>"
               b"<item><title>One</title><link>http://127.0.0.1/one</link></item></channel></rss>\n")
_HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Welcome</title></head>"
              b"<body><h1>Welcome</h1><p>This is a web page, not a feed.</p></body></html>\n")
_XML_PROLOG = b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>Big</title>\n'


# --------------------------------------------------------------------------- plumbing

class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True   # a hung handler must not keep the process alive
    block_on_close = False  # server_close() must not join hung handler threads

    def __init__(self, app: LoopbackServer) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self.connections_total = 0
        self.connections_peak = 0
        super().__init__((HOST, 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
            self.connections_total += 1
            self.connections_peak = max(self.connections_peak, len(self._conns))
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        # Wakes handlers blocked reading an idle keep-alive connection and tells the client.
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients giving up (timeouts, size caps) and stop() cutting connections are expected.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx and requests use it
    # As real servers do: headers and body go out at once. With Nagle's algorithm the body,
    # written after the headers, waited for the client's delayed ACK of them (40 ms) on
    # every kept-alive request but a connection's first.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.app._handle(self)

    do_HEAD = do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def start(self, status: int, headers: Mapping[str, str]) -> None:
        """Send the status line and headers (the body, if any, is the caller's)."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        """A complete response; Content-Length is the body's unless given; HEAD gets no body."""
        all_headers = {} if status == 304 else {"Content-Length": str(len(body))}
        all_headers.update(headers or {})
        self.start(status, all_headers)
        if self.command != "HEAD" and status != 304:
            self.wfile.write(body)

    def reply_json(self, status: int, data: object, headers: Mapping[str, str] | None = None) -> None:
        self.reply(status, json.dumps(data, ensure_ascii=False).encode(),
                   {"Content-Type": JSON_TYPE, **(headers or {})})

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def reset(self) -> None:
        """Abort the connection with a TCP RST rather than an orderly close."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()  # the real close (the RST) happens when rfile/wfile let go
        self.close_connection = True

    def wait_for_stop(self) -> None:
        """Never answer: hold the connection until the server stops, then drop it."""
        self.server.stopping.wait()
        self.close_connection = True


class LoopbackServer:
    """Start/stop plumbing shared by the servers: 127.0.0.1, ephemeral port, daemon thread.

    The socket is bound on first need, so URLs are known before start(). Usable as a
    context manager; start() after stop() starts afresh on a new port.
    """

    def __init__(self) -> None:
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _bound(self) -> _HTTPServer:
        if self._httpd is None:
            self._httpd = _HTTPServer(self)
        return self._httpd

    def start(self) -> Self:
        if self._httpd is not None and self._httpd.stopping.is_set():
            self._httpd = None
        if self._thread is None:
            httpd = self._bound()
            # A short poll interval: shutdown() waits for the serve loop to notice.
            self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"{type(self).__name__}-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or httpd.stopping.is_set():
            return
        httpd.stopping.set()  # releases handlers that hang, drip or sleep
        self._thread = None
        if thread is not None:
            httpd.shutdown()  # only with a serve loop running: it waits for that loop
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(timeout=1.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self._bound().server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    @property
    def connections_peak(self) -> int:
        """The most TCP connections that were open at once (keep-alive ones included)."""
        return self._bound().connections_peak

    @property
    def connections_total(self) -> int:
        """TCP connections accepted so far."""
        return self._bound().connections_total

    def _handle(self, handler: _Handler) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- feed server

FeedFault = Literal["status", "redirect", "redirect_loop", "hang", "drip", "slow_headers", "reset",
                    "truncate", "gzip_bomb", "huge", "html"]

# The options each fault takes; checked up front so that a typo fails the test that made it.
_FAULT_OPTIONS: dict[str, frozenset[str]] = {
    "status": frozenset({"status", "headers", "body"}),
    "redirect": frozenset({"to", "status"}),
    "redirect_loop": frozenset({"status"}),
    "hang": frozenset(),
    "drip": frozenset({"interval"}),
    "slow_headers": frozenset({"interval", "count"}),
    "reset": frozenset(),
    "truncate": frozenset(),
    "gzip_bomb": frozenset({"size"}),
    "huge": frozenset({"size"}),
    "html": frozenset({"body"}),
}
assert set(_FAULT_OPTIONS) == set(get_args(FeedFault))


class RequestHeaders(Mapping[str, str]):
    """A request's headers; lookup is case-insensitive, iteration gives lower-case names."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._headers = {name.lower(): value for name, value in items}

    def __getitem__(self, name: str) -> str:
        return self._headers[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __repr__(self) -> str:
        return f"RequestHeaders({self._headers!r})"


class RecordedRequest(NamedTuple):
    method: str
    path: str  # the request target as sent, query string included
    headers: RequestHeaders


@dataclass
class _Resource:
    body: bytes
    content_type: str
    headers: dict[str, str]
    mtime: int  # whole seconds: Last-Modified has no finer resolution

    @functools.cached_property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest() + '"'

    @functools.cached_property
    def gzipped(self) -> bytes:
        return gzip_compress(self.body, mtime=0)


@dataclass(frozen=True)
class _Fault:
    kind: FeedFault
    opts: dict[str, Any] = field(default_factory=dict)


class FeedServer(LoopbackServer):
    """Serves feeds (bytes at paths) with validators, gzip, request logging and faults.

    Paths are matched exactly, query string included, falling back to the path without
    its query string; ``hits`` is keyed by the matched path. Content and faults may be
    changed at any time, also while the server runs.
    """

    def __init__(self, *, gzip: bool = True) -> None:
        super().__init__()
        self.gzip = gzip
        self.hits: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self._resources: dict[str, _Resource] = {}
        self._faults: dict[str, _Fault] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, directory: str | Path, *, gzip: bool = True) -> FeedServer:
        """A (not yet started) server with every file under ``directory`` at its relative path."""
        server = cls(gzip=gzip)
        server.add_dir("", directory)
        return server

    def url(self, path: str) -> str:
        return self.base_url + _norm(path)

    def add(self, path: str, body: bytes, content_type: str = RSS_TYPE,
            headers: Mapping[str, str] | None = None) -> str:
        """Serve ``body`` at ``path`` (replacing what was there); returns its URL.

        ``headers`` are added to 200 and 304 answers (e.g. Cache-Control) and override ours.
        """
        path = _norm(path)
        with self._lock:
            old = self._resources.get(path)
            # A replaced feed must look newer to If-Modified-Since even within the same second.
            mtime = int(time.time()) if old is None else max(int(time.time()), old.mtime + 1)
            self._resources[path] = _Resource(body, content_type, dict(headers or {}), mtime)
        return self.url(path)

    def add_file(self, path: str, file_path: str | Path, content_type: str | None = None) -> str:
        """Serve a file's current bytes at ``path``; the type is guessed from its name and content."""
        body = Path(file_path).read_bytes()
        return self.add(path, body, content_type or _guess_type(Path(file_path), body))

    def add_dir(self, prefix: str, directory: str | Path) -> list[str]:
        """Serve every file under ``directory`` at ``prefix/relative/path``; returns their URLs."""
        root = Path(directory)
        prefix = prefix.strip("/")
        return [self.add_file(f"{prefix}/{file.relative_to(root).as_posix()}", file)
                for file in sorted(root.rglob("*")) if file.is_file()]

    def fault(self, path: str, kind: FeedFault, **opts: Any) -> None:
        """Make ``path`` misbehave (it need not have content) until clear_fault().

        Kinds and options (defaults in brackets):
          status        status [503], headers [{}] e.g. Retry-After or Location, body
          redirect      to (path or absolute URL), status [301]; 301/302/303/307/308
          redirect_loop status [302]: redirects to itself
          hang          accepts the request and never answers until the server stops
          drip          interval [1.0]: headers at once, then one body byte per interval
          slow_headers  interval [1.0], count [30]: the status line, then a filler header
                        per interval, then the normal response
          reset         headers and half the body, then a TCP RST
          truncate      Content-Length twice the body's, the body, then close
          gzip_bomb     size [50 MiB]: a ~1000x smaller gzip body that inflates to size
                        bytes, sent with Content-Encoding: gzip whatever the client accepts
          huge          size [50 MiB]: that many bytes of RSS-looking XML, no Content-Length
          html          body [a small page]: 200 text/html
        The streaming kinds serve the path's content, or a small feed if it has none.
        """
        if kind not in _FAULT_OPTIONS:
            raise ValueError(f"unknown fault kind {kind!r}")
        unknown = set(opts) - _FAULT_OPTIONS[kind]
        if unknown:
            raise TypeError(f"fault {kind!r} takes no option(s) {sorted(unknown)}")
        if kind == "redirect" and "to" not in opts:
            raise TypeError("fault 'redirect' needs to=")
        with self._lock:
            self._faults[_norm(path)] = _Fault(kind, opts)

    def clear_fault(self, path: str) -> None:
        with self._lock:
            self._faults.pop(_norm(path), None)

    # -- serving

    def _handle(self, h: _Handler) -> None:
        with self._lock:
            key = h.path if h.path in self._resources or h.path in self._faults else urlsplit(h.path).path
            self.hits[key] += 1
            self.requests.append(RecordedRequest(h.command, h.path, RequestHeaders(h.headers.items())))
            resource = self._resources.get(key)
            fault = self._faults.get(key)
        if h.command not in ("GET", "HEAD"):
            h.reply(405, b"method not allowed\n", {"Allow": "GET, HEAD", "Content-Type": "text/plain"})
        elif fault is not None:
            self._serve_fault(h, key, fault, resource)
        elif resource is None:
            h.reply(404, b"not found\n", {"Content-Type": "text/plain; charset=utf-8"})
        else:
            self._serve(h, resource)

    def _serve(self, h: _Handler, r: _Resource) -> None:
        headers = {"Content-Type": r.content_type, "ETag": r.etag,
                   "Last-Modified": email.utils.formatdate(r.mtime, usegmt=True)}
        if self.gzip:
            headers["Vary"] = "Accept-Encoding"
        headers.update(r.headers)
        if _not_modified(h, r):
            del headers["Content-Type"]
            h.reply(304, headers=headers)
        elif self.gzip and _accepts_gzip(h.headers.get("Accept-Encoding", "")):
            h.reply(200, r.gzipped, {**headers, "Content-Encoding": "gzip"})
        else:
            h.reply(200, r.body, headers)

    def _serve_fault(self, h: _Handler, key: str, fault: _Fault, resource: _Resource | None) -> None:
        kind, opts = fault.kind, fault.opts
        stopping = h.server.stopping
        body = resource.body if resource is not None else _SMALL_FEED
        ctype = resource.content_type if resource is not None else RSS_TYPE
        streams = h.command != "HEAD"
        if kind == "status":
            status = int(opts.get("status", 503))
            text = opts.get("body", f"{status} {h.responses.get(status, ('',))[0]}\n".encode())
            h.reply(status, text, {"Content-Type": "text/plain; charset=utf-8", **opts.get("headers", {})})
        elif kind == "redirect":
            status = int(opts.get("status", 301))
            if status not in (301, 302, 303, 307, 308):
                raise ValueError(f"not a redirect status: {status}")
            to = str(opts["to"])
            h.reply(status, headers={"Location": to if "://" in to else self.url(to)})
        elif kind == "redirect_loop":
            h.reply(int(opts.get("status", 302)), headers={"Location": self.url(key)})
        elif kind == "hang":
            h.wait_for_stop()
        elif kind == "drip":
            h.start(200, {"Content-Type": ctype, "Content-Length": str(len(body))})
            interval = float(opts.get("interval", 1.0))
            for i in range(len(body) if streams else 0):
                h.wfile.write(body[i:i + 1])
                if i + 1 < len(body) and stopping.wait(interval):
                    h.close_connection = True
                    return
        elif kind == "slow_headers":
            # Written by hand: send_response() would buffer the status line with the headers.
            h.wfile.write(f"{h.protocol_version} 200 OK\r\n".encode())
            interval = float(opts.get("interval", 1.0))
            for i in range(int(opts.get("count", 30))):
                if stopping.wait(interval):
                    h.close_connection = True
                    return
                h.wfile.write(f"X-Slow-{i}: waiting\r\n".encode())
            for name, value in {"Content-Type": ctype, "Content-Length": str(len(body))}.items():
                h.send_header(name, value)
            h.end_headers()
            if streams:
                h.wfile.write(body)
        elif kind == "reset":
            h.start(200, {"Content-Type": ctype, "Content-Length": str(len(body))})
            h.wfile.write(body[: len(body) // 2])
            h.reset()
        elif kind == "truncate":
            h.reply(200, body, {"Content-Type": ctype, "Content-Length": str(2 * len(body)),
                                "Connection": "close"})
        elif kind == "gzip_bomb":
            h.reply(200, _gzip_bomb(int(opts.get("size", DEFAULT_BIG_SIZE))),
                    {"Content-Type": RSS_TYPE, "Content-Encoding": "gzip"})
        elif kind == "huge":
            # No Content-Length: the body ends when we close, so only a size cap stops it.
            h.start(200, {"Content-Type": RSS_TYPE, "Connection": "close"})
            for chunk in _huge_chunks(int(opts.get("size", DEFAULT_BIG_SIZE)) if streams else 0):
                if stopping.is_set():
                    break
                h.wfile.write(chunk)
        elif kind == "html":
            h.reply(200, opts.get("body", _HTML_PAGE), {"Content-Type": "text/html; charset=utf-8"})


def _norm(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _guess_type(file: Path, body: bytes) -> str:
    suffix = file.suffix.lower()
    if suffix in (".xml", ".rss", ".atom", ".rdf"):
        return "application/atom+xml; charset=utf-8" if b"<feed" in body[:4096] else RSS_TYPE
    if suffix == ".json":
        return "application/feed+json; charset=utf-8"
    guessed = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    return guessed + "; charset=utf-8" if guessed.startswith("text/") else guessed


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.lower().split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding in ("gzip", "x-gzip"):
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
    return False


def _not_modified(h: _Handler, r: _Resource) -> bool:
    if_none_match = h.headers.get("If-None-Match")
    if if_none_match is not None:  # takes precedence over If-Modified-Since (RFC 9110 13.2.2)
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or r.etag in tags
    if_modified_since = h.headers.get("If-Modified-Since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return r.mtime <= since.timestamp()
    return False


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    """gzip of an XML prolog padded with spaces to ``size`` bytes; 50 MiB takes ~0.15 s once."""
    prolog = _XML_PROLOG[:size]
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip container
    parts = [compressor.compress(prolog)]
    block = memoryview(b" " * 2**20)
    remaining = size - len(prolog)
    while remaining > 0:
        parts.append(compressor.compress(block[:remaining]))
        remaining -= len(block)
    parts.append(compressor.flush())
    return b"".join(parts)


def _huge_chunks(size: int) -> Iterator[bytes]:
    """Exactly ``size`` bytes of an RSS document that never ends, in ~64 KiB chunks."""
    item = b"<item><title>Item</title><link>http://127.0.0.1/item</link><description>" + b"x" * 400 + \
        b"</description></item>\n"
    block = item * (65536 // len(item))
    chunk = _XML_PROLOG[:size]
    sent = 0
    while chunk:
        yield chunk
        sent += len(chunk)
        chunk = block[: size - sent]


class Blackhole:
    """A port on 127.0.0.1 that never accepts a connection: connecting to it times out.

    It listens with a backlog of one and fills that backlog itself, so the kernel drops
    every further SYN (as a firewall or an overloaded host does) instead of refusing it.

        with Blackhole() as hole:
            httpx.get(hole.url("/feed.xml"), timeout=1)  # -> ConnectTimeout
    """

    def __init__(self) -> None:
        self._listener: socket.socket | None = None
        self._fillers: list[socket.socket] = []

    def start(self) -> Self:
        if self._listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((HOST, 0))
            listener.listen(0)
            self._listener = listener
            for _ in range(3):  # a backlog of 0 still queues one; a spare or two for safety
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.setblocking(False)
                try:
                    filler.connect(listener.getsockname())
                except BlockingIOError:
                    pass
                self._fillers.append(filler)
        return self

    def stop(self) -> None:
        for sock in (*self._fillers, *([self._listener] if self._listener else [])):
            sock.close()
        self._fillers = []
        self._listener = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            self.start()
        assert self._listener is not None
        return int(self._listener.getsockname()[1])

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{_norm(path)}"


# An "echo" server's answer for a text not in its table: aggregator refuses an answer that
# is its input handed back, or not in the target language (aggregator/answers.py), so the
# echo is an English-looking stand-in, made the same way every time (tests compare with
# pseudo_translation(text, target)): ASCII is kept as it is (names, numbers, English
# inside the text, as a translator keeps them), every two other characters become a word.
_PSEUDO_WORDS = ("the", "minister", "said", "that", "government", "will", "support", "new", "defence", "plan",
                 "after", "talks", "with", "allies", "on", "military", "aid", "for", "army", "forces", "and",
                 "report", "says", "officials", "week", "bill", "vote", "congress", "president", "about",
                 "security", "border")


def pseudo_translation(text: str, target: str) -> str:
    """What an echo server answers for ``text`` it has no translation of."""
    if not text.strip():
        return text
    out: list[str] = []
    pending = ""
    for c in text + "\x00":
        if ord(c) >= 128 and not c.isspace():
            pending += c
            continue
        for i in range(0, len(pending), 2):
            out.append(" " + _PSEUDO_WORDS[sum(map(ord, pending[i:i + 2])) % len(_PSEUDO_WORDS)] + " ")
        pending = ""
        if c != "\x00":
            out.append(c)
    return f"[{target}] " + " ".join("".join(out).split())


# --------------------------------------------------------------------------- LibreTranslate

LibreFault = Literal["hang", "slow", "429", "500", "malformed", "reset", "403"]
# A fault plan: one kind (or None) for every request, or per request counted from when the
# plan was set: a list (beyond its end: no fault) or a function of that 0-based count.
FaultPlan = LibreFault | None | Sequence[LibreFault | None] | Callable[[int], LibreFault | None]

_LANGUAGE_NAMES = {code: name.title() for name, code in LIBRE_LANGUAGES_TO_CODES.items()}


class _FaultSchedule:
    """When a translation server misbehaves: one fault kind for every request, a list
    (one per request, then none) or a function of the request count since it was set."""

    def __init__(self, kinds: tuple[str, ...], server: str):
        self._kinds, self._server = kinds, server
        self._lock = threading.Lock()
        self.plan: Any = None
        self._count = 0

    def check(self, kind: str | None) -> str | None:
        if kind is not None and kind not in self._kinds:
            raise ValueError(f"unknown {self._server} fault {kind!r}")
        return kind

    def set(self, plan: Any) -> None:
        for kind in [plan] if plan is None or isinstance(plan, str) else [] if callable(plan) else list(plan):
            self.check(kind)
        with self._lock:
            self.plan, self._count = plan, 0

    def next(self) -> str | None:
        with self._lock:
            plan, count = self.plan, self._count
            self._count += 1
        if plan is None or isinstance(plan, str):
            return plan
        if callable(plan):
            return self.check(plan(count))
        return plan[count] if count < len(plan) else None


class LibreTranslateServer(LoopbackServer):
    """The LibreTranslate API as deep-translator's LibreTranslator uses it, from a fixed table.

    ``POST /translate`` takes q, source, target, format and api_key from the query string
    (where deep-translator puts them), a form body or a JSON body, and answers
    ``{"translatedText": ...}`` (plus ``detectedLanguage`` when source is "auto").
    ``GET /languages`` lists the table's languages as ``[{"code", "name"}]``.

    Counters cover every request to /translate, whatever the answer: ``requests``,
    ``characters`` (sum of len(q)) and ``texts`` (each q). ``fault`` applies to every
    endpoint and may be changed at any time; see FaultPlan.
    """

    def __init__(self, table: Mapping[tuple[str, str, str], str] | None = None, *,
                 unknown: Literal["error", "echo"] = "error", api_key: str | None = None,
                 delay: float = 1.0, retry_after: int = 1, max_url_length: int | None = None) -> None:
        """
        table: (source, target, text) -> translation.
        unknown: text not in the table gets 400 {"error": "unknown text"} ("error") or
            pseudo_translation(text, target) ("echo").
        api_key: when set, requests without this key get 403 {"error": "Invalid API key"}.
        delay: seconds the "slow" fault waits before answering.
        retry_after: the Retry-After seconds sent with the "429" fault.
        max_url_length: request targets longer than this get 414, as real front ends do.
        """
        super().__init__()
        if unknown not in ("error", "echo"):
            raise ValueError(f"unknown must be 'error' or 'echo', not {unknown!r}")
        self.table = dict(table or {})
        self.unknown = unknown
        self.api_key = api_key
        self.delay = delay
        self.retry_after = retry_after
        self.max_url_length = max_url_length
        self.requests = 0
        self.characters = 0
        self.texts: list[str] = []
        # For source "auto": any row with this target and text will do.
        self._by_target_text = {(target, text): (source, translation)
                                for (source, target, text), translation in self.table.items()}
        self._faults = _FaultSchedule(get_args(LibreFault), "LibreTranslate")
        self._lock = threading.Lock()

    @classmethod
    def from_jsonl(cls, path: str | Path, **kwargs: Any) -> LibreTranslateServer:
        """A (not yet started) server whose table is the rows {source, target, text, translation}."""
        table: dict[tuple[str, str, str], str] = {}
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    row = json.loads(line)
                    table[row["source"], row["target"], row["text"]] = row["translation"]
        return cls(table, **kwargs)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``: deep-translator appends "translate" to it."""
        return self.base_url + "/"

    @property
    def fault(self) -> FaultPlan:
        return self._faults.plan  # type: ignore[no-any-return]

    @fault.setter
    def fault(self, plan: FaultPlan) -> None:
        self._faults.set(plan)

    def fail_first(self, n: int, kind: LibreFault) -> None:
        """The next ``n`` requests get ``kind``, later ones are answered normally."""
        self.fault = [kind] * n

    # -- serving

    def _next_fault(self) -> LibreFault | None:
        return self._faults.next()  # type: ignore[return-value]

    def _handle(self, h: _Handler) -> None:
        route = urlsplit(h.path).path.rstrip("/") or "/"
        body = h.read_body()  # always, so that keep-alive framing holds whatever we answer
        params = _libre_params(h, body)
        if route == "/translate":
            q = (params or {}).get("q", "")
            with self._lock:
                self.requests += 1
                self.characters += len(q)
                self.texts.append(q)
        if self.max_url_length is not None and len(h.path) > self.max_url_length:
            h.reply_json(414, {"error": "URI Too Long"})
            return
        fault = self._next_fault()
        if fault == "hang":
            h.wait_for_stop()
            return
        if fault == "reset":
            h.reset()
            return
        if fault == "slow" and h.server.stopping.wait(self.delay):
            h.close_connection = True
            return
        if fault == "429":
            h.reply_json(429, {"error": f"Slowdown: 1 per {self.retry_after} second"},
                         {"Retry-After": str(self.retry_after)})
        elif fault == "500":
            h.reply_json(500, {"error": "Internal Server Error"})
        elif fault == "malformed":
            h.reply(200, b'{"translatedText": "', {"Content-Type": JSON_TYPE})
        elif fault == "403":
            h.reply_json(403, {"error": "Invalid API key"})
        elif route == "/languages" and h.command in ("GET", "HEAD"):
            codes = sorted({code for (source, target, _text) in self.table for code in (source, target)} | {"en"})
            h.reply_json(200, [{"code": code, "name": _LANGUAGE_NAMES.get(code, code)} for code in codes])
        elif route == "/translate" and h.command == "POST":
            self._translate(h, params)
        elif route in ("/translate", "/languages"):
            h.reply_json(405, {"error": "Method Not Allowed"})
        else:
            h.reply_json(404, {"error": "Not Found"})

    def _translate(self, h: _Handler, params: dict[str, str] | None) -> None:
        if params is None:
            h.reply_json(400, {"error": "Invalid request: malformed body"})
            return
        if self.api_key is not None and params.get("api_key") != self.api_key:
            h.reply_json(403, {"error": "Invalid API key"})
            return
        for name in ("q", "source", "target"):
            if not params.get(name):
                h.reply_json(400, {"error": f"Invalid request: missing {name} parameter"})
                return
        q, source, target = params["q"], params["source"], params["target"]
        detected: str | None = None
        if source == "auto":
            detected, translation = self._by_target_text.get((target, q), (None, None))
        else:
            translation = self.table.get((source, target, q))
        if translation is None and self.unknown == "error":
            h.reply_json(400, {"error": "unknown text"})
            return
        answer: dict[str, object] = {"translatedText": pseudo_translation(q, target) if translation is None else translation}
        if detected is not None:
            answer["detectedLanguage"] = {"confidence": 100.0, "language": detected}
        h.reply_json(200, answer)


def _libre_params(h: _Handler, body: bytes) -> dict[str, str] | None:
    """Query-string parameters updated by those of a form or JSON body; None if the body is bad."""
    params = {name: values[-1] for name, values in parse_qs(urlsplit(h.path).query).items()}
    content_type = h.headers.get_content_type()
    try:
        if content_type == "application/json" and body:
            data = json.loads(body)
            if not isinstance(data, dict):
                return None
            params.update({name: value for name, value in data.items() if isinstance(value, str)})
        elif content_type == "application/x-www-form-urlencoded" and body:
            params.update({name: values[-1] for name, values in parse_qs(body.decode()).items()})
    except (ValueError, UnicodeDecodeError):
        return None
    return params


# --------------------------------------------------------------------------- DeepL

DeepLFault = Literal["hang", "slow", "429", "500", "503", "456", "malformed", "reset", "403"]
DeepLFaultPlan = DeepLFault | None | Sequence[DeepLFault | None] | Callable[[int], DeepLFault | None]

# Target languages DeepL's v2 API takes (bare EN and PT are refused: EN-GB/EN-US, PT-PT/PT-BR).
DEEPL_TARGETS = frozenset({"AR", "BG", "CS", "DA", "DE", "EL", "EN-GB", "EN-US", "ES", "ET", "FI", "FR", "HU",
                           "ID", "IT", "JA", "KO", "LT", "LV", "NB", "NL", "PL", "PT-BR", "PT-PT", "RO", "RU",
                           "SK", "SL", "SV", "TR", "UK", "ZH", "ZH-HANS", "ZH-HANT"})


class DeepLServer(LoopbackServer):
    """DeepL's v2 HTTP API as the official ``deepl`` client calls it, from a fixed table.

    ``POST /v2/translate`` takes a JSON body (``text``: a list, ``target_lang``, optional
    ``source_lang``) or a form, and the key in ``Authorization: DeepL-Auth-Key KEY``; it
    answers ``{"translations": [{"detected_source_language", "text", "billed_characters"}]}``.
    ``GET /v2/usage`` answers ``{"character_count", "character_limit"}``. A wrong key gets
    403, a used-up ``character_limit`` 456 (DeepL's "quota exceeded"), a target DeepL
    does not take 400. The table is keyed like LibreTranslateServer's: (source, target,
    text) with lower-case codes without region (("ja", "en", "..."): "...").

    Counters cover every request to /v2/translate: ``requests``, ``characters`` (sum of
    the texts' lengths) and ``texts``. ``fault`` works as LibreTranslateServer's.
    """

    def __init__(self, table: Mapping[tuple[str, str, str], str] | None = None, *, auth_key: str = "test-key",
                 unknown: Literal["error", "echo"] = "error", character_limit: int | None = None,
                 delay: float = 1.0, retry_after: int = 1) -> None:
        super().__init__()
        self.table = dict(table or {})
        self.auth_key = auth_key
        self.unknown = unknown
        self.character_limit = character_limit
        self.delay = delay
        self.retry_after = retry_after
        self.requests = 0
        self.characters = 0
        self.billed = 0
        self.texts: list[str] = []
        self._by_target_text = {(target, text): (source, tr) for (source, target, text), tr in self.table.items()}
        self._faults = _FaultSchedule(get_args(DeepLFault), "DeepL")
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``: the ``server_url`` to give ``deepl.Translator``."""
        return self.base_url + "/"

    @property
    def fault(self) -> DeepLFaultPlan:
        return self._faults.plan  # type: ignore[no-any-return]

    @fault.setter
    def fault(self, plan: DeepLFaultPlan) -> None:
        self._faults.set(plan)

    def _next_fault(self) -> DeepLFault | None:
        return self._faults.next()  # type: ignore[return-value]

    def _handle(self, h: _Handler) -> None:
        route = urlsplit(h.path).path.rstrip("/") or "/"
        body = h.read_body()
        params = _deepl_params(h, body)
        if route == "/v2/translate":
            texts = [t for t in (params or {}).get("text", []) if isinstance(t, str)]
            with self._lock:
                self.requests += 1
                self.characters += sum(map(len, texts))
                self.texts.extend(texts)
        fault = self._next_fault()
        if fault == "hang":
            h.wait_for_stop()
            return
        if fault == "reset":
            h.reset()
            return
        if fault == "slow" and h.server.stopping.wait(self.delay):
            h.close_connection = True
            return
        if fault == "429":
            h.reply_json(429, {"message": "Too many requests"}, {"Retry-After": str(self.retry_after)})
        elif fault in ("500", "503"):
            h.reply_json(int(fault), {"message": "Internal error" if fault == "500" else "Service unavailable"})
        elif fault == "456":
            h.reply_json(456, {"message": "Quota exceeded"})
        elif fault == "403":
            h.reply_json(403, {"message": "Wrong endpoint"})
        elif fault == "malformed":
            h.reply(200, b'{"translations": [{"text": ', {"Content-Type": JSON_TYPE})
        elif h.headers.get("Authorization") != f"DeepL-Auth-Key {self.auth_key}":
            h.reply_json(403, {"message": "Authorization failure, check auth_key"})
        elif route == "/v2/usage" and h.command == "GET":
            limit = self.character_limit if self.character_limit is not None else 500_000
            h.reply_json(200, {"character_count": self.billed, "character_limit": limit})
        elif route == "/v2/translate" and h.command == "POST":
            self._translate(h, params)
        elif route in ("/v2/translate", "/v2/usage"):
            h.reply_json(405, {"message": "Method not allowed"})
        else:
            h.reply_json(404, {"message": "Not found"})

    def _translate(self, h: _Handler, params: dict[str, Any] | None) -> None:
        if params is None:
            h.reply_json(400, {"message": "Bad request: malformed body"})
            return
        texts = params.get("text")
        target = params.get("target_lang")
        if not texts or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            h.reply_json(400, {"message": "Parameter 'text' not specified."})
            return
        if not isinstance(target, str) or target.upper() not in DEEPL_TARGETS:
            h.reply_json(400, {"message": "Value for 'target_lang' not supported."})
            return
        source = params.get("source_lang")
        chars = sum(map(len, texts))
        if self.character_limit is not None and self.billed + chars > self.character_limit:
            h.reply_json(456, {"message": "Quota exceeded"})
            return
        tgt = target.split("-")[0].lower()
        out = []
        for text in texts:
            if isinstance(source, str) and source:
                src, tr = source.lower(), self.table.get((source.lower(), tgt, text))
            else:
                src, tr = self._by_target_text.get((tgt, text), ("en", None))
            if tr is None:
                if self.unknown == "error":
                    h.reply_json(400, {"message": "unknown text"})
                    return
                tr = pseudo_translation(text, tgt)
            out.append({"detected_source_language": src.upper(), "text": tr, "billed_characters": len(text)})
        with self._lock:
            self.billed += chars
        h.reply_json(200, {"translations": out})


def _deepl_params(h: _Handler, body: bytes) -> dict[str, Any] | None:
    """A JSON body as is; a form (or query) with ``text`` as the list of its values."""
    content_type = h.headers.get_content_type()
    try:
        if content_type == "application/json" and body:
            data = json.loads(body)
            return data if isinstance(data, dict) else None
        query = parse_qs(urlsplit(h.path).query)
        if content_type == "application/x-www-form-urlencoded" and body:
            query.update(parse_qs(body.decode()))
    except (ValueError, UnicodeDecodeError):
        return None
    return {name: (values if name == "text" else values[-1]) for name, values in query.items()}
