from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import ROOT, aggregator_cmd

from aggregator.config import load_config, parse_config, parse_duration, parse_size
from aggregator.exceptions import ConfigError

MINIMAL = """
sources:
  - id: blog
    url: https://blog.example.jp/feed/
    role: blog
    language: ja
"""


def test_minimal_config_gets_every_default(tmp_path: Path) -> None:
    p = tmp_path / "config" / "aggregator.yaml"
    p.parent.mkdir()
    p.write_text(MINIMAL)
    cfg = load_config(p)
    assert cfg.translation.target == "en"
    assert cfg.translation.timeout == timedelta(seconds=20)
    assert cfg.schedule.every == timedelta(minutes=30)
    assert cfg.output.include == "cited" and cfg.output.max_entries == 200
    # relative paths are relative to the config file's folder
    assert cfg.db_path == (tmp_path / "data" / "aggregator.sqlite3").resolve()
    assert cfg.output_dir == (tmp_path / "output").resolve()


def test_absolute_sqlite_path() -> None:
    cfg = parse_config("storage: {url: 'sqlite:////var/lib/agg/x.sqlite3'}\n" + MINIMAL)
    assert cfg.db_path == Path("/var/lib/agg/x.sqlite3")


def test_unknown_key_is_an_error_naming_file_line_and_key() -> None:
    text = MINIMAL + "    colour: blue\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text, filename="config/aggregator.yaml")
    assert e.value.errors == ["config/aggregator.yaml:7: sources[0].colour: unknown key (not one aggregator reads; check its spelling)"]


def test_every_error_is_reported_with_its_line() -> None:
    text = """output:
  include: everything
sources:
  - id: Blog!
    url: file:///etc/passwd
    role: blog
  - id: x
    url: https://x.example/feed
    role: outlet
    every: soon
"""
    with pytest.raises(ConfigError) as e:
        parse_config(text, filename="c.yaml")
    msgs = "\n".join(e.value.errors)
    assert "c.yaml:2: output.include:" in msgs
    assert "c.yaml:4: sources[0].id:" in msgs
    assert "c.yaml:5: sources[0].url: must be an http:// or https:// URL" in msgs
    assert "c.yaml:10: sources[1].every: 'soon' is not a duration" in msgs


def test_environment_variables_are_expanded() -> None:
    text = MINIMAL + """translation:
  providers:
    - provider: libre
      url: http://127.0.0.1:5000/
      api_key: ${LT_KEY}
"""
    cfg = parse_config(text, env={"LT_KEY": "s3cret"})
    assert cfg.translation.providers[0].api_key == "s3cret"


def test_unset_environment_variable_is_an_error_that_does_not_leak_values() -> None:
    text = MINIMAL + "translation:\n  providers:\n    - {provider: libre, url: 'http://h/', api_key: '${LT_KEY}'}\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text, filename="c.yaml", env={})
    assert e.value.errors[0] == "c.yaml:9: translation.providers[0].api_key: environment variable LT_KEY is not set"


def test_default_value_syntax_for_environment_variables() -> None:
    cfg = parse_config("output: {title: '${TITLE:-Daily digest}'}\n" + MINIMAL, env={})
    assert cfg.output.title == "Daily digest"


def test_duplicate_source_ids_are_rejected() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(MINIMAL + "  - {id: blog, url: 'https://b/', role: outlet}\n")


def test_sources_are_required() -> None:
    with pytest.raises(ConfigError, match="sources: required key is missing"):
        parse_config("output: {title: x}\n")


def test_yaml_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"^c.yaml:3: YAML syntax"):
        parse_config("sources:\n  - id: a\n  url: [\n", filename="c.yaml")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), (45, 45)])
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_sizes() -> None:
    assert parse_size("10MB") == 10_000_000 and parse_size("1KiB") == 1024 and parse_size(5) == 5


def test_shipped_config_is_valid_and_has_the_real_sources() -> None:
    cfg = load_config(ROOT / "aggregator" / "example.yaml")
    ids = {s.id for s in cfg.sources}
    assert {"grandfleet", "politico", "brusselssignal", "reuters", "kyivindependent", "defensenews",
            "breakingdefense"} <= ids
    blog = cfg.source("grandfleet")
    assert blog.role == "blog" and blog.language == "ja"
    assert "ロイター" in cfg.source("reuters").aliases
    assert "ポリティコ" in cfg.source("politico").aliases


def test_check_config_command_exit_status(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL)
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL + "    colour: blue\n")
    ok = subprocess.run(aggregator_cmd("check-config", str(good)), capture_output=True, text=True)
    assert ok.returncode == 0 and "valid" in ok.stdout
    ko = subprocess.run(aggregator_cmd("check-config", str(bad)), capture_output=True, text=True)
    assert ko.returncode == 1
    assert f"{bad}:7: sources[0].colour: unknown key" in ko.stderr


def test_check_config_explains_a_valid_config(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("""output: {link: 'https://news.example.net/', base_url: 'https://news.example.net/feeds/'}
translation:
  providers: [{provider: libre, url: 'http://127.0.0.1:5000/'}]
retention: {articles: 60d}
sources:
  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja, every: 15m}
  - {id: reuters, name: Reuters, url: 'https://reuters.example/feed', role: outlet, aliases: [ロイター]}
""")
    r = subprocess.run(aggregator_cmd("check-config", str(p)), capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    out = r.stdout.splitlines()
    assert out[0] == f"{p}: valid"
    assert out[1] == "  sources: 2 (1 blog, 1 outlet)"
    assert out[2].split() == ["blog", "blog", "ja", "every", "15m", "https://blog.example.jp/feed/"]
    assert out[3].split() == ["reuters", "outlet", "en", "every", "30m", "https://reuters.example/feed"]
    assert "  translation: to en via libre (timeout 20s)" in out
    assert ("  retention: uncited outlet articles pruned after 60d; posts kept; store compacted at most every 7d"
            in out)


def test_check_config_warns_about_likely_mistakes_with_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("""translation: {providers: []}
sources:
  - id: reuters
    url: https://www.reuters.example/feed/
    role: outlet
  - id: reuters2
    url: http://reuters.example/feed
    role: outlet
    every: 1m
""")
    r = subprocess.run(aggregator_cmd("check-config", str(p)), capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == f"{p}: valid, 5 warnings"
    warnings = r.stderr.splitlines()
    assert warnings == [
        f"warning: {p}:2: sources: no source has role blog: nothing will be matched, and the feed will hold "
        "outlet articles only",
        f"warning: {p}:7: sources[1].url: same feed as sources[0] (reuters): it would be fetched twice and its "
        "entries stored twice",
        f"warning: {p}:9: sources[1].every: reuters2 is fetched every 1m: more often than every 5m is impolite to "
        "most publishers",
        f"warning: {p}:1: output.link: still the example https://example.org/: set your own before the first run "
        "(entry ids are tag: URIs made from it and never change once published)",
        f"warning: {p}:1: output.base_url: still the example https://example.org/feeds/: set your own before the "
        "first run (the feeds' self links point there)",
    ]
    strict = subprocess.run(aggregator_cmd("check-config", "--strict", str(p)), capture_output=True, text=True)
    assert strict.returncode == 1


def test_check_config_warns_about_an_outlet_a_foreign_language_blog_cannot_name(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(MINIMAL + """  - id: politico
    url: https://politico.example/feed
    role: outlet
translation: {providers: []}
""")
    r = subprocess.run(aggregator_cmd("check-config", str(p)), capture_output=True, text=True)
    assert r.returncode == 0
    assert (f"warning: {p}:7: sources[1]: outlet politico has no aliases: a blog in ja that names it in its own "
            "script (as ロイター names Reuters) will only be understood when it writes 'politico'; add aliases: [...]"
            in r.stderr)
    assert f"warning: {p}:10: translation.providers: no provider: entries not in en will be published untranslated" \
        in r.stderr


def test_check_config_counts_the_errors_of_an_invalid_config(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("sources:\n  - id: Bad!\n    url: ftp://x/\n    role: blog\n")
    r = subprocess.run(aggregator_cmd("check-config", str(p)), capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [f"{p}:2: sources[0].id: String should match pattern '^[a-z0-9_-]+$'",
                                     f"{p}:3: sources[0].url: must be an http:// or https:// URL",
                                     f"{p}: 2 errors, not valid"]


FULL = """
# comments, anchors, merge keys, block scalars, ${VAR}: what the round-trip loader sees
storage: {url: 'sqlite:///data/a.sqlite3'}
output:
  title: "Merged ${FEED_TITLE:-feed}"
  max_entries: 1_000
translation:
  target: en
  providers: [{provider: libre, url: 'http://lt.example/', api_key: '${LT_KEY}'}]
sources:
  - id: blog
    url: https://blog.example.jp/feed/
    role: blog
    language: ja
  - &outlet
    id: reuters
    url: https://reuters.example/feed  # a comment
    role: outlet
    language: en
    every: 2h
    aliases: [ロイター, "Reuters"]
  - {<<: *outlet, id: politico, url: 'https://politico.example/rss', every: 45m, aliases: []}
  - name: |
      A block
      scalar
    <<: *outlet
    id: ap
    url: https://ap.example/rss
"""


def test_the_fast_readings_resolver_types_every_scalar_as_ruamels_own_does() -> None:
    """OneVersionResolver asks for the YAML version once per document instead of per
    scalar: the types it gives are ruamel's, YAML 1.2's (yes/no/on stay strings)."""
    from ruamel.yaml import YAML

    from aggregator.yamltree import OneVersionResolver

    text = ("a: yes\nb: no\nc: on\nd: 0o17\ne: 017\nf: 1_000\ng: .inf\nh: ~\ni: 2024-01-01\nj: 1.5e3\n"
            "k: null\nl: True\nm: 0x1F\nn: '12'\no: 12:30\np: -.5\nq: [1, two, 3.0, false]\n")
    ours = YAML(typ="safe", pure=False)
    ours.Resolver = OneVersionResolver
    theirs = YAML(typ="safe", pure=False).load(text)
    assert ours.load(text) == theirs
    assert theirs["a"] == "yes" and theirs["d"] == 15 and theirs["h"] is None and theirs["q"][3] is False


def test_the_fast_reading_gives_what_the_round_trip_reading_gives() -> None:
    """A valid config is read through ruamel's C loader; anything else falls back to the
    round-trip loader, which knows every node's line. Both must make the same Config."""
    from aggregator.config import _parse_fast, _parse_with_lines

    text = FULL
    env = {"LT_KEY": "k1"}
    fast = _parse_fast(text, None, env)
    assert fast is not None, "a valid config takes the fast path"
    slow = _parse_with_lines(text, "c.yaml", None, env)
    assert fast.model_dump() == slow.model_dump()
    assert fast._env_values == slow._env_values == (("translation.providers[0].api_key", "k1"),)
    assert fast.output.max_entries == 1000 and fast.source("politico").every == timedelta(minutes=45)
    # an error is not reported by the fast path: the round trip reads it again, with its line
    assert _parse_fast(text, None, {}) is None
    with pytest.raises(ConfigError) as e:
        parse_config(text, filename="c.yaml", env={})
    assert e.value.errors == ["c.yaml:9: translation.providers[0].api_key: environment variable LT_KEY is not set"]


def test_a_config_read_again_comes_from_the_cache_keyed_by_its_text(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The parsed YAML is kept (configcache): the same text gives the same Config without
    being parsed again, ${VAR}s are expanded from the environment of each run, and an edit
    that keeps the file's size and time stamps is read anew."""
    import os

    import aggregator.config as config_module
    from aggregator import configcache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LT_KEY", "k1")
    p = tmp_path / "aggregator.yaml"
    p.write_text(FULL, encoding="utf-8")
    first = load_config(p)
    kept = list((tmp_path / "cache" / "aggregator").iterdir())
    assert len(kept) == 1 and (kept[0].parent.stat().st_mode & 0o777) == 0o700

    def no_parsing(*args: object, **kw: object) -> None:
        raise AssertionError("parsed again")

    with monkeypatch.context() as m:
        m.setattr(config_module, "YAML", no_parsing)
        again = load_config(p)
        assert again.model_dump() == first.model_dump() and again._env_values == first._env_values
        m.setenv("LT_KEY", "k2")
        assert load_config(p).translation.providers[0].api_key == "k2"
    assert first.translation.providers[0].api_key == "k1"

    stat = p.stat()
    p.write_text(FULL.replace("every: 45m", "every: 46m"), encoding="utf-8")
    os.utime(p, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert p.stat().st_size == stat.st_size and p.stat().st_mtime_ns == stat.st_mtime_ns
    assert load_config(p).source("politico").every == timedelta(minutes=46)

    # A damaged cache is no error (the file is parsed and kept again); nor is one that cannot be written.
    kept[0].write_text("{not json", encoding="utf-8")
    assert load_config(p).source("politico").every == timedelta(minutes=46)
    assert configcache.load(p, p.read_text(encoding="utf-8")) is not None
    monkeypatch.setenv("XDG_CACHE_HOME", str(p))  # a file, not a directory
    assert load_config(p).source("politico").every == timedelta(minutes=46)


def test_only_a_valid_config_whose_yaml_json_gives_back_exactly_is_kept(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator import configcache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    p = tmp_path / "aggregator.yaml"
    p.write_text(MINIMAL.replace("role: blog", "role: blogg"), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.errors[0].startswith(f"{p}:5: sources[0].role:")
    assert not (tmp_path / "cache").exists()
    tree = {"a": [1, 2.5, True, None, "x ${Y}"], "b": {"c": "ロイター"}}
    assert json.loads(configcache.as_json(tree) or "") == tree
    for bad in ({1: "int key"}, {"d": datetime(2024, 1, 1).date()}, {"f": float("nan")}, {"s": {1, 2}},
                {"t": (1, 2)}):
        assert configcache.as_json(bad) is None, bad
