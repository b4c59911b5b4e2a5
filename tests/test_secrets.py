"""Secrets from the environment (a feed password and token, a translator's API key) are
used for requests and never shown: not in logs, errors, the store's error columns or
``status``/``check-config``/``sources list`` output."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import quote, quote_plus

from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer

from aggregator.redaction import Redactor

SECRETS = {"FEED_PASSWORD": "hunter2-feed-pw", "FEED_TOKEN": "tok/9f8e+7d6c", "LT_KEY": "lt-key-5a4b3c"}


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}


def test_secrets_never_appear_in_logs_errors_or_status(tmp_path: Path) -> None:
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl", api_key="the-right-key") as libre:
        feeds.add_file("/blog.xml", DEV / "feeds" / "blog.xml")
        feeds.add_file("/new.xml", DEV / "feeds" / "politico.xml")
        feeds.fault("/moved.xml", "redirect", status=301, to="/new.xml?token=${FEED_TOKEN}".replace(
            "${FEED_TOKEN}", quote(SECRETS["FEED_TOKEN"], safe="")))
        private = feeds.url("/private.xml").replace("http://", "http://reader:${FEED_PASSWORD}@") + "?token=${FEED_TOKEN}"
        expanded = private.replace("${FEED_PASSWORD}", SECRETS["FEED_PASSWORD"]).replace(
            "${FEED_TOKEN}", quote(SECRETS["FEED_TOKEN"], safe=""))
        # a redirect back to itself: the error quotes the URL, password and token included
        feeds.fault("/private.xml", "redirect", status=302, to=expanded)
        cfg = tmp_path / "aggregator.yaml"
        cfg.write_text("\n".join([
            "storage: {url: 'sqlite:///data/store.sqlite3'}", "output: {dir: output}",
            "translation: {target: en, timeout: 3s, providers: [{provider: libre, url: '" + libre.url
            + "', api_key: '${LT_KEY}'}]}",
            "fetch: {allow_private_networks: true}",
            "sources:",
            f"  - {{id: blog, url: '{feeds.url('/blog.xml')}', role: blog, language: ja}}",
            f"  - {{id: private, url: '{private}', role: outlet}}",
            f"  - {{id: moved, url: '{feeds.url('/moved.xml')}?key=${{FEED_TOKEN}}', role: outlet}}",
        ]) + "\n")
        env = {**os.environ, **SECRETS}
        log = tmp_path / "aggregator.log"

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(aggregator_cmd(*args, "--config", str(cfg)) if args[0] != "check-config"
                                  else aggregator_cmd(*args, str(cfg)), capture_output=True, text=True,
                                  env=env, timeout=300)

        run = cli("run", "--once", "-vv", "--log-file", str(log))
        assert run.returncode == 0, run.stderr
        outputs = {"run stdout": run.stdout, "run stderr": run.stderr, "log file": log.read_text(),
                   "status": cli("status").stdout, "status --json": cli("status", "--json").stdout,
                   "check-config": cli("check-config").stdout, "sources list": cli("sources", "list").stdout}
        # the secrets were used: the requests carried them
        private_req = next(r for r in feeds.requests if r.path.startswith("/private.xml"))
        assert "Authorization" in private_req.headers
        assert quote(SECRETS["FEED_TOKEN"], safe="") in private_req.path or SECRETS["FEED_TOKEN"] in private_req.path
        assert libre.requests > 0

    db = sqlite3.connect(tmp_path / "data" / "store.sqlite3")
    outputs["stored errors"] = "\n".join(
        str(v) for row in db.execute("SELECT last_error, disabled FROM sources UNION ALL "
                                     "SELECT error, provider FROM entry_translations") for v in row)
    db.close()
    # what happened is still said, with the secret masked
    assert "redirect loop: http://reader:***@127.0.0.1" in outputs["run stderr"]
    assert "moved permanently to http://127.0.0.1" in outputs["run stderr"]
    assert "redirect loop" in outputs["status"] and "redirect loop" in outputs["stored errors"]
    assert "authorization failed" in outputs["stored errors"]
    leaks = {(name, where) for name, secret in SECRETS.items() for where, text in outputs.items()
             for form in _forms(secret) if form in text}
    assert leaks == set()


def test_the_redactor_masks_values_encodings_url_passwords_and_tokens() -> None:
    r = Redactor(["s3cr3t/+x", "en"])  # too short to mask: "en" would mask ordinary words
    assert r("key s3cr3t/+x and s3cr3t%2F%2Bx and s3cr3t%2F%2Bx") == "key *** and *** and ***"
    assert r("https://bob:pa55@feeds.example/x?api_key=abc&page=2") == "https://bob:***@feeds.example/x?api_key=***&page=2"
    assert r("lang en") == "lang en"
    assert r.obj({"a": ["x s3cr3t/+x"], "n": 3}) == {"a": ["x ***"], "n": 3}
