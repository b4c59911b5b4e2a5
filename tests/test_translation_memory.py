"""translation.memory: human translations from a TMX 1.4 file, before the cache and
every provider (a loopback LibreTranslate-protocol server that would answer otherwise),
looked up by exact source text, reported as ``done by memory``."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from loopback import LibreTranslateServer
from test_translation_status import LEAD, SECOND, T0, TITLE, add_posts, post

from aggregator.config import load_config, parse_config
from aggregator.exceptions import ConfigError
from aggregator.publishing.publish import selection
from aggregator.running.translation import translate_stage
from aggregator.store import Store
from aggregator.translating.chain import build_translator, chain_signature
from aggregator.translating.memory import load_memory, memory_for

TMX = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4">
  <header creationtool="test" creationtoolversion="1" segtype="paragraph" o-tmf="none" adminlang="en"
          srclang="ja" datatype="plaintext"/>
  <body>
    <tu><tuv xml:lang="ja"><seg>{title}</seg></tuv><tuv xml:lang="en-GB"><seg>Senate passes the aid bill (human)</seg></tuv></tu>
    <tu><tuv xml:lang="ja"><seg>{lead}</seg></tuv><tuv xml:lang="en"><seg>Lead, by a person.</seg></tuv></tu>
    <tu><tuv xml:lang="ja"><seg>{second}</seg></tuv><tuv xml:lang="en"><seg>Second, by a person.</seg></tuv></tu>
    <tu><tuv xml:lang="ja"><seg>only japanese</seg></tuv></tu>
  </body>
</tmx>
"""


# The post's lead paragraph as the translate stage sends it (its link's text included).
LEAD_TEXT = f"{LEAD} ポリティコが報じた & 伝えた。"


def write_tmx(path: Path, **texts: str) -> Path:
    values = {"title": TITLE, "lead": LEAD_TEXT, "second": SECOND, **texts}
    path.write_text(TMX.format(**{k: html.escape(v) for k, v in values.items()}), encoding="utf-8")
    return path


def test_lookup_by_exact_source_text_any_regional_target(tmp_path: Path) -> None:
    m = load_memory(write_tmx(tmp_path / "m.tmx"))
    assert m.units == 3  # a unit with one language is no translation
    assert m.lookup(TITLE, "ja", "en") == "Senate passes the aid bill (human)"
    assert m.lookup(f"  {TITLE}\n", "auto", "en-US") == "Senate passes the aid bill (human)"
    assert m.lookup(TITLE + "。", "ja", "en") is None  # exact, not fuzzy
    assert m.lookup(TITLE, "ja", "de") is None


def test_unreadable_memory_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tmx"
    bad.write_text("<html>not tmx</html>", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a TMX file"):
        load_memory(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        memory_for(tmp_path / "missing.tmx")


def test_memory_wins_over_every_provider_and_reports_done_by_memory(tmp_path: Path) -> None:
    tmx = write_tmx(tmp_path / "memory.tmx")
    with LibreTranslateServer({}) as srv, Store(tmp_path / "s.sqlite3") as store:
        srv.unknown = "echo"  # the machine would answer everything
        (tmp_path / "c.yaml").write_text(
            f"storage: {{url: 'sqlite:///{tmp_path}/s.sqlite3'}}\n"
            f"output: {{dir: '{tmp_path}/out', include: blog}}\n"
            f"translation: {{target: en, memory: memory.tmx, providers: [{{provider: libre, url: '{srv.url}'}}]}}\n"
            "sources:\n  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}\n",
            encoding="utf-8")
        cfg = load_config(tmp_path / "c.yaml")
        assert cfg.memory_path == tmx  # relative to the config's folder
        add_posts(store, post())
        translator = build_translator(cfg.translation, store, now=lambda: T0, memory=memory_for(cfg.memory_path))
        assert translate_stage(store, cfg, selection(store, cfg), translator, now=lambda: T0) == (1, 0)
        assert srv.requests == 0  # nothing left the machine
        (row,) = store.entry_translations([e.id for e in selection(store, cfg)], "en").values()
        assert (row.status, row.provider, row.title) == ("done", "memory", "Senate passes the aid bill (human)")
        assert translator.stats.memory_hits == 3


def test_what_the_memory_lacks_goes_to_the_providers(tmp_path: Path) -> None:
    tmx = write_tmx(tmp_path / "memory.tmx", second="something else")
    with LibreTranslateServer({}) as srv, Store(tmp_path / "s.sqlite3") as store:
        srv.unknown = "echo"
        cfg = parse_config(
            f"storage: {{url: 'sqlite:///{tmp_path}/s.sqlite3'}}\noutput: {{dir: '{tmp_path}/out', include: blog}}\n"
            f"translation: {{target: en, memory: '{tmx}', providers: [{{provider: libre, url: '{srv.url}'}}]}}\n"
            "sources:\n  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}\n")
        add_posts(store, post())
        translator = build_translator(cfg.translation, store, now=lambda: T0, memory=memory_for(cfg.memory_path))
        assert translate_stage(store, cfg, selection(store, cfg), translator, now=lambda: T0) == (1, 0)
        assert srv.texts == [SECOND]  # only the text the memory has no translation for
        (row,) = store.entry_translations([e.id for e in selection(store, cfg)], "en").values()
        assert row.provider == "libre+memory"


def test_a_changed_memory_is_a_changed_translation_setup(tmp_path: Path) -> None:
    cfg = parse_config("sources:\n  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog}\n")
    a = load_memory(write_tmx(tmp_path / "a.tmx"))
    b = load_memory(write_tmx(tmp_path / "b.tmx", second="changed"))
    sigs = {chain_signature(cfg.translation), chain_signature(cfg.translation, a),
            chain_signature(cfg.translation, b)}
    assert len(sigs) == 3
