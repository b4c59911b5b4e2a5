"""The command line behaves the same everywhere: --config, -v/-q, --log-file on every
command, before or after its name; documented exit codes; examples closing every --help."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from aggregator.cli import main

CONFIG = """\
storage: {url: 'sqlite:///%(dir)s/s.sqlite3'}
output: {dir: '%(dir)s/out', link: 'https://news.example.org/', base_url: 'https://news.example.org/feeds/'}
translation: {providers: []}
sources:
  - {id: blog, url: 'https://blog.example.jp/feed/', role: blog, language: ja}
  - {id: wire, url: 'https://wire.example/feed', role: outlet, aliases: [Wire]}
"""


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, (*prefix, name)))
    return out


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG % {"dir": tmp_path})
    return path


@pytest.mark.parametrize("command", [(), *_commands(main)], ids=lambda c: " ".join(c) or "aggregator")
def test_every_help_ends_with_examples(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    tail = result.output.rstrip().split("Examples:")
    assert len(tail) == 2, f"{command}: no Examples section at the end"
    lines = [line for line in tail[1].splitlines() if line.strip()]
    assert 2 <= len(lines) <= 3 and all(line.strip().startswith("aggregator") for line in lines)


@pytest.mark.parametrize("command", [c for c in _commands(main) if not isinstance(
    main.commands.get(c[0]), click.Group) or len(c) > 1], ids=" ".join)
def test_every_command_takes_the_common_options(command: tuple[str, ...]) -> None:
    cmd: click.Command = main
    for name in command:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
    assert {"--config", "-v", "-q", "--log-file"} <= opts, command


def test_global_options_before_the_command(config: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    result = CliRunner().invoke(main, ["--config", str(config), "-v", "--log-file", str(log), "check-config"])
    assert result.exit_code == 0, result.output
    assert f"{config}: valid" in result.output


def test_check_config_takes_config_as_well_as_a_path(config: Path) -> None:
    for args in (["check-config", "--config", str(config)], ["check-config", str(config)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and f"{config}: valid" in result.output, result.output


def test_explain_of_an_unknown_post_exits_1(config: Path) -> None:
    runner = CliRunner()
    # no store yet, then a store without that post: both "not found"
    result = runner.invoke(main, ["explain", "--config", str(config), "https://blog.example.jp/nope"])
    assert result.exit_code == 1, result.output
    from aggregator.config import load_config
    from aggregator.store import Store

    with Store(load_config(config).db_path):
        pass
    result = runner.invoke(main, ["-q", "--config", str(config), "explain", "https://blog.example.jp/nope"])
    assert result.exit_code == 1 and "no blog post" in result.output


def test_init_writes_the_example_with_the_two_addresses(tmp_path: Path) -> None:
    from aggregator.config import load_config

    path = tmp_path / "config" / "aggregator.yaml"
    args = ["init", "--config", str(path), "--link", "https://news.example.net/",
            "--base-url", "https://news.example.net/feeds"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    cfg = load_config(path)
    assert (cfg.output.link, cfg.output.base_url) == ("https://news.example.net/", "https://news.example.net/feeds/")
    assert {"grandfleet", "reuters"} <= {s.id for s in cfg.sources}
    assert "# the site this feed belongs to" in path.read_text(encoding="utf-8")  # comments kept
    # never overwrites unless asked; refuses what would not be a valid config
    assert CliRunner().invoke(main, args).exit_code == 1
    bad = CliRunner().invoke(main, [*args[:-4], "--link", "example", "--base-url", "x", "--force"])
    assert bad.exit_code == 1 and "output.link" in bad.output
    assert load_config(path).output.link == "https://news.example.net/"  # the old one is untouched


def test_init_without_a_terminal_needs_both_addresses(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--config", str(tmp_path / "c.yaml")], input="")
    assert result.exit_code == 2 and "--link" in result.output
