"""Shared fixtures. Paths to the shared data sets live here so tests name them once."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AGGREGATOR_SHARED", ROOT.parent / "shared"))
DEV = SHARED / "matchbench" / "dev"
DEV2 = SHARED / "matchbench" / "dev2"
REAL_FEEDS = SHARED / "fixtures" / "real-feeds"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if not DEV.is_dir():
        raise pytest.UsageError(f"the shared data sets are missing: {DEV} (set AGGREGATOR_SHARED)")


@pytest.fixture(scope="session")
def dev_gold() -> list[dict]:
    return [json.loads(l) for l in (DEV / "gold.jsonl").read_text(encoding="utf-8").splitlines() if l.strip()]


def aggregator_cmd(*args: str) -> list[str]:
    """The real CLI, as a user runs it."""
    return [sys.executable, "-m", "aggregator", *args]
