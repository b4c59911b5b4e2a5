"""What one conditional GET answered 304 costs the fetching process, by client.

    python bench/bench_fetch.py                    # 1,000 304s over 32 loopback hosts, best of 3
    python bench/bench_fetch.py --requests 3000 --repeat 5 --threads 8

The feeds are served by the tests' loopback FeedServer in a process of its own (so
its CPU is not counted), one server per loopback address (127.0.0.2, ...); every
request carries the feed's ETag, so every answer is a 304 with no body. Each client
visits the hosts in turn (as a cycle does) over kept-alive connections, and is timed
after one warm-up round that opens its connections. Printed per client: CPU of this
process per request (user + system, all threads) and the wall time of the round.

Clients: ``fetch()`` (aggregator's, with its client from ``make_client``), a plain
``httpx.Client``, httpcore's ``ConnectionPool`` used directly, and the stdlib's
``http.client`` with one connection per host (no checks at all: the floor).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

BODY = b"<rss version='2.0'><channel><title>t</title>" + b"<item><title>x</title></item>" * 50 + b"</channel></rss>"
ETAG = '"' + hashlib.sha1(BODY).hexdigest() + '"'


def serve(hosts: int, feeds: int) -> None:
    """The server process: prints the feeds' URLs as one JSON line, stops at end of input."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serve_feeds import HostFeedServer

    servers = [HostFeedServer(f"127.0.{2 + i // 250}.{2 + i % 250}") for i in range(hosts)]
    urls = [servers[i % hosts].add(f"/f{i}.xml", BODY) for i in range(feeds)]
    for s in servers:
        s.start()
    print(json.dumps(urls), flush=True)
    sys.stdin.read()
    for s in servers:
        s.stop()


Get = Callable[[str], int]


def aggregator_fetch() -> tuple[Get, Callable[[], None]]:
    from aggregator.sources.fetch import fetch, make_client

    client = make_client(connect_timeout=10, read_timeout=30, max_connections=8)

    def get(url: str) -> int:
        return fetch(client, url, etag=ETAG, max_bytes=10**7, total_timeout=60, allow_private=True).status

    return get, client.close


def plain_httpx() -> tuple[Get, Callable[[], None]]:
    import httpx

    client = httpx.Client(headers={"Accept-Encoding": "gzip, deflate"}, trust_env=False)

    def get(url: str) -> int:
        r = client.get(url, headers={"If-None-Match": ETAG})
        return r.status_code

    return get, client.close


def plain_httpcore() -> tuple[Get, Callable[[], None]]:
    import httpcore

    pool = httpcore.ConnectionPool(max_connections=100, max_keepalive_connections=100)
    headers = [(b"Host", b""), (b"Accept-Encoding", b"gzip, deflate"), (b"If-None-Match", ETAG.encode())]

    def get(url: str) -> int:
        u = urlsplit(url)
        headers[0] = (b"Host", u.netloc.encode())
        r = pool.request("GET", url, headers=headers)
        return r.status

    return get, pool.close


def httpcore_per_origin() -> tuple[Get, Callable[[], None]]:
    import httpcore

    pools: dict[str, httpcore.ConnectionPool] = {}
    etag = ETAG.encode()

    def get(url: str) -> int:
        u = urlsplit(url)
        pool = pools.get(u.netloc)
        if pool is None:
            pool = pools[u.netloc] = httpcore.ConnectionPool(max_connections=8, max_keepalive_connections=8)
        r = pool.handle_request(httpcore.Request(
            b"GET", httpcore.URL(scheme=b"http", host=(u.hostname or "").encode(), port=u.port,
                                 target=u.path.encode()),
            headers=[(b"Host", u.netloc.encode()), (b"Accept-Encoding", b"gzip, deflate"),
                     (b"If-None-Match", etag)]))
        r.read()
        r.close()
        return r.status

    def close() -> None:
        for p in pools.values():
            p.close()

    return get, close


def stdlib() -> tuple[Get, Callable[[], None]]:
    conns: dict[tuple[str, int | None], http.client.HTTPConnection] = {}
    lock = threading.Lock()
    local = threading.local()

    def get(url: str) -> int:
        u = urlsplit(url)
        key = (u.hostname or "", u.port)
        # One connection per host and thread (threads share hosts in the threaded run).
        mine: dict[tuple[str, int | None], http.client.HTTPConnection] = getattr(local, "conns", None) or {}
        local.conns = mine
        conn = mine.get(key)
        if conn is None:
            conn = mine[key] = http.client.HTTPConnection(key[0], key[1], timeout=30)
            with lock:
                conns[(str(id(conn)), None)] = conn
        conn.request("GET", u.path, headers={"Accept-Encoding": "gzip, deflate", "If-None-Match": ETAG})
        r = conn.getresponse()
        r.read()
        return r.status

    def close() -> None:
        for c in conns.values():
            c.close()

    return get, close


CLIENTS: dict[str, Callable[[], tuple[Get, Callable[[], None]]]] = {
    "fetch()": aggregator_fetch, "httpx.Client": plain_httpx, "httpcore pool": plain_httpcore,
    "httpcore/origin": httpcore_per_origin,
    "http.client": stdlib,
}


def round_of(get: Get, urls: list[str], threads: int) -> tuple[float, float]:
    """(CPU s, wall s) of one request per URL."""
    c, t = time.process_time(), time.perf_counter()
    if threads <= 1:
        statuses = [get(u) for u in urls]
    else:
        with ThreadPoolExecutor(threads) as pool:
            statuses = list(pool.map(get, urls))
    cpu, wall = time.process_time() - c, time.perf_counter() - t
    bad = [s for s in statuses if s != 304]
    if bad:
        raise SystemExit(f"expected 304s, got {bad[:5]}")
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="requests in flight (1: one after another)")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated, of: " + ", ".join(CLIENTS))
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.hosts, args.requests)
        return
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--hosts", str(args.hosts),
                               "--requests", str(args.requests)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        urls: list[str] = json.loads(server.stdout.readline())
        # Host after host, as the cycle's round robin visits them.
        urls.sort(key=lambda u: int(urlsplit(u).path[2:-4]))
        print(f"{len(urls)} conditional GETs (304) over {args.hosts} loopback hosts, {args.threads} thread(s), "
              f"best and median of {args.repeat}; load average {os.getloadavg()[0]:.2f}")
        print(f"{'client':<16} {'CPU ms/request':>15} {'median':>8} {'wall s':>8}")
        for name in args.clients.split(","):
            get, close = CLIENTS[name]()
            try:
                round_of(get, urls[: args.hosts * 2], args.threads)  # opens the connections
                runs = [round_of(get, urls, args.threads) for _ in range(args.repeat)]
            finally:
                close()
            cpus = [c / len(urls) * 1000 for c, _ in runs]
            walls = [w for _, w in runs]
            print(f"{name:<16} {min(cpus):>15.3f} {statistics.median(cpus):>8.3f} {min(walls):>8.3f}", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
