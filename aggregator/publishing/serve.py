"""``aggregator serve``: the output directory, read-only over HTTP.

A small stdlib server for the six published files (feeds, index.html, XSL stylesheets).
It is meant to be safe to expose as it is, so it is strict about what it serves:

* GET and HEAD only; anything else is 405 with ``Allow``.
* Only regular files whose real path (symlinks resolved) lies inside the real output
  directory; no ``..``, no encoded separators or dots, no backslashes, NUL bytes,
  dotfiles (the publisher's ``.name.tmp`` files among them) or directory listings.
* Each file is opened once and served from that descriptor: the publisher replaces
  files with ``os.replace``, so a response is always one whole version of a file.
* Strong ETag (content hash) and Last-Modified with 304 answers; gzip for text types
  with its own ETag, and ``Vary: Accept-Encoding``.
* Feeds go to browsers as application/xml so that Chromium applies their XSL (below).

    server = make_server(Path("output"), port=0)      # tests: ephemeral port
    threading.Thread(target=server.serve_forever, daemon=True).start()
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import logging
import os
import signal
import socket
import socketserver
import stat
import threading
from collections.abc import Iterable
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote

from aggregator import __version__
from aggregator.exceptions import PublishError

log = logging.getLogger("aggregator.server")

ALLOWED_METHODS = ("GET", "HEAD")
NOTHING_PUBLISHED = "nothing published yet: run `aggregator run --once`\n"
INDEX_NAME = "index.html"
MAX_FILE_SIZE = 64 * 2**20  # the output is a few hundred KiB; refuse to slurp anything absurd
IDLE_TIMEOUT = 30.0         # seconds an idle keep-alive connection may hold a thread
# Connections accepted but not yet served wait in the kernel's listen queue: the stdlib's
# 5 drops connections at 50 concurrent clients (their SYN retried after 1, 3, 7 s...).
# The kernel caps it at net.core.somaxconn (4096 on current Linux).
LISTEN_BACKLOG = 1024
# At most this many connections are served at once (a thread each); beyond, a new
# connection waits up to QUEUE_WAIT for one to end, then gets 503 with Retry-After.
MAX_CONNECTIONS = 128
QUEUE_WAIT = 2.0

# By name first (feed.json is a JSON Feed, other JSON is plain JSON), then by suffix.
# A fixed table rather than `mimetypes`: the system's mime database differs per machine.
_TYPES_BY_NAME = {"feed.json": "application/feed+json; charset=utf-8"}
_TYPES_BY_SUFFIX = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    # text/xsl is what the feeds' xml-stylesheet PI declares and what browsers expect.
    ".xsl": "text/xsl; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/vnd.microsoft.icon",
}
DEFAULT_TYPE = "application/octet-stream"

# Chromium (checked with 156) shows application/atom+xml and application/rss+xml as plain
# text and never applies their xml-stylesheet PI; served as application/xml the same bytes
# render through feed.*.xsl. So a browser navigation (its Accept lists text/html) gets
# application/xml, feed readers get the specific type. The XSL's own type does not
# matter to Chromium (text/xsl and application/xslt+xml both work); text/xsl is kept.
_BROWSER_FEED_TYPE = "application/xml; charset=utf-8"
_FEED_TYPES = frozenset({_TYPES_BY_SUFFIX[".atom"], _TYPES_BY_SUFFIX[".rss"]})

# No scripts anywhere. script-src 'self' is only there because browsers treat an XSLT
# stylesheet as a script load (CSP3): without it the feeds' feed.*.xsl would be blocked.
# Nothing here is JavaScript, and nosniff stops a non-JS type from running as a script.
CSP = ("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src https: data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", CSP),
    ("Referrer-Policy", "no-referrer"),
)
CACHE_CONTROL = "public, max-age=300"


def content_type(name: str) -> str:
    """The Content-Type header value for a file name."""
    if name in _TYPES_BY_NAME:
        return _TYPES_BY_NAME[name]
    return _TYPES_BY_SUFFIX.get(os.path.splitext(name)[1].lower(), DEFAULT_TYPE)


def _compressible(ctype: str) -> bool:
    mime = ctype.split(";", 1)[0].strip()
    return (mime.startswith("text/") or mime.endswith(("+xml", "+json"))
            or mime in ("application/json", "application/xml"))


def _qvalues(header: str | None) -> dict[str, float]:
    """``{token: q}`` of an Accept-style header (the highest q when a token repeats)."""
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        token, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        token = token.strip().lower()
        if token:
            out[token] = max(q, out.get(token, q))
    return out


def _is_browser_navigation(accept: str | None) -> bool:
    return _qvalues(accept).get("text/html", 0.0) > 0


def _accepts_gzip(header: str | None) -> bool:
    """Whether Accept-Encoding allows gzip (honours q=0 and ``*``)."""
    explicit: float | None = None
    star: float | None = None
    for token, q in _qvalues(header).items():
        if token in ("gzip", "x-gzip"):
            explicit = q if explicit is None else max(explicit, q)
        elif token == "*":
            star = q
    if explicit is not None:
        return explicit > 0
    return star is not None and star > 0


def _etag_matches(header: str, etag: str) -> bool:
    # If-None-Match uses the weak comparison: W/ prefixes are ignored (RFC 9110 13.1.2).
    if header.strip() == "*":
        return True
    tags = (t.strip() for t in header.split(","))
    return any((t[2:] if t.startswith("W/") else t) == etag for t in tags)


def _segments(raw_path: str) -> list[str] | None:
    """The decoded path segments of a request target, or None when it must not be served.

    Decodes percent-escapes once, per segment, so that an encoded ``/`` cannot make a
    new segment; anything still containing ``%`` after that (double encoding), a
    backslash, NUL or control character, an empty, ``.``/``..`` or dot-led segment is
    refused outright rather than normalised: no legitimate link looks like that.
    """
    path = raw_path.split("#", 1)[0].split("?", 1)[0]  # the query is ignored
    if not path.startswith("/"):
        return None
    if path == "/":
        return []
    out: list[str] = []
    for raw_seg in path[1:].split("/"):
        try:
            seg = unquote(raw_seg, errors="strict")
        except UnicodeDecodeError:
            return None
        if (not seg or seg.startswith(".") or any(c in seg for c in "/\\%")
                or any(ord(c) < 0x20 or ord(c) == 0x7F for c in seg)):
            return None
        out.append(seg)
    return out


def _escape_log(text: str) -> str:
    # The request line is attacker-controlled: keep it to one printable log line.
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


class _OutputServer(ThreadingHTTPServer):
    daemon_threads = True    # a slow client must not keep the process alive
    block_on_close = False   # server_close() must not wait for idle keep-alive connections
    request_queue_size = LISTEN_BACKLOG
    output_dir: Path
    max_connections = MAX_CONNECTIONS
    queue_wait = QUEUE_WAIT
    _slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=self.queue_wait):
            self._busy(request, client_address)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _busy(self, request: socket.socket, client_address: Any) -> None:
        """503 at once, from the accepting thread: a full server answers, never hangs."""
        log.warning("%s: %d connections already served: answered 503", client_address[0], self.max_connections)
        body = b"busy: try again in a moment\n"
        head = (f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            request.settimeout(1.0)
            request.sendall(head + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The base prints tracebacks to stderr; keep them in the log instead.
        log.exception("error while answering %s", client_address[0])

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class OutputHandler(BaseHTTPRequestHandler):
    """Serves the files of ``server.output_dir``; see the module docstring."""

    server: _OutputServer
    protocol_version = "HTTP/1.1"  # keep-alive: a browser fetches a feed and its XSL
    server_version = f"aggregator/{__version__}"
    sys_version = ""               # no Python version in the Server header
    timeout = IDLE_TIMEOUT
    # Headers and body go out as two writes; with Nagle on, the second waits for the
    # client's delayed ACK (~40 ms per response).
    disable_nagle_algorithm = True
    _log_size: int | str = "-"

    def version_string(self) -> str:
        return self.server_version  # the base appends sys_version after a space

    # -------------------------------------------------------------- methods

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler dispatches to do_<METHOD> and answers 501 when it is
        # missing; every method other than GET/HEAD gets 405 instead.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed\n",
                        extra=[("Allow", ", ".join(ALLOWED_METHODS))])

    # -------------------------------------------------------------- serving

    def _serve(self, *, head: bool) -> None:
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") \
                or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # an unread request body would desync keep-alive
        segments = _segments(self.path)
        if segments is None:
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n")
            return
        root = os.path.realpath(self.server.output_dir)
        if not os.path.isdir(root):
            self._send_text(HTTPStatus.NOT_FOUND, NOTHING_PUBLISHED)
            return
        found = self._open(root, segments or [INDEX_NAME])
        if found is None:
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n")
            return
        name, data, st = found
        self._send_file(name, data, st, head=head)

    def _open(self, root: str, segments: list[str]) -> tuple[str, bytes, os.stat_result] | None:
        """Read one regular file inside ``root``; None for anything that must look absent."""
        real = os.path.realpath(os.path.join(root, *segments))
        try:
            if os.path.commonpath([root, real]) != root or real == root:
                return None
        except ValueError:
            return None
        if any(part.startswith(".") for part in Path(os.path.relpath(real, root)).parts):
            return None  # a symlink to a dotfile is a dotfile
        try:
            # O_NOFOLLOW: the checked real path must not turn into a symlink before open;
            # O_NONBLOCK: a FIFO must not hang the thread (ignored for regular files).
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        # One descriptor for stat and content: a concurrent os.replace cannot mix versions.
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_SIZE:
                return None  # directories, FIFOs, devices: no listings, nothing to hang on
            chunks: list[bytes] = []
            size = 0
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_FILE_SIZE:
                    return None
        except OSError as e:
            log.warning("cannot read %s: %s", real, e)
            return None
        finally:
            os.close(fd)
        return os.path.basename(real), b"".join(chunks), st

    def _send_file(self, name: str, data: bytes, st: os.stat_result, *, head: bool) -> None:
        ctype = content_type(name)
        etag_core = hashlib.blake2b(data, digest_size=16).hexdigest()
        mtime = int(st.st_mtime)
        vary: list[str] = []
        if ctype in _FEED_TYPES:
            vary.append("Accept")
            if _is_browser_navigation(self.headers.get("Accept")):
                ctype = _BROWSER_FEED_TYPE
                etag_core += "-xml"  # another representation (type), another strong ETag
        headers: list[tuple[str, str]] = [
            ("Content-Type", ctype),
            ("Last-Modified", formatdate(mtime, usegmt=True)),
            ("Cache-Control", CACHE_CONTROL),
        ]
        body = data
        if _compressible(ctype):
            vary.append("Accept-Encoding")
            if _accepts_gzip(self.headers.get("Accept-Encoding")):
                # mtime=0: the same file always compresses to the same bytes.
                body = gzip.compress(data, compresslevel=6, mtime=0)
                headers.append(("Content-Encoding", "gzip"))
                etag_core += "-gzip"  # a different representation needs its own strong ETag
        if vary:
            headers.append(("Vary", ", ".join(vary)))
        etag = f'"{etag_core}"'
        headers.append(("ETag", etag))

        if self._not_modified(etag, mtime):
            self._log_size = 0
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for key, value in headers:
                if key != "Content-Type":
                    self.send_header(key, value)
            self._security_headers()
            self.end_headers()
            return
        self._log_size = len(body)
        self.send_response(HTTPStatus.OK)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self._security_headers()
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            # If-Modified-Since is ignored when If-None-Match is present (RFC 9110 13.1.3).
            return _etag_matches(inm, etag)
        ims = self.headers.get("If-Modified-Since")
        if not ims:
            return False
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError):
            return False  # an invalid date is ignored
        if since.tzinfo is None:
            return False
        return mtime <= since.timestamp()

    # -------------------------------------------------------------- plain responses

    def _security_headers(self) -> None:
        for key, value in SECURITY_HEADERS:
            self.send_header(key, value)

    def _send_text(self, status: int, text: str, *, extra: Iterable[tuple[str, str]] = ()) -> None:
        body = text.encode("utf-8")
        if status >= 400 and status != HTTPStatus.NOT_FOUND:
            self.close_connection = True  # e.g. a POST body we never read
        self._log_size = len(body)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # "nothing yet" must not be cached
        for key, value in extra:
            self.send_header(key, value)
        self._security_headers()
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Used by the base class for malformed requests (400, 414, 431, 505...): answer
        # in plain text with the same security headers, and close the connection.
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._send_text(code, f"{message or phrase}\n")

    # -------------------------------------------------------------- logging

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.info('%s "%s" %s %s', self.client_address[0], _escape_log(self.requestline),
                 int(code) if isinstance(code, int) else code, self._log_size)

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], _escape_log(format % args))

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.client_address[0], _escape_log(format % args))


def _listen_error(host: str, port: int, e: OSError) -> PublishError:
    reasons = {
        errno.EADDRINUSE: "address already in use",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
        errno.EADDRNOTAVAIL: "address not available on this machine",
    }
    if isinstance(e, socket.gaierror):
        reason = f"unknown host ({e.strerror or e})"
    else:
        reason = reasons.get(e.errno or 0) or (e.strerror or str(e)).lower()
    shown = f"[{host}]" if ":" in host else host
    return PublishError(f"cannot listen on {shown}:{port}: {reason}")


def make_server(output_dir: Path, host: str = "127.0.0.1", port: int = 0, *,
                max_connections: int = MAX_CONNECTIONS, queue_wait: float = QUEUE_WAIT) -> ThreadingHTTPServer:
    """A bound, listening server for ``output_dir`` (not yet serving: call serve_forever).

    ``port=0`` picks a free port; ``server.server_address`` tells which. Raises
    ``PublishError`` when the address cannot be bound (in use, no permission...).
    ``max_connections`` are served at once; another waits ``queue_wait`` s, then gets 503.
    """
    server_cls: type[_OutputServer] = _OutputServer
    if ":" in host:  # an IPv6 literal
        server_cls = type("_OutputServer6", (_OutputServer,), {"address_family": socket.AF_INET6})
    try:
        server = server_cls((host, port), OutputHandler)
    except OSError as e:
        raise _listen_error(host, port, e) from e
    server.output_dir = Path(output_dir)
    server.max_connections, server.queue_wait = max_connections, queue_wait
    server._slots = threading.BoundedSemaphore(max_connections)
    if not Path(output_dir).is_dir():
        log.warning("%s does not exist yet: answering 404 until something is published "
                    "(run `aggregator run --once`)", output_dir)
    return server


def serve_output(output_dir: Path, *, host: str, port: int,
                 stop: threading.Event | None = None, server: Any = None) -> None:
    """Serve ``output_dir`` until SIGINT/SIGTERM (or ``stop`` is set), then return.

    The server runs in a thread so that the main thread is free to wait for the signal:
    ``shutdown()`` called from the thread running ``serve_forever`` would deadlock.
    """
    server = server or make_server(output_dir, host, port)  # given: bound already (aggregator demo)
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    # A short poll interval: shutdown() waits up to one interval for the loop to notice.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="aggregator-serve", daemon=True)
    thread.start()
    bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    log.info("serving %s at http://%s:%s/ (Ctrl-C to stop)", output_dir, shown, bound_port)
    try:
        while not stop.wait(1.0):  # a timeout keeps the wait responsive to signals everywhere
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        log.info("stopped")
