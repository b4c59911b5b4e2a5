"""A plain loopback server for offline runs on sample data (``eval-matching``, the demo).

It serves files from a table of paths, and answers the LibreTranslate protocol
(``POST /translate``, ``GET /languages``) from a table of known translations, so that
the real fetcher and the real translation provider run unchanged without the internet.
No faults, no tricks: the fault servers the tests use live in ``tests/``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
_TYPES = {".xml": "application/xml", ".rss": "application/rss+xml", ".atom": "application/atom+xml",
          ".json": "application/feed+json", ".html": "text/html; charset=utf-8"}


def read_translations(path: Path) -> dict[tuple[str, str, str], str]:
    """(source, target, text) -> translation from JSON lines {source, target, text, translation}."""
    table: dict[tuple[str, str, str], str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            table[row["source"], row["target"], row["text"]] = row["translation"]
    return table


class SampleServer:
    """Files at paths, and LibreTranslate from a table, on 127.0.0.1 (ephemeral port)."""

    def __init__(self, translations: Mapping[tuple[str, str, str], str] | None = None) -> None:
        self.files: dict[str, Path] = {}
        self.translations = dict(translations or {})
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet: the CLI logs what it fetched
                pass

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/languages":
                    codes = sorted({c for s, t, _ in server.translations for c in (s, t)})
                    self._send(200, json.dumps([{"code": c, "name": c} for c in codes]).encode(),
                               "application/json")
                    return
                file = server.files.get(path)
                if file is None:
                    self._send(404, b"not found", "text/plain")
                    return
                self._send(200, file.read_bytes(), _TYPES.get(file.suffix, "application/octet-stream"))

            do_HEAD = do_GET

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                if body:
                    ctype = self.headers.get("Content-Type", "")
                    if "json" in ctype:
                        params.update({k: str(v) for k, v in json.loads(body).items()})
                    else:
                        params.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
                text = params.get("q", "")
                got = server.translations.get((params.get("source", ""), params.get("target", ""), text))
                if got is None:
                    self._send(400, json.dumps({"error": "unknown text"}).encode(), "application/json")
                else:
                    self._send(200, json.dumps({"translatedText": got}, ensure_ascii=False).encode(),
                               "application/json")

        self._httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._httpd.server_address[1]}"

    @property
    def translate_url(self) -> str:
        """What a ``libre`` provider's ``url`` is set to."""
        return self.base_url + "/"

    def add_file(self, path: str, file: Path) -> str:
        """Serve ``file`` at ``path``; returns its URL."""
        self.files[path] = file
        return self.base_url + path

    def __enter__(self) -> SampleServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
