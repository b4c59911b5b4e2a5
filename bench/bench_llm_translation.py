"""Translation through an OpenAI-compatible model on the matchbench dev set: requests per
cycle against the number of texts, what a second run sends, and what a model that never
answers costs a cycle.

    python bench/bench_llm_translation.py [--timeout 3]

Serves the dev feeds and a loopback chat-completions server that answers as an ideal
model from the dev set's translation table (tests/openai_server.py), and runs the real
CLI (``aggregator run --once``, each run a new process) in a temporary directory:

  openai            the default batching (up to 40 texts, 6,000 characters per request)
  openai, 5/request max_texts_per_request: 5
  libre             a LibreTranslate-protocol server, one text per request, to compare
  hang -> openai    a first model that never answers, then a working one

For each: texts sent, requests, characters, tokens (the server's usage), the wall time of
the first run, and the requests of a second run (``--all``: every source fetched again).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import DEV, aggregator_cmd  # noqa: E402
from loopback import LibreTranslateServer  # noqa: E402
from openai_server import OpenAIServer  # noqa: E402
from test_translation_e2e import dev_feeds  # noqa: E402
from test_translation_openai_e2e import FOREIGN, write_config  # noqa: E402


def run(cfg: Path, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    r = subprocess.run(aggregator_cmd("run", "--once", "--config", str(cfg), *args), capture_output=True, text=True,
                       timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"aggregator run failed:\n{r.stderr[-2000:]}")
    return time.monotonic() - t0, (r.stdout.strip().splitlines() or [""])[-1]


def done(cfg: Path) -> int:
    out = subprocess.run(aggregator_cmd("status", "--json", "--config", str(cfg)), capture_output=True, text=True)
    return int(json.loads(out.stdout)["translation"]["done"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=3.0, help="translation.timeout in seconds (default 3)")
    args = ap.parse_args()
    table = DEV / "translations.jsonl"
    rows = []
    setups = [("openai", None), ("openai, 5/request", 5), ("libre", None), ("hang -> openai", None)]
    for name, per_request in setups:
        with tempfile.TemporaryDirectory() as tmp, dev_feeds() as feeds, \
                OpenAIServer.from_jsonl(table, FOREIGN) as llm, LibreTranslateServer.from_jsonl(table) as libre, \
                OpenAIServer(models=["dead"]) as dead:
            dead.fault = "hang"
            cfg = Path(tmp) / "aggregator.yaml"
            model = f"{{provider: openai, url: '{llm.url}', model: loopback-model"
            model += f", max_texts_per_request: {per_request}}}" if per_request else "}"
            providers = {"libre": [f"{{provider: libre, url: '{libre.url}'}}"],
                         "hang -> openai": [f"{{provider: openai, url: '{dead.url}', model: dead}}", model]
                         }.get(name, [model])
            write_config(cfg, feeds, *providers, timeout=args.timeout)
            seconds, summary = run(cfg)
            server = libre if name == "libre" else llm
            first = (len(server.texts), server.requests, server.characters)
            tokens = f"{llm.prompt_tokens:,} + {llm.completion_tokens:,}" if name != "libre" else "-"
            _, _ = run(cfg, "--all")
            again = server.requests - first[1]
            rows.append((name, *first, tokens, f"{seconds:.1f}", again, done(cfg), dead.requests))
    head = ("setup", "texts", "requests", "characters", "tokens (prompt + answer)", "first run s", "second run requests",
            "posts done", "requests to the dead model")
    print(f"dev set: {DEV}; translation.timeout {args.timeout:g} s")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
