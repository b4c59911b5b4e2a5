"""The benchmark's servers, in a process of their own (so that their CPU time is not
counted in the benchmarked tools'): the generated feeds on loopback FeedServers
(ETag / Last-Modified / 304, gzip) and an echoing LibreTranslate-protocol server.

    python bench/serve_feeds.py DIR [HOSTS]

DIR holds manifest.json (written by bench_cycle.py). The feeds are spread over HOSTS
loopback addresses (127.0.0.2, 127.0.0.3, ...; default 32), one server each, as real
feeds live on many hosts: aggregator fetches at most two feeds of one host at a time,
so one address for all of them would measure that politeness limit, not the tools.

Prints one JSON line with the servers' URLs, then obeys commands on standard input,
one a line: ``churn`` serves the changed versions of the churned feeds, ``reset`` the
first versions again; ``hits``
prints request counts (in all, conditional, distinct feeds, most requests of one feed). It stops at end of input.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# The loopback servers live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from loopback import RSS_TYPE, FeedServer, LibreTranslateServer, _HTTPServer, _norm  # noqa: E402


class _BoundTo(_HTTPServer):
    """The loopback server bound to another address of 127.0.0.0/8."""

    def server_bind(self) -> None:
        self.server_address = (self.app.host, 0)
        super().server_bind()


class HostFeedServer(FeedServer):
    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def _bound(self) -> Any:
        if self._httpd is None:
            self._httpd = _BoundTo(self)
        return self._httpd

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add(self, path: str, body: bytes, content_type: str = RSS_TYPE,
            headers: Any = None) -> str:
        url: str = super().add(path, body, content_type, headers)
        # The gzipped body and the ETag made now, before the command is answered, not at
        # the first request: the loopback server makes them once per version (gzip -9 of
        # the corpus is 2.3 s of CPU), and the tool whose cold cycle came first after a
        # start, a reset or a churn paid for them on the benchmark's two cores.
        resource = self._resources[_norm(path)]
        assert resource.etag and resource.gzipped
        return url


def main() -> None:
    root = Path(sys.argv[1])
    n_hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    servers = [HostFeedServer(f"127.0.{2 + i // 250}.{2 + i % 250}") for i in range(n_hosts)]
    where = {}
    for i, f in enumerate(manifest["feeds"]):
        where[f["id"]] = servers[i % n_hosts]
        where[f["id"]].add(f["path"], (root / f["file"]).read_bytes(), f["type"])
    for s in servers:
        s.start()
    try:
        with LibreTranslateServer(unknown="echo") as libre:
            urls = {f["id"]: where[f["id"]].url(f["path"]) for f in manifest["feeds"]}
            print(json.dumps({"feeds": urls, "libre": libre.url}), flush=True)
            for line in sys.stdin:
                cmd = line.strip()
                if cmd == "churn":
                    for f in manifest["feeds"]:
                        if f.get("churn_file"):
                            where[f["id"]].add(f["path"], (root / f["churn_file"]).read_bytes(), f["type"])
                    print(json.dumps({"ok": "churn"}), flush=True)
                elif cmd == "reset":  # the first versions again (a repeated run's cold cycle)
                    for f in manifest["feeds"]:
                        where[f["id"]].add(f["path"], (root / f["file"]).read_bytes(), f["type"])
                    print(json.dumps({"ok": "reset"}), flush=True)
                elif cmd == "hits":
                    reqs = [r for s in servers for r in s.requests]
                    per_feed = Counter((s.host, r.path) for s in servers for r in s.requests)
                    print(json.dumps({"requests": len(reqs),
                                      "conditional": sum(1 for r in reqs if "if-none-match" in r.headers),
                                      "distinct": len(per_feed), "max_per_feed": max(per_feed.values(), default=0)}),
                          flush=True)
                else:
                    print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
    finally:
        for s in servers:
            s.stop()


if __name__ == "__main__":
    main()
