"""``aggregator serve`` under load: N concurrent clients, M requests in all.

    python bench/serve_load.py [--clients 50] [--requests 2000] [--keep-alive] URL

Each client opens a new connection per request (the hard case for a listen backlog and
a thread per connection) unless --keep-alive; every response must be 200 with the whole
body. Prints the failures and the latency distribution (ms) as one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit


def load(url: str, *, clients: int = 50, requests: int = 2000, keep_alive: bool = False,
         timeout: float = 30.0) -> dict[str, Any]:
    """Run the load; the figures as a dict (failures, statuses, latency percentiles)."""
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    latencies: list[float] = []
    failures: list[str] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(requests))
    start = threading.Barrier(clients)

    def client() -> None:
        conn: http.client.HTTPConnection | None = None
        start.wait()
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            t0 = time.monotonic()
            try:
                if conn is None or not keep_alive:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request("GET", path, headers={} if keep_alive else {"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200 and len(body) == int(resp.headers.get("Content-Length", len(body)))
                status = resp.status
                if not keep_alive or resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                ok, status = False, 0
                with lock:
                    failures.append(f"{type(e).__name__}: {e}")
                if conn is not None:
                    conn.close()
                    conn = None
            took = time.monotonic() - t0
            with lock:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1
                if status and not ok:
                    failures.append(f"HTTP {status}")
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else 0.0

    return {"clients": clients, "requests": len(latencies), "failures": len(failures),
            "failure_kinds": sorted(set(failures))[:5], "statuses": statuses, "seconds": round(wall, 2),
            "requests_per_second": round(len(latencies) / wall, 1) if wall else 0.0,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(latencies[-1] * 1000, 1) if latencies else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--keep-alive", action="store_true")
    args = ap.parse_args()
    print(json.dumps(load(args.url, clients=args.clients, requests=args.requests, keep_alive=args.keep_alive)))


if __name__ == "__main__":
    main()
