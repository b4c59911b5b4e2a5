"""The real CLI on a PostgreSQL store (storage.url: postgresql://…), on a throwaway cluster:
a cycle over the loopback dev feeds, status, explain, the published feed, the run lock,
store check/backup, and what a user sees when the server cannot be reached."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DEV, aggregator_cmd
from loopback import FeedServer, LibreTranslateServer
from test_pipeline_e2e import atom_entries, write_config

from aggregator.store.lock import PgLock

PASSWORD = "s3cret-Pg-pass"  # trust authentication ignores it; it must never be shown


def _with_password(url: str) -> str:
    """The plain ``postgresql://`` form users write (psycopg 3 is implied), with a password."""
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1).replace("postgresql+psycopg://", "postgresql://", 1)


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(aggregator_cmd(*args, "--config", str(config)), capture_output=True, text=True, timeout=300)


def _no_secret(r: subprocess.CompletedProcess[str]) -> None:
    assert PASSWORD not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture
def pg_site(tmp_path: Path, pg_url: str) -> Iterator[tuple[Path, str]]:
    url = _with_password(pg_url)
    with FeedServer() as feeds, LibreTranslateServer.from_jsonl(DEV / "translations.jsonl") as libre:
        for f in (DEV / "feeds").iterdir():
            feeds.add_file(f"/{f.name}", f)
        cfg = tmp_path / "aggregator.yaml"
        write_config(cfg, feeds, libre.url)
        text = cfg.read_text(encoding="utf-8").replace("sqlite:///data/store.sqlite3", url)
        cfg.write_text(text, encoding="utf-8")
        yield cfg, url


def test_a_cycle_on_postgresql_publishes_status_and_explain_work(pg_site: tuple[Path, str], dev_gold: list[dict]) -> None:
    cfg, url = pg_site
    masked = url.replace(PASSWORD, "***")
    r = cli("check-config", config=cfg)
    assert r.returncode == 0, r.stderr
    assert f"store:   {masked}" in r.stdout
    _no_secret(r)

    r = cli("run", "--once", config=cfg)
    assert r.returncode == 0, r.stderr
    _no_secret(r)
    out = cfg.parent / "output"
    entries = atom_entries(out)
    assert len(entries) == 40 + 294
    gold = {g["link"]: set(g["cited"]) for g in dev_gold}
    wrong = [link for link, cited in gold.items()
             if {l.get("href") for l in entries[link].findall("{http://www.w3.org/2005/Atom}link[@rel='related']")}
             != cited]
    assert len(wrong) <= 1, wrong

    st = cli("status", "--json", config=cfg)
    assert st.returncode == 0, st.stderr
    _no_secret(st)
    data = json.loads(st.stdout)
    assert data["store"] == masked and data["store_exists"] is True
    assert data["entries"] == {"posts": 40, "articles": 294}
    assert data["store_bytes"] > 0 and data["running"] is None

    post = "https://blog.example.jp/us-related/house-gop-releases-ukraine-israel-aid-bills/"
    ex = cli("explain", post, config=cfg)
    assert ex.returncode == 0, ex.stderr
    assert "POLITICO" in ex.stdout
    _no_secret(ex)

    # A second cycle: every feed answers 304, nothing published changes, ids included.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = cli("run", "--once", "--all", config=cfg)
    assert r.returncode == 0, r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    ck = cli("store", "check", config=cfg)
    assert ck.returncode == 0, ck.stderr
    assert re.search(rf"^{re.escape(masked)}: ok \(schema \d+, [\d.]+ MB, 334 entries\)$", ck.stdout, re.M)
    _no_secret(ck)

    dest = cfg.parent / "backup.dump"
    bk = cli("store", "backup", str(dest), config=cfg)
    assert bk.returncode == 0, bk.stderr
    assert dest.stat().st_size > 10_000 and dest.read_bytes().startswith(b"PGDMP")
    _no_secret(bk)
    again = cli("store", "backup", str(dest), config=cfg)
    assert again.returncode == 3 and "already exists" in again.stderr


def test_a_second_run_on_a_postgresql_store_exits_4_naming_the_first(pg_site: tuple[Path, str]) -> None:
    cfg, url = pg_site
    with PgLock(url).acquire("aggregator run (daemon)"):
        r = cli("run", "--once", config=cfg)
        st = cli("status", "--json", config=cfg)
    assert r.returncode == 4, r.stderr
    assert re.search(r"another aggregator run is already working on postgresql://postgres:\*\*\*@127\.0\.0\.1:\d+/\S+"
                     r" \(pid \d+: aggregator run \(daemon\) since ", r.stderr)
    _no_secret(r)
    assert st.returncode == 0 and json.loads(st.stdout)["running"].startswith("pid ")
    PgLock(url).acquire().release()  # released with its connection: free again


def test_a_server_that_cannot_be_reached_is_one_line_and_exit_3(tmp_path: Path, pg_cluster) -> None:
    from pgcluster import free_port

    cfg = tmp_path / "aggregator.yaml"
    url = f"postgresql://agg:{PASSWORD}@127.0.0.1:{free_port()}/nowhere"
    cfg.write_text(f"storage: {{url: '{url}'}}\nsources:\n  - {{id: b, url: 'http://127.0.0.1:9/f', role: blog}}\n",
                   encoding="utf-8")
    for args in (["run", "--once"], ["status"], ["explain", "https://x.example/p"], ["store", "check"]):
        r = cli(*args, config=cfg)
        assert r.returncode == 3, (args, r.stdout, r.stderr)
        _no_secret(r)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: postgresql://agg:***@127.0.0.1:"), (args, lines)
        assert "connect" in lines[0].lower(), lines


def _config(tmp_path: Path, url: str):
    from aggregator.config import load_config

    cfg = tmp_path / "aggregator.yaml"
    cfg.write_text(f"storage: {{url: '{url}'}}\nsources:\n  - {{id: b, url: 'https://blog.example/f', role: blog}}\n",
                   encoding="utf-8")
    return load_config(cfg)


def test_a_postgresql_url_is_a_store_and_its_password_a_secret(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AGG_DB_PW", "from-the-env-pw")
    for url, password in ((f"postgresql://agg:{PASSWORD}@db.example:5432/news", PASSWORD),
                          ("postgresql+psycopg://agg:${AGG_DB_PW}@db.example/news?sslmode=require", "from-the-env-pw")):
        cfg = _config(tmp_path, url)
        assert cfg.is_postgres and password in cfg.secrets
        assert password not in cfg.store_name and ":***@db.example" in cfg.store_name
        assert cfg.store_location == url.replace("${AGG_DB_PW}", password)


@pytest.mark.parametrize(("url", "says"), [
    ("postgres://agg:pw@db/news", "for PostgreSQL write postgresql://"),
    ("postgresql+psycopg2://agg:pw@db/news", "for PostgreSQL write postgresql://"),
    ("postgresql://agg:pw@db.example", "needs a database name"),
    ("postgresql:///news", "needs a host"),
    ("mysql://agg@db/news", "use sqlite:///PATH"),
])
def test_a_storage_url_that_is_not_one_we_speak_is_a_config_error(tmp_path: Path, url: str, says: str) -> None:
    from aggregator.exceptions import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)) as e:
        _config(tmp_path, url)
    assert "pw@" not in str(e.value)
