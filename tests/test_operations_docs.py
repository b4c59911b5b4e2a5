"""The systemd units and the cron line in docs/: their syntax, and that the
aggregator command lines in them are ones our CLI accepts."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from apscheduler.triggers.cron import CronTrigger
from click.testing import CliRunner
from conftest import ROOT

from aggregator.cli import main

DOCS = ROOT / "docs"
UNITS = ["aggregator.service", "aggregator-once.service", "aggregator-once.timer"]
INSTALLED = "/srv/aggregator/.venv/bin/aggregator"

# The keys our units use, per section (systemd.unit(5), .service(5), .exec(5), .kill(5),
# .resource-control(5), .timer(5)); a misspelt key would be silently ignored by systemd.
KNOWN = {
    "Unit": {"Description", "Documentation", "After", "Wants", "Requires", "Before"},
    "Service": {"Type", "User", "Group", "WorkingDirectory", "EnvironmentFile", "Environment", "ExecStartPre",
                "ExecStart", "ExecReload", "KillSignal", "TimeoutStopSec", "TimeoutStartSec", "Restart",
                "RestartSec", "RestartPreventExitStatus", "SuccessExitStatus", "NoNewPrivileges", "PrivateTmp",
                "PrivateDevices", "ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectControlGroups", "RestrictAddressFamilies", "ReadWritePaths"},
    "Timer": {"OnCalendar", "RandomizedDelaySec", "Persistent", "Unit", "OnBootSec", "OnUnitActiveSec"},
    "Install": {"WantedBy"},
}


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values]}} (keys may repeat, as ExecReload= does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            current = sections.setdefault(m.group(1), {})
            continue
        assert current is not None, f"{path.name}:{n}: key outside a section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z]+", key), f"{path.name}:{n}: not KEY=VALUE: {raw!r}"
        current.setdefault(key, []).append(value)
    return sections


def _accepts(argv: list[str]) -> None:
    """Our CLI parses ``argv`` (the words after the program), or this raises. With
    --help at the end, click parses every option (an unknown one is an error) and
    then prints the help instead of running the command."""
    r = CliRunner().invoke(main, [*argv, "--help"])
    if r.exit_code != 0:
        raise click.UsageError(r.output)


def _aggregator_args(command_line: str) -> list[str]:
    words = shlex.split(command_line)
    assert words[0].endswith("/aggregator"), command_line
    return words[1:]


def test_units_have_known_sections_and_keys_and_commands_our_cli_accepts() -> None:
    for name in UNITS:
        unit = parse_unit(DOCS / name)
        assert set(unit) <= set(KNOWN), name
        for section, keys in unit.items():
            assert set(keys) <= KNOWN[section], (name, set(keys) - KNOWN[section])
        assert unit["Unit"]["Description"]
    daemon = parse_unit(DOCS / "aggregator.service")["Service"]
    assert _aggregator_args(daemon["ExecStart"][0])[:1] == ["run"] and "--once" not in daemon["ExecStart"][0]
    assert daemon["ExecReload"][-1] == "/bin/kill -HUP $MAINPID"
    assert daemon["RestartPreventExitStatus"] == ["2 4"]  # the CLI's exit codes for config and lock
    once = parse_unit(DOCS / "aggregator-once.service")["Service"]
    assert once["Type"] == ["oneshot"] and "--once" in _aggregator_args(once["ExecStart"][0])
    assert parse_unit(DOCS / "aggregator-once.timer")["Timer"]["Unit"] == ["aggregator-once.service"]
    for svc in (daemon, once):
        for key in ("ExecStartPre", "ExecStart", "ExecReload"):
            for line in svc.get(key, []):
                if INSTALLED in line:
                    _accepts(_aggregator_args(line))


def test_exit_codes_in_the_unit_are_the_clis() -> None:
    from aggregator import cli

    assert (cli.EXIT_CONFIG, cli.EXIT_LOCKED) == (2, 4)


def test_systemd_analyze_verifies_the_units_where_systemd_is_installed(tmp_path: Path) -> None:
    """The parse above runs everywhere; systemd-analyze (Debian's systemd package,
    which .ci/run installs) checks the rest where it exists."""
    for name in UNITS:
        parse_unit(DOCS / name)
    tool = shutil.which("systemd-analyze")
    if tool is None:
        print("systemd-analyze not installed: units checked by the parser only")
        return
    exe = Path(sys.executable).with_name("aggregator")
    for name in UNITS:
        text = (DOCS / name).read_text(encoding="utf-8")
        # verify wants the executables to exist: point them at this environment's
        (tmp_path / name).write_text(text.replace(INSTALLED, str(exe if exe.exists() else sys.executable)),
                                     encoding="utf-8")
    r = subprocess.run([tool, "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)], capture_output=True,
                       text=True, timeout=120)
    problems = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    assert r.returncode == 0 and problems == [], problems
    # and it does complain about a misspelt key (so an empty answer above means something)
    (tmp_path / "bad.service").write_text("[Service]\nExecStart=/bin/true\nRestartt=always\n", encoding="utf-8")
    bad = subprocess.run([tool, "verify", "--man=no", str(tmp_path / "bad.service")], capture_output=True,
                         text=True, timeout=120)
    assert "Unknown key 'Restartt'" in bad.stdout + bad.stderr


def test_the_timer_calendar_is_every_15_minutes() -> None:
    tool = shutil.which("systemd-analyze")
    (spec,) = parse_unit(DOCS / "aggregator-once.timer")["Timer"]["OnCalendar"]
    assert spec == "*:0/15"
    if tool is not None:
        r = subprocess.run([tool, "calendar", spec], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "Normalized form: *-*-* *:00/15:00" in r.stdout


def cron_lines() -> list[str]:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    return [l.strip() for l in text.splitlines() if re.match(r"^\s{4}[*\d]", l) and "aggregator" in l]


def test_the_cron_line_has_five_valid_fields_and_a_command_our_cli_accepts() -> None:
    (line,) = cron_lines()
    fields = line.split(None, 5)
    assert len(fields) == 6, line
    trigger = CronTrigger.from_crontab(" ".join(fields[:5]))  # raises on a bad field
    assert str(trigger.fields[6]) == "*/15"  # minute
    command = fields[5]
    # cd DIR && .venv/bin/aggregator ARGS >/dev/null
    step = command.split("&&")[-1]
    words = shlex.split(step.replace(">/dev/null", ""))
    assert words[0] == ".venv/bin/aggregator"
    _accepts(words[1:])
    assert words[1:3] == ["run", "--once"]


def test_the_checks_above_can_fail(tmp_path: Path) -> None:
    with pytest.raises(click.UsageError):
        _accepts(["run", "--onc"])
    with pytest.raises(ValueError):
        CronTrigger.from_crontab("*/15 * * *")
    (tmp_path / "x.service").write_text("[Service]\nExecStart /bin/true\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="not KEY=VALUE"):
        parse_unit(tmp_path / "x.service")
