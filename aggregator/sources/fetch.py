"""HTTP fetching: a thin shell over httpx, plus the pure politeness policy.

Every request has connect, read and total time bounds and a size cap that also holds
after decompression; it is conditional when we have validators; redirects are
followed a few times and a permanent one is reported so the stored URL can move.
See docs/fetching.md for the policy and the reasons behind each cap.
"""

from __future__ import annotations

import email.utils
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from aggregator import USER_AGENT, _compat
from aggregator.exceptions import FetchError
from aggregator.models import FetchResult

ACCEPT = ("application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
          "application/xml;q=0.9, text/xml;q=0.9, application/feed+json;q=0.8, */*;q=0.5")
# Post pages (full text): HTML first.
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
MAX_REDIRECTS = 5
# However long a server asks us to wait (Retry-After, max-age, Expires), never longer:
# a bad header must not silence a source for a year.
MAX_SERVER_DELAY = timedelta(days=1)


def make_client(*, connect_timeout: float, read_timeout: float, max_connections: int) -> httpx.Client:
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout,
                              pool=read_timeout + connect_timeout),
        limits=limits,
        transport=_compat.transport_with_backend(limits, _DeadlineBackend()),
        follow_redirects=False,
        trust_env=False,
    )


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
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _time_left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_tcp(host, port, _time_left(timeout), local_address,
                                                       socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, _time_left(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class HostLimiter:
    """At most ``per_host`` requests in flight to one host, whatever the concurrency."""

    def __init__(self, per_host: int):
        self.per_host = per_host
        self._lock = threading.Lock()
        self._sems: dict[str, threading.Semaphore] = {}

    def __call__(self, url: str) -> threading.Semaphore:
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            if host not in self._sems:
                self._sems[host] = threading.Semaphore(self.per_host)
            return self._sems[host]


def fetch(client: httpx.Client, url: str, *, etag: str | None = None, last_modified: str | None = None,
          max_bytes: int, total_timeout: float, clock: Callable[[], float] = time.monotonic,
          accept: str | None = None) -> FetchResult:
    """GET ``url``; raise :class:`FetchError` for anything but a usable 200 or a 304.

    ``total_timeout`` bounds the whole fetch, redirects, headers and body included.
    ``accept`` replaces the feed types of the client's Accept header (a post's page)."""
    start = clock()
    deadline = start + total_timeout
    _deadline.due = (clock, deadline)
    try:
        return _fetch(client, url, etag, last_modified, max_bytes, total_timeout, clock, start, deadline, accept)
    finally:
        _deadline.due = None


def _fetch(client: httpx.Client, url: str, etag: str | None, last_modified: str | None, max_bytes: int,
           total_timeout: float, clock: Callable[[], float], start: float, deadline: float,
           accept: str | None = None) -> FetchResult:
    headers = {"Accept": accept} if accept else {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    current = url
    permanent: str | None = None
    all_permanent = True
    visited = {url}
    for _ in range(MAX_REDIRECTS + 1):
        # feedparser and httpx would both read other schemes (file:, data:); a feed
        # server must not be able to send us there.
        if not re.match(r"^https?://", current, re.I):
            raise FetchError(f"refusing to follow a redirect to a non-HTTP URL: {current}")
        try:
            with client.stream("GET", current, headers=headers) as resp:
                if resp.status_code in (301, 302, 303, 307, 308):
                    location = resp.headers.get("location")
                    if not location:
                        raise FetchError(f"HTTP {resp.status_code} redirect without a Location", status=resp.status_code)  # noqa: E501
                    nxt = str(resp.url.join(location))
                    if resp.status_code not in (301, 308):
                        all_permanent = False
                    if nxt in visited:
                        raise FetchError(f"redirect loop: {current} -> {nxt}", status=resp.status_code)
                    visited.add(nxt)
                    current = nxt
                    if all_permanent:
                        permanent = nxt
                    continue
                if resp.status_code == 304:
                    return FetchResult(url=current, status=304, content=None, headers=dict(resp.headers),
                                       etag=resp.headers.get("etag") or etag,
                                       last_modified=resp.headers.get("last-modified") or last_modified,
                                       permanent_redirect=permanent, elapsed=clock() - start)
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
        except FetchError:
            raise
        except httpx.TimeoutException as e:
            if clock() >= deadline:
                raise FetchError(f"took longer than the {total_timeout:g} s total limit") from None
            raise FetchError(_timeout_message(e, client.timeout)) from None
        except httpx.DecodingError as e:
            raise FetchError(f"could not decode the response body: {e}") from None
        except httpx.ConnectError as e:
            raise FetchError(f"could not connect: {e}" if str(e) else "could not connect") from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise FetchError(f"the connection broke off: {e}" if str(e) else
                             f"the connection broke off ({type(e).__name__})") from None
        except httpx.HTTPError as e:
            raise FetchError(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
        except (OSError, ValueError) as e:
            raise FetchError(f"{type(e).__name__}: {e}") from None
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def _timeout_message(e: httpx.TimeoutException, timeout: httpx.Timeout) -> str:
    if isinstance(e, httpx.ConnectTimeout):
        return f"could not connect within {timeout.connect:g} s (connect timeout)"
    if isinstance(e, httpx.PoolTimeout):
        return "waited too long for a free connection (pool timeout)"
    if isinstance(e, httpx.WriteTimeout):
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
