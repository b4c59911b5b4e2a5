"""A bug of ours (an exception no stage expected) reaches a user as one line and exit 70,
never as a traceback, with any secret in its message masked."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aggregator import cli


def _boom(*_args: object, **_kwargs: object) -> object:
    raise RuntimeError("unexpected state talking to postgresql://feeds:hunter2@db.example:5432/agg\nsecond line")


@pytest.mark.parametrize("args", [["status"], ["run", "--once"], ["check-config"]])
def test_an_unexpected_exception_is_one_line_and_exit_70(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        args: list[str]) -> None:
    # Every place the CLI reads its config from (the cli package's modules import it).
    monkeypatch.setattr("aggregator.cli.base.load_config", _boom)
    monkeypatch.setattr("aggregator.cli.inspecting.load_config", _boom)
    monkeypatch.setattr("aggregator.config.load_config", _boom)
    result = CliRunner().invoke(cli.main, [*args, "--config", str(tmp_path / "aggregator.yaml")])
    assert result.exit_code == cli.EXIT_INTERNAL, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: internal error (RuntimeError: unexpected state")
    assert "bug in aggregator" in lines[0]
    assert "Traceback" not in result.output
    assert "hunter2" not in result.output
    assert "second line" not in result.output


def test_usage_errors_keep_clicks_own_exit_code() -> None:
    result = CliRunner().invoke(cli.main, ["no-such-command"])
    assert result.exit_code == 2
    assert "internal error" not in result.output
