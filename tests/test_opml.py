"""Tests for aggregator.running.opml: OPML 2.0 export, and import merged into a commented YAML config."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from aggregator.config import Config, format_duration, load_config
from aggregator.exceptions import ConfigError
from aggregator.running.opml import NS, export_opml, import_opml, join_aliases, split_aliases

A = "{%s}" % NS
NOW = datetime(2024, 5, 19, 12, 0, tzinfo=UTC)
REPO_CONFIG = Path(__file__).resolve().parents[1] / "aggregator" / "example.yaml"

CONFIG_YAML = """\
# Test config: every comment line must survive an import.
output:
  title: Test <news> & more   # escaped in the OPML title

schedule:
  every: 30m

sources:
  # the blog
  - id: blog
    name: 軍事ニュース解説ブログ
    url: https://blog.example.jp/feed/
    role: blog
    language: ja
    every: 15m

  # outlets
  - id: politico
    name: POLITICO "Politics" <&>
    url: https://rss.politico.com/politics-news.xml
    role: outlet
    language: en
    aliases: [Politico, ポリティコ, "Smith, Jones | Co", 'back\\slash']

  - id: mystery
    url: http://mystery.example.org/rss
    role: outlet
    language: auto
# trailing comment
"""


def _config(tmp_path: Path, text: str = CONFIG_YAML, name: str = "aggregator.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _opml(tmp_path: Path, outlines: str, *, name: str = "feeds.opml", prolog: str = "") -> Path:
    path = tmp_path / name
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n{prolog}<opml version="2.0">'
                    f"<head><title>t</title></head><body>{outlines}</body></opml>", encoding="utf-8")
    return path


def _summary(cfg: Config) -> list[tuple[object, ...]]:
    return [(s.id, s.name, s.url, s.role, s.language, s.every, s.aliases) for s in cfg.sources]


def _lines_in_order(original: str, merged: str) -> bool:
    rest = iter(merged.splitlines())
    return all(any(line == m for m in rest) for line in original.splitlines())


# ------------------------------------------------------------------------------ export


def test_export_is_opml_2_with_our_attributes(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path))
    text = export_opml(cfg, now=NOW)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')

    root = etree.fromstring(text.encode("utf-8"))
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.nsmap["aggregator"] == NS
    assert root.findtext("head/title") == "Test <news> & more sources"
    assert root.findtext("head/dateCreated") == "Sun, 19 May 2024 12:00:00 GMT"  # RFC 822

    folders = root.findall("body/outline")
    assert [f.get("text") for f in folders] == ["Blog", "Outlets"]
    assert all(f.get("xmlUrl") is None for f in folders)
    blog = folders[0].findall("outline")
    assert len(blog) == 1
    b = blog[0]
    assert b.get("type") == "rss"
    assert b.get("text") == b.get("title") == "軍事ニュース解説ブログ"
    assert b.get("xmlUrl") == "https://blog.example.jp/feed/"
    assert b.get("language") == "ja"
    assert b.get("htmlUrl") is None  # unknown: omitted
    assert (b.get(A + "id"), b.get(A + "role"), b.get(A + "every")) == ("blog", "blog", "15m")
    assert b.get(A + "aliases") is None

    politico, mystery = folders[1].findall("outline")
    assert politico.get("text") == 'POLITICO "Politics" <&>'  # escaped by the serializer, read back intact
    assert split_aliases(politico.get(A + "aliases")) == ["Politico", "ポリティコ", "Smith, Jones | Co",
                                                            "back\\slash"]
    assert politico.get(A + "every") is None
    # no name: the id is the text; "auto" is no language code, so only our attribute carries it
    assert mystery.get("text") == "mystery"
    assert mystery.get("language") is None and mystery.get(A + "language") == "auto"


def test_export_leaves_out_an_empty_folder(tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, "sources:\n  - {id: a, url: 'https://a.example/', role: outlet}\n"))
    root = etree.fromstring(export_opml(cfg, now=NOW).encode())
    assert [f.get("text") for f in root.findall("body/outline")] == ["Outlets"]


def test_aliases_separator_round_trips() -> None:
    for aliases in (["a", "b"], ["x|y", "z\\", "p, q"], ["\\|"]):
        assert split_aliases(join_aliases(aliases)) == aliases
    assert format_duration(timedelta(minutes=15)) == "15m"
    assert format_duration(timedelta(seconds=90)) == "90s"
    assert format_duration(timedelta(days=1)) == "1d"


@pytest.mark.slow
def test_cli_export_prints_opml(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "aggregator", "sources", "export", "--config", str(cfg)],
                          capture_output=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0, proc.stderr.decode()
    root = etree.fromstring(proc.stdout)
    assert root.tag == "opml"
    assert [o.get(A + "id") for o in root.iter("outline") if o.get("xmlUrl")] == ["blog", "politico", "mystery"]


# ------------------------------------------------------------------------------ import


def test_round_trip_into_a_new_config(tmp_path: Path) -> None:
    original = load_config(_config(tmp_path))
    feeds = tmp_path / "out.opml"
    feeds.write_text(export_opml(original, now=NOW), encoding="utf-8")
    target = tmp_path / "sub" / "new.yaml"  # neither the file nor its folder exists yet

    added, skipped = import_opml(target, feeds)

    assert skipped == []
    assert added == [(s.id, s.url) for s in original.sources]
    text = target.read_text(encoding="utf-8")
    assert text.startswith("#")  # header comment
    assert _summary(load_config(target)) == _summary(original)
    # a second import of the same file changes nothing
    assert import_opml(target, feeds) == ([], [s.url for s in original.sources])
    assert target.read_text(encoding="utf-8") == text


def test_merge_keeps_comments_and_existing_sources_and_skips_duplicates(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    before = load_config(cfg_path)
    feeds = _opml(tmp_path, """
      <outline text="News">
        <outline text="Politico again" type="rss" xmlUrl="HTTPS://RSS.Politico.COM/politics-news.xml/"/>
        <outline text="Blog again" type="rss" xmlUrl="https://blog.example.jp/feed"/>
        <outline text="Mystery again" type="rss" xmlUrl="http://MYSTERY.example.org:80/rss/"/>
        <outline text="Defense News" type="rss" xmlUrl="https://www.defensenews.com/rss/" language="en-US"/>
        <outline text="Defense News twice" type="rss" xmlUrl="https://www.defensenews.com/rss"/>
      </outline>""")

    added, skipped = import_opml(cfg_path, feeds, language="fr")

    assert added == [("defense-news", "https://www.defensenews.com/rss/")]
    assert skipped == ["HTTPS://RSS.Politico.COM/politics-news.xml/", "https://blog.example.jp/feed",
                       "http://MYSTERY.example.org:80/rss/", "https://www.defensenews.com/rss"]
    merged = cfg_path.read_text(encoding="utf-8")
    assert _lines_in_order(CONFIG_YAML, merged)
    after = load_config(cfg_path)
    assert _summary(after)[:3] == _summary(before)
    new = after.source("defense-news")
    assert (new.name, new.role, new.language) == ("Defense News", "outlet", "en-US")


def test_merge_into_the_real_example_config_keeps_every_line(tmp_path: Path) -> None:
    original = REPO_CONFIG.read_text(encoding="utf-8")
    cfg_path = _config(tmp_path, original)
    feeds = _opml(tmp_path, '<outline text="Nikkei Asia" xmlUrl="https://asia.nikkei.com/rss/feed/nar"/>')
    assert import_opml(cfg_path, feeds) == ([("nikkei-asia", "https://asia.nikkei.com/rss/feed/nar")], [])
    merged = cfg_path.read_text(encoding="utf-8")
    assert merged.startswith(original.rstrip("\n"))  # appended after the last source, nothing moved
    assert load_config(cfg_path).sources[-1].id == "nikkei-asia"


@pytest.mark.parametrize("sources", ["sources: []\n", "sources:\n", "sources: [{id: a, url: 'https://a.example/', "
                                                                     "role: outlet}]\n"])
def test_merge_into_empty_or_flow_sources(tmp_path: Path, sources: str) -> None:
    text = "# keep me\noutput:\n  title: X  # and me\n" + sources
    cfg_path = _config(tmp_path, text)
    feeds = _opml(tmp_path, '<outline text="B" xmlUrl="https://b.example/feed"/>')
    added, _ = import_opml(cfg_path, feeds)
    assert added == [("b", "https://b.example/feed")]
    merged = cfg_path.read_text(encoding="utf-8")
    assert "# keep me" in merged and "# and me" in merged
    assert [s.id for s in load_config(cfg_path).sources][-1] == "b"


def test_merge_into_a_comment_only_file_keeps_the_comments(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path, "# my notes\n# more notes\n")
    import_opml(cfg_path, _opml(tmp_path, '<outline text="B" xmlUrl="https://b.example/feed"/>'))
    assert cfg_path.read_text(encoding="utf-8").startswith("# my notes\n# more notes\n")
    assert [s.id for s in load_config(cfg_path).sources] == ["b"]


def test_japanese_title_gets_a_host_based_id(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    feeds = _opml(tmp_path, """
      <outline text="ポリティコ" type="rss" xmlUrl="https://www.politico.com/rss/defense.xml"/>
      <outline text="読売新聞オンライン" type="rss" xmlUrl="https://www.yomiuri.co.jp/feed/" language="ja_JP"/>
      <outline text="NHKニュース" type="rss" xmlUrl="https://www3.nhk.or.jp/rss/news/cat0.xml"/>""")
    added, _ = import_opml(cfg_path, feeds)
    # "politico" is taken by the configured source, so the host slug gets -2
    assert [sid for sid, _ in added] == ["politico-2", "yomiuri", "nhk"]
    cfg = load_config(cfg_path)
    assert cfg.source("politico-2").name == "ポリティコ"
    assert cfg.source("yomiuri").language == "ja-JP"


def test_id_collisions_get_numbered(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    feeds = _opml(tmp_path, """
      <outline text="Politico" xmlUrl="https://eu.politico.example/feed"/>
      <outline text="POLITICO!" xmlUrl="https://pro.politico.example/feed"/>
      <outline text="Blog" xmlUrl="https://other-blog.example/feed"/>""")
    added, _ = import_opml(cfg_path, feeds)
    assert [sid for sid, _ in added] == ["politico-2", "politico-3", "blog-2"]
    assert len({s.id for s in load_config(cfg_path).sources}) == 6


def test_namespaced_attributes_win_over_defaults(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    feeds = _opml(tmp_path, f"""
      <outline xmlns:aggregator="{NS}" text="Other" xmlUrl="https://o.example/feed" language="de"
               aggregator:id="my-id" aggregator:role="blog" aggregator:language="ja"
               aggregator:every="2h" aggregator:aliases="A, B|C"/>
      <outline xmlns:aggregator="{NS}" text="Junk" xmlUrl="https://j.example/feed" language="de"
               aggregator:id="Not An Id" aggregator:role="boss" aggregator:every="soon"/>""")
    import_opml(cfg_path, feeds, role="outlet", language="en")
    cfg = load_config(cfg_path)
    s = cfg.source("my-id")
    assert (s.role, s.language, s.every, s.aliases) == ("blog", "ja", timedelta(hours=2), ("A, B", "C"))
    j = cfg.source("junk")  # invalid values fall back: slug, default role, outline language, no every
    assert (j.role, j.language, j.every) == ("outlet", "de", None)


def test_non_http_urls_are_skipped(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    feeds = _opml(tmp_path, """
      <outline text="ftp" xmlUrl="ftp://files.example/feed.xml"/>
      <outline text="file" xmlUrl="file:///etc/passwd"/>
      <outline text="js" xmlUrl="javascript:alert(1)"/>
      <outline text="empty" xmlUrl=""/>
      <outline text="ok" xmlUrl="http://ok.example/rss"/>""")
    added, skipped = import_opml(cfg_path, feeds)
    assert added == [("ok", "http://ok.example/rss")]
    assert skipped == ["ftp://files.example/feed.xml", "file:///etc/passwd", "javascript:alert(1)", ""]


def test_opml_strings_cannot_reach_environment_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    cfg_path = _config(tmp_path)
    feeds = _opml(tmp_path, '<outline text="Leak ${SECRET_TOKEN}" xmlUrl="https://x.example/${SECRET_TOKEN}"/>')
    import_opml(cfg_path, feeds)
    cfg = load_config(cfg_path)
    assert "hunter2" not in repr(_summary(cfg))
    assert cfg.sources[-1].url == "https://x.example/$%7BSECRET_TOKEN%7D"


# ---------------------------------------------------------------------- hostile input

BILLION_LAUGHS = ('<!DOCTYPE opml [<!ENTITY lol0 "lollollollollollollollollollol">'
                  + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)) + "]>\n")
PASSWD = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace") if Path("/etc/passwd").exists() else ""


@pytest.mark.parametrize("prolog,outlines", [
    (BILLION_LAUGHS, '<outline text="&lol9;" xmlUrl="https://bomb.example/feed"/>'),
    (BILLION_LAUGHS, '<outline text="x" xmlUrl="https://bomb.example/feed">&lol9;</outline>'),
    ('<!DOCTYPE opml [<!ENTITY small "ok">]>\n', '<outline text="&small;" xmlUrl="https://bomb.example/feed"/>'),
    ('<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n',
     '<outline text="x" xmlUrl="https://xxe.example/feed">&x;</outline>'),
    ('<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n',
     '<outline text="&x;" xmlUrl="https://xxe.example/feed"/>'),
    ('<!DOCTYPE opml [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n',
     '<outline text="p" xmlUrl="https://xxe.example/feed"/>'),
    ('<!DOCTYPE opml SYSTEM "file:///etc/passwd">\n', '<outline text="dtd" xmlUrl="https://xxe.example/feed"/>'),
])
def test_hostile_opml_does_not_expand(tmp_path: Path, prolog: str, outlines: str) -> None:
    cfg_path = _config(tmp_path)
    feeds = _opml(tmp_path, outlines, prolog=prolog)
    try:
        added, _ = import_opml(cfg_path, feeds)
    except ConfigError as e:
        assert "not OPML" in str(e)
        assert cfg_path.read_text(encoding="utf-8") == CONFIG_YAML
    else:
        assert all(sid in ("dtd", "p") for sid, _ in added)  # only documents without entity declarations
    text = cfg_path.read_text(encoding="utf-8")
    assert "lollol" not in text
    for line in PASSWD.splitlines()[:5]:
        assert line not in text


def test_hostile_opml_with_defusedxml(tmp_path: Path) -> None:
    feeds = _opml(tmp_path, '<outline text="&lol9;" xmlUrl="https://bomb.example/feed"/>', prolog=BILLION_LAUGHS)
    with pytest.raises(ConfigError, match="not OPML"):
        import_opml(_config(tmp_path), feeds)


@pytest.mark.parametrize("content,message", [
    ("<opml version='2.0'><body><outline text='x' xmlUrl='https://x/'></body>", "not OPML"),
    ("this is not xml at all", "not OPML"),
    ("", "not OPML"),
    ("<rss version='2.0'><channel/></rss>", "root element is <rss>"),
    ("<opml version='2.0'><head/></opml>", "no <body>"),
])
def test_malformed_opml_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    cfg_path = _config(tmp_path)
    feeds = tmp_path / "bad.opml"
    feeds.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        import_opml(cfg_path, feeds)
    assert str(info.value).startswith(f"{feeds}: ")
    assert cfg_path.read_text(encoding="utf-8") == CONFIG_YAML


def test_missing_opml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        import_opml(_config(tmp_path), tmp_path / "nope.opml")


def test_invalid_result_is_refused_and_nothing_written(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    feeds = _opml(tmp_path, '<outline text="B" xmlUrl="https://b.example/feed"/>')
    with pytest.raises(ConfigError, match="would make the config invalid") as info:
        import_opml(cfg_path, feeds, language="English please")
    assert "language" in str(info.value)
    assert cfg_path.read_text(encoding="utf-8") == CONFIG_YAML
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_invalid_existing_config_is_reported_with_its_own_lines(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path, CONFIG_YAML.replace("  every: 30m", "  every: 30m\n  evry: 1h"))
    feeds = _opml(tmp_path, '<outline text="B" xmlUrl="https://b.example/feed"/>')
    with pytest.raises(ConfigError, match="not valid before the import") as info:
        import_opml(cfg_path, feeds)
    assert f"{cfg_path}:7: schedule.evry" in str(info.value)


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    cfg_path = _config(tmp_path)
    stat = cfg_path.stat()
    feeds = _opml(tmp_path, '<outline text="B" xmlUrl="https://b.example/feed"/>')
    added, skipped = import_opml(cfg_path, feeds, dry_run=True)
    assert (added, skipped) == ([("b", "https://b.example/feed")], [])
    assert cfg_path.read_text(encoding="utf-8") == CONFIG_YAML
    assert cfg_path.stat().st_mtime_ns == stat.st_mtime_ns

    new_path = tmp_path / "none.yaml"
    assert import_opml(new_path, feeds, dry_run=True)[0] == [("b", "https://b.example/feed")]
    assert not new_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aggregator.yaml", "feeds.opml"]
