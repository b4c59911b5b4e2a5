"""The quality bar on the development set, through ``aggregator eval-matching``
(the real pipeline over loopback)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import DEV, DEV2, aggregator_cmd


def _eval(directory: Path, *extra: str) -> dict[str, Any]:
    r = subprocess.run(aggregator_cmd("eval-matching", str(directory), "--json", *extra), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    res: dict[str, Any] = json.loads(r.stdout)
    return res


@pytest.mark.parametrize("directory", [DEV, DEV2], ids=["dev", "dev2"])
def test_dev_sets_meet_the_bar(directory: Path) -> None:
    res = _eval(directory)
    assert res["overall"]["precision"] >= 0.98, res
    assert res["overall"]["recall"] >= 0.95, res
    for case in ("unsubscribed", "no-citation", "named-not-cited"):
        assert res["cases"].get(case, {"fp": 0})["fp"] == 0, res["errors"]
    assert res["posts"] == 40


@pytest.mark.parametrize("directory", [DEV, DEV2], ids=["dev", "dev2"])
def test_without_any_translation_nothing_is_linked_wrongly(directory: Path) -> None:
    res = _eval(directory, "--no-translation")
    assert res["overall"]["precision"] >= 0.98, res["errors"]


def test_report_lists_errors_with_evidence() -> None:
    r = subprocess.run(aggregator_cmd("eval-matching", str(DEV)), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "overall" in r.stdout and "precision" in r.stdout
    for line in r.stdout.splitlines():
        if line.startswith(("FP ", "FN ")):
            assert "[" in line
