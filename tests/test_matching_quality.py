"""The quality bar on the development set, through ``aggregator eval-matching``
(the real pipeline over loopback)."""

from __future__ import annotations

import json
import subprocess

from conftest import DEV, aggregator_cmd


def test_dev_set_meets_the_bar() -> None:
    r = subprocess.run(aggregator_cmd("eval-matching", str(DEV), "--json"), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["overall"]["precision"] >= 0.98, res
    assert res["overall"]["recall"] >= 0.95, res
    for case in ("unsubscribed", "no-citation"):
        assert res["cases"][case]["fp"] == 0, res["errors"]
    assert res["posts"] == 40


def test_report_lists_errors_with_evidence() -> None:
    r = subprocess.run(aggregator_cmd("eval-matching", str(DEV)), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "overall" in r.stdout and "precision" in r.stdout
    for line in r.stdout.splitlines():
        if line.startswith(("FP ", "FN ")):
            assert "[" in line
