"""HTTP fetching: a thin shell over httpx, plus the pure politeness policy.

Every request has connect, read and total time bounds and a size cap that also holds
after decompression; it is conditional when we have validators; redirects are
followed a few times and a permanent one is reported so the stored URL can move.
See docs/fetching.md for the policy and the reasons behind each cap.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import random
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpcore
import httpx

from aggregator import USER_AGENT
from aggregator.exceptions import FetchError, PrivateAddressError
from aggregator.models import FetchResult
from aggregator.urls import private_address_kind

ACCEPT = ("application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
          "application/xml;q=0.9, text/xml;q=0.9, application/feed+json;q=0.8, */*;q=0.5")
# Post pages (full text): HTML first.
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
MAX_REDIRECTS = 5
# However long a server asks us to wait (Retry-After, max-age, Expires), never longer:
# a bad header must not silence a source for a year.
MAX_SERVER_DELAY = timedelta(days=1)


# Origins whose idle keep-alive connections the client keeps open between requests. A
# cycle visits its hosts in turn (one queue per host, round robin), so a host's next
# source comes after every other host's: keeping only as many idle connections as there
# are requests in flight had always dropped that host's connection by then, and each
# conditional GET paid a TCP connect.
KEEPALIVE_ORIGINS = 64


class _Target(NamedTuple):
    """What a request to one URL needs, worked out once per URL (httpx's URL parsing:
    IDNA, percent-encoding, the default port dropped)."""

    origin: str  # scheme://host:port, the port always written out
    url: httpcore.URL
    host: bytes  # the Host header
    auth: bytes | None  # the Authorization header for credentials in the URL (user:password@)


@functools.lru_cache(maxsize=4096)  # a cycle asks for each source's URL several times
def _target(url: str) -> _Target:
    u = httpx.URL(url)
    if not u.host:
        raise ValueError("no host")
    port = u.port or (443 if u.scheme == "https" else 80)
    host = f"[{u.host}]" if ":" in u.host else u.host
    auth = None
    if u.username or u.password:  # as httpx's client did: Basic, from the URL's user part
        request = next(httpx.BasicAuth(u.username, u.password).auth_flow(httpx.Request("GET", u)))
        auth = request.headers["Authorization"].encode()
    return _Target(f"{u.scheme}://{host}:{port}",
                   httpcore.URL(scheme=u.raw_scheme, host=u.raw_host, port=u.port, target=u.raw_path), u.netloc,
                   auth)


class FetchClient:
    """The fetching client: at most ``max_connections`` requests in flight (another waits
    up to the pool timeout), kept-alive connections per origin (see :class:`_Connections`),
    httpcore's HTTP/1.1 over our network backend (deadline, private-address guard).
    Connections per host are bounded by :class:`HostLimiter`.

    Requests go to httpcore directly: httpx's ``Client`` cost about twice httpcore's own
    CPU for a conditional GET (building its Request and Headers models, cookies, URL
    re-parsing, the Response model), with no rule of ours in it. httpx is kept for what it
    does well and rarely: URL parsing (once per URL), redirect resolution, and the body of a
    200 (its decoders; see :func:`_body`). No cookie jar: a feed fetch neither keeps nor
    sends cookies, so sources on one site are not tied together by them."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, max_connections: int):
        self.timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout,
                                     pool=read_timeout + connect_timeout)
        self._extensions = {"timeout": self.timeout.as_dict()}
        self._ssl_context: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()
        backend = _DeadlineBackend()
        expiry = httpx.Limits().keepalive_expiry
        self._pools = _Connections(max_connections, lambda url: httpcore.HTTPConnection(
            origin=url.origin, ssl_context=self._tls() if url.scheme == b"https" else None,
            keepalive_expiry=expiry, network_backend=backend))
        # The headers in the order httpx sent them (Host first, then these).
        self._headers = [(b"Connection", b"keep-alive"), (b"User-Agent", USER_AGENT.encode()),
                         (b"Accept", ACCEPT.encode()), (b"Accept-Encoding", b"gzip, deflate")]

    def _tls(self) -> ssl.SSLContext:
        """The TLS context, made when the first https origin is asked for: loading the CA
        bundle takes 17 ms, which a cycle of plain-http sources (a local RSSHub) never needs."""
        with self._ssl_lock:
            if self._ssl_context is None:
                self._ssl_context = httpx.create_ssl_context(trust_env=False)
            return self._ssl_context

    def send(self, target: _Target, *, accept: str | None = None,
             conditional: list[tuple[bytes, bytes]] | None = None) -> httpcore.Response:
        """Send a GET; the response's headers are read, its body not (close it)."""
        headers = [(b"Host", target.host), *self._headers]
        if accept:
            headers[3] = (b"Accept", accept.encode())
        if conditional:
            headers += conditional
        if target.auth is not None:
            headers.append((b"Authorization", target.auth))
        return self._pools.handle_request(httpcore.Request(b"GET", target.url, headers=headers,
                                                           extensions=self._extensions))

    def close(self) -> None:
        self._pools.close()

    def __enter__(self) -> FetchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_client(*, connect_timeout: float, read_timeout: float, max_connections: int) -> FetchClient:
    """The fetching client (see :class:`FetchClient`)."""
    return FetchClient(connect_timeout=connect_timeout, read_timeout=read_timeout, max_connections=max_connections)


class _Connections:
    """Kept-alive connections per origin, behind one bound on the requests in flight
    (``limit``: until the response is closed). Each request is made by httpcore's
    connection (HTTP/1.1 over our network backend); which connection is decided here: an
    idle one of the request's origin that the server has not closed meanwhile and whose
    keep-alive time has not run out, else a new one. Idle connections are kept for the
    :data:`KEEPALIVE_ORIGINS` origins used last, at most ``limit`` per origin.

    httpcore's ``ConnectionPool`` did this with a queue of waiting requests and, at every
    request and at every response's end, a scan of the pool's connections that asked the
    kernel whether each idle one was readable (a system call, so a hand-over of the GIL
    between eight fetch threads), and a wrapper per response: a sixth of a warm cycle's
    fetching CPU (1,000 304s on eight threads, the two alternated). Here a connection is
    looked at once, when it is about to be reused."""

    def __init__(self, limit: int, make: Callable[[httpcore.URL], httpcore.HTTPConnection]):
        self._slots = threading.BoundedSemaphore(limit)
        self._limit = limit
        self._make = make
        self._lock = threading.Lock()
        # origin -> its idle connections, the origin asked for last at the end
        self._idle: OrderedDict[tuple[bytes, bytes, int | None], list[httpcore.HTTPConnection]] = OrderedDict()
        self._closed = False

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        wait = (request.extensions.get("timeout") or {}).get("pool")
        try:
            wait = _time_left(wait)
        except httpcore.TimeoutException:
            wait = 0
        if not self._slots.acquire(timeout=-1 if wait is None else wait):
            raise httpcore.PoolTimeout("no free connection")
        key = (request.url.scheme, request.url.host, request.url.port)
        conn: httpcore.HTTPConnection | None = None
        try:
            conn = self._reusable(key) or self._make(request.url)
            response: httpcore.Response = conn.handle_request(request)
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise
        response.stream = _Release(response.stream, lambda: self._done(key, conn))
        return response

    def _reusable(self, key: tuple[bytes, bytes, int | None]) -> httpcore.HTTPConnection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                conn = idle.pop()
            # Outside the lock: whether the server closed it is a system call.
            if conn.is_idle() and not conn.has_expired():
                return conn
            conn.close()

    def _done(self, key: tuple[bytes, bytes, int | None], conn: httpcore.HTTPConnection) -> None:
        """The response is closed: its connection is kept if it can serve another request."""
        closing = [conn]
        try:
            if conn.is_idle():
                with self._lock:
                    if not self._closed:
                        idle = self._idle.setdefault(key, [])
                        self._idle.move_to_end(key)
                        if len(idle) < self._limit:
                            idle.append(conn)
                            closing = []
                        while len(self._idle) > KEEPALIVE_ORIGINS:
                            closing += self._idle.popitem(last=False)[1]
            for c in closing:
                c.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for c in idle:
            c.close()


class _Release:
    """A response body that calls ``done`` once, when it is closed."""

    def __init__(self, inner: Any, done: Callable[[], None]):
        self._inner = inner
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            if hasattr(self._inner, "close"):
                self._inner.close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


# -- the total time limit ----------------------------------------------------------------
# httpx bounds each socket operation (connect, read, write), never a whole request
# (encode/httpx#1450): a server that sends a header line or a body byte every second
# keeps a request alive for ever. So every socket operation of a request is given at most
# the time left before that request's deadline. The deadline is per thread: the sync
# client does all of a request's I/O in the calling thread.

_deadline = threading.local()


def _time_left(timeout: float | None) -> float | None:
    due: tuple[Callable[[], float], float] | None = getattr(_deadline, "due", None)
    if due is None:
        return timeout
    clock, at = due
    left = at - clock()
    if left <= 0:
        raise httpcore.ReadTimeout("the total time limit is reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """httpcore's stream with the deadline. Reads and writes go to its socket directly,
    as httpcore's sync stream does, except that the socket's timeout is set only when it
    changes: httpcore sets it before every read and write, and each setting is a system
    call that gives up the GIL, which eight fetch threads then pass round (a third of
    the GIL hand-overs of a conditional GET)."""

    def __init__(self, inner: httpcore.NetworkStream, peer: str | None = None):
        self._inner = inner
        self._peer = peer
        self._sock: socket.socket = inner.get_extra_info("socket")
        self._timeout: float | None | bool = False  # not set yet

    def _set_timeout(self, timeout: float | None) -> None:
        if timeout != self._timeout:
            self._sock.settimeout(timeout)
            self._timeout = timeout

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        timeout = _time_left(timeout)
        try:
            self._set_timeout(timeout)
            return self._sock.recv(max_bytes)
        except TimeoutError as e:
            raise httpcore.ReadTimeout(e) from e
        except OSError as e:
            raise httpcore.ReadError(e) from e

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # A pooled keep-alive connection may be reused by a request that is not allowed
        # to reach its address (another source, another redirect hop): checked per request.
        if self._peer is not None:
            _check_address(self._peer)
        timeout = _time_left(timeout)
        try:
            while buffer:
                self._set_timeout(timeout)
                n = self._sock.send(buffer)
                buffer = buffer[n:]
        except TimeoutError as e:
            raise httpcore.WriteTimeout(e) from e
        except OSError as e:
            raise httpcore.WriteError(e) from e

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _time_left(timeout)), self._peer)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, with the deadline, bounded DNS and the private-address guard.

    The name is resolved here (in a thread, bounded by the connect timeout: the system
    resolver has no timeout of its own), each address is checked, and the socket is
    connected to that very address and checked again once connected: the address
    checked is the address used, so DNS rebinding cannot get round the guard."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        addresses = _resolve(host, port, _time_left(timeout))
        allowed = [a for a in addresses if _address_allowed(a)]
        if not allowed:
            _check_address(addresses[0])  # raises, naming the address
        last: Exception | None = None
        for address in allowed:
            try:
                stream = self._inner.connect_tcp(address, port, _time_left(timeout), local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
                continue
            peer = stream.get_extra_info("server_addr")
            peer_ip = str(peer[0]) if peer else address
            try:
                _check_address(peer_ip)
            except PrivateAddressError:
                stream.close()
                raise
            return _DeadlineStream(stream, peer_ip)
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# -- private networks ----------------------------------------------------------------------
# The policy of the request being made in this thread (the sync client does all of a
# request's I/O in the calling thread): whether private addresses are allowed for it.
_guard = threading.local()


def _address_allowed(address: str) -> bool:
    return bool(getattr(_guard, "allow", False)) or private_address_kind(address) is None


def _check_address(address: str) -> None:
    if not _address_allowed(address):
        raise PrivateAddressError(address, private_address_kind(address) or "private")


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """The addresses of ``host``, resolved within ``timeout``."""
    literal = host.strip("[]")
    try:
        return [str(ipaddress.ip_address(literal.split("%", 1)[0]))]
    except ValueError:
        pass
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["infos"] = socket.getaddrinfo(literal, port, type=socket.SOCK_STREAM)
        except OSError as e:
            box["error"] = e
        finally:
            done.set()

    # A daemon thread: a resolver stuck past the bound must not hold the process at exit.
    threading.Thread(target=work, name="resolve", daemon=True).start()
    if not done.wait(timeout):
        raise httpcore.ConnectTimeout(f"could not resolve {host} within {timeout:g} s")
    if "error" in box:
        e = box["error"]
        raise httpcore.ConnectError(f"cannot resolve {host}: {getattr(e, 'strerror', None) or e}")
    out = list(dict.fromkeys(str(info[4][0]) for info in box["infos"]))
    if not out:
        raise httpcore.ConnectError(f"cannot resolve {host}: no address")
    return out


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL (the port always written out)."""
    return _target(url).origin


class HostLimiter:
    """At most ``per_host`` requests in flight to one host, whatever the concurrency; and
    which origins did not answer lately (timed out or refused), so that their other
    sources are skipped instead of each costing a timeout.

    An origin stays "down" for ``down_for`` seconds (None: for the limiter's life, which
    for ``run --once`` is one cycle; the daemon, whose limiter lives as long as it does,
    gives its cycle length)."""

    def __init__(self, per_host: int, *, down_for: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.per_host = per_host
        self.down_for = down_for
        self.clock = clock
        self._lock = threading.Lock()
        self._sems: dict[str, threading.Semaphore] = {}
        self._down: dict[str, tuple[float, str]] = {}

    def __call__(self, url: str) -> threading.Semaphore:
        host = host_key(url)
        with self._lock:
            if host not in self._sems:
                self._sems[host] = threading.Semaphore(self.per_host)
            return self._sems[host]

    def mark_down(self, origin_: str, reason: str) -> None:
        with self._lock:
            self._down.setdefault(origin_, (self.clock(), reason))

    def down(self, origin_: str) -> str | None:
        """Why ``origin_`` is not to be asked again now, or None."""
        with self._lock:
            found = self._down.get(origin_)
            if found is None:
                return None
            if self.down_for is not None and self.clock() - found[0] > self.down_for:
                del self._down[origin_]
                return None
            return found[1]


@functools.lru_cache(maxsize=4096)
def host_key(url: str) -> str:
    """The host a URL's requests count against (politeness is per host, not per port)."""
    return (urlsplit(url).hostname or "").lower()


PRIVATE_HINT = ("set `allow_private_network: true` on the source if its own server is meant to be on your "
                "network (a local RSSHub, an intranet feed), or `fetch.allow_private_networks: true` for all")


def fetch(client: FetchClient, url: str, *, etag: str | None = None, last_modified: str | None = None,
          max_bytes: int, total_timeout: float, clock: Callable[[], float] = time.monotonic,
          allow_private: bool = False, private_origin: str | None = None,
          accept: str | None = None) -> FetchResult:
    """GET ``url``; raise :class:`FetchError` for anything but a usable 200 or a 304.

    ``total_timeout`` bounds the whole fetch, redirects, headers and body included.
    ``accept`` replaces the feed types of the client's Accept header (a post's page).
    No request goes to a private-network address (after DNS, first request and every
    redirect hop) unless ``allow_private``, or the hop's origin is ``private_origin``
    (a source's own configured origin, which its ``allow_private_network`` allows)."""
    start = clock()
    deadline = start + total_timeout
    _deadline.due = (clock, deadline)
    try:
        return _fetch(client, url, etag, last_modified, max_bytes, total_timeout, clock, start, deadline,
                      allow_private, private_origin, accept)
    finally:
        _deadline.due = None
        _guard.allow = False


def _fetch(client: FetchClient, url: str, etag: str | None, last_modified: str | None, max_bytes: int,
           total_timeout: float, clock: Callable[[], float], start: float, deadline: float,
           allow_private: bool = False, private_origin: str | None = None,
           accept: str | None = None) -> FetchResult:
    # Validators are sent as they were read: ASCII, or UTF-8 (how a non-ASCII one was most
    # likely decoded; one that was Latin-1 no longer matches, and the server answers 200).
    conditional = []
    if etag:
        conditional.append((b"If-None-Match", etag.encode()))
    if last_modified:
        conditional.append((b"If-Modified-Since", last_modified.encode()))
    current = url
    permanent: str | None = None
    all_permanent = True
    visited = {url}
    for _ in range(MAX_REDIRECTS + 1):
        # feedparser and httpx would both read other schemes (file:, data:); a feed
        # server must not be able to send us there.
        if not _HTTP.match(current):
            raise FetchError(f"refusing to follow a redirect to a non-HTTP URL: {current}")
        try:
            target = _target(current)
        except (httpx.InvalidURL, ValueError) as e:
            raise FetchError(f"not a usable URL: {current} ({e})") from None
        here = target.origin
        _guard.allow = allow_private or here == private_origin
        answered = False  # a server that answers slowly is not one that does not answer
        raw: httpcore.Response | None = None
        try:
            raw = client.send(target, accept=accept, conditional=conditional)
            answered = True
            if raw.status == 304:
                # A 304 has no body; reading its end lets the connection go back to
                # the pool (closed unread, httpcore drops it: a TCP connect per request).
                raw.read()
                headers = _header_dict(raw.headers)
                return FetchResult(url=current, status=304, content=None, headers=headers,
                                   etag=headers.get("etag") or etag,
                                   last_modified=headers.get("last-modified") or last_modified,
                                   permanent_redirect=permanent, elapsed=clock() - start)
            # Anything else is rare enough for httpx's Response (its headers, its decoders).
            resp = httpx.Response(raw.status, headers=raw.headers, stream=_Body(raw.stream),
                                  extensions=raw.extensions)
            if resp.status_code in (301, 302, 303, 307, 308):
                location = resp.headers.get("location")
                if not location:
                    raise FetchError(f"HTTP {resp.status_code} redirect without a Location", status=resp.status_code)
                nxt = str(httpx.URL(current).join(location))
                if resp.status_code not in (301, 308):
                    all_permanent = False
                if nxt in visited:
                    raise FetchError(f"redirect loop: {current} -> {nxt}", status=resp.status_code)
                visited.add(nxt)
                current = nxt
                if all_permanent:
                    permanent = nxt
                continue
            if resp.status_code >= 400:
                raise FetchError(
                    f"HTTP {resp.status_code} {resp.reason_phrase}".strip(),
                    status=resp.status_code,
                    retry_after=parse_retry_after(resp.headers.get("retry-after"), datetime.now(UTC)),
                    permanent=resp.status_code == 410,
                )
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"body of {int(declared):,} bytes is over the {max_bytes:,}-byte cap",
                                 status=resp.status_code)
            body = bytearray()
            for chunk in resp.iter_bytes():  # decompressed: the cap holds after gzip too
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(f"body is over the {max_bytes:,}-byte cap (after decompression)",
                                     status=resp.status_code)
                if clock() > deadline:
                    raise FetchError(f"took longer than the {total_timeout:g} s total limit",
                                     status=resp.status_code)
            return FetchResult(url=current, status=resp.status_code, content=bytes(body),
                               headers=dict(resp.headers), etag=resp.headers.get("etag"),
                               last_modified=resp.headers.get("last-modified"),
                               permanent_redirect=permanent, elapsed=clock() - start)
        except PrivateAddressError as e:
            where = current if current == url else f"{current} (redirected from {url})"
            raise PrivateAddressError(e.address, e.kind, f"refused to fetch {where}: {e.address} is a {e.kind} "
                                      f"address (private network); {PRIVATE_HINT}") from None
        except FetchError:
            raise
        except httpcore.TimeoutException as e:
            silent = None if answered else here
            if clock() >= deadline:
                raise FetchError(f"took longer than the {total_timeout:g} s total limit", unreachable=silent) from None
            raise FetchError(_timeout_message(e, client.timeout), unreachable=silent) from None
        except httpx.DecodingError as e:
            raise FetchError(f"could not decode the response body: {e}") from None
        except httpcore.ConnectError as e:
            raise FetchError(f"could not connect: {e}" if str(e) else "could not connect", unreachable=here) from None
        except (httpcore.RemoteProtocolError, httpcore.ReadError) as e:
            raise FetchError(f"the connection broke off: {e}" if str(e) else
                             f"the connection broke off ({type(e).__name__})") from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, httpcore.ProxyError,
                httpx.HTTPError) as e:
            raise FetchError(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
        except (OSError, ValueError) as e:
            raise FetchError(f"{type(e).__name__}: {e}") from None
        finally:
            if raw is not None:
                raw.close()  # an unread body drops its connection, as it must
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


_HTTP = re.compile(r"^https?://", re.I)


class _Body(httpx.SyncByteStream):
    """httpcore's response body as httpx's Response reads it."""

    def __init__(self, inner: Any):  # httpcore types it sync-or-async; ours is the sync pool's
        self._inner: Iterable[bytes] = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Response headers as ``dict(httpx.Headers(raw))`` gives them: names in lower case,
    repeated ones joined with ", ", all decoded as ASCII, else UTF-8, else Latin-1."""
    for encoding in ("ascii", "utf-8", "iso-8859-1"):
        try:
            out: dict[str, str] = {}
            for name, value in raw:
                key, text = name.lower().decode(encoding), value.decode(encoding)
                out[key] = f"{out[key]}, {text}" if key in out else text
            return out
        except UnicodeDecodeError:
            continue
    raise AssertionError("Latin-1 decodes any byte")  # pragma: no cover


def _timeout_message(e: httpcore.TimeoutException, timeout: httpx.Timeout) -> str:
    if isinstance(e, httpcore.ConnectTimeout):
        return f"could not connect within {timeout.connect:g} s (connect timeout)"
    if isinstance(e, httpcore.PoolTimeout):
        return "waited too long for a free connection (pool timeout)"
    if isinstance(e, httpcore.WriteTimeout):
        return f"could not send the request within {timeout.write:g} s (write timeout)"
    return f"the server sent nothing for {timeout.read:g} s (read timeout)"


# -- policy (pure) -------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return max(0.0, (dt - now).total_seconds())


def server_freshness(headers: dict[str, str], now: datetime) -> timedelta | None:
    """How long the server says the document stays fresh (Cache-Control max-age, Expires)."""
    h = {k.lower(): v for k, v in headers.items()}
    cc = h.get("cache-control", "")
    m = re.search(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", cc)
    if m:
        return timedelta(seconds=int(m.group(1)))
    if "expires" in h:
        try:
            dt = email.utils.parsedate_to_datetime(h["expires"])
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return max(timedelta(0), dt - now)
        except (TypeError, ValueError, IndexError):
            return None
    return None


def next_fetch_after_success(now: datetime, interval: timedelta, headers: dict[str, str]) -> datetime:
    """Our interval, or longer when the server says the feed stays fresh longer (capped)."""
    fresh = server_freshness(headers, now)
    wait = interval
    if fresh is not None and fresh > wait:
        wait = min(fresh, MAX_SERVER_DELAY)
    return now + wait


def next_fetch_after_failure(now: datetime, interval: timedelta, failures: int, *,
                             retry_after: float | None, max_backoff: timedelta,
                             rng: random.Random) -> datetime:
    """Exponential backoff with jitter: interval × 2^(failures-1), ±25 %, capped;
    a server's Retry-After is honoured (itself capped)."""
    base = interval.total_seconds() * (2 ** max(0, min(failures - 1, 16)))
    base = min(base, max_backoff.total_seconds())
    wait = base * rng.uniform(0.75, 1.25)
    if retry_after is not None:
        wait = max(wait, min(retry_after, MAX_SERVER_DELAY.total_seconds()))
    return now + timedelta(seconds=wait)
