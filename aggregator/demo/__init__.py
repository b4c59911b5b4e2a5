"""``aggregator demo``: the whole product offline, on a sample written for the project.

The sample (``sample/``: a Japanese blog's feed and five outlets' feeds, made by
``scripts/build_demo_sample.py``) is served on loopback by the package's plain
:class:`~aggregator.running.sampleserver.SampleServer`, one
full cycle runs into a temporary store with the sample's translation memory (no
network, no provider), and the output is written to a folder or served until Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from aggregator.config import Config, SourceConfig, parse_config
from aggregator.running.sampleserver import SampleServer

log = logging.getLogger(__name__)


def sample_dir() -> Path:
    return Path(str(resources.files("aggregator.demo") / "sample"))


@contextmanager
def sample_server(directory: Path | None = None) -> Iterator[str]:
    """Serve the sample's feeds on 127.0.0.1 (a free port); yields the base URL."""
    folder = directory or sample_dir()
    with SampleServer() as server:
        for f in sorted(folder.glob("*.xml")):
            server.add_file(f"/{f.name}", f)
        yield server.base_url + "/"


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML flow scalar


def demo_config_text(feeds_url: str, work_dir: Path, output_dir: Path, site_url: str) -> str:
    """The demo's config: the sample's sources on loopback, a store in ``work_dir``, the
    sample's translation memory and no provider (nothing leaves the machine)."""
    sources = json.loads((sample_dir() / "sources.json").read_text(encoding="utf-8"))
    lines = [
        f"storage: {{url: {_q('sqlite:///' + str(work_dir / 'demo.sqlite3'))}}}",
        f"output: {{dir: {_q(str(output_dir))}, title: \"aggregator demo: a defence blog and its sources\",",
        f"         link: {_q(site_url)}, base_url: {_q(site_url)}, include: cited}}",
        f"translation: {{target: en, memory: {_q(str(sample_dir() / 'memory.tmx'))}, providers: []}}",
        "retention: {articles: null}",
    ]
    lines.append("fetch: {allow_private_networks: true}  # the sample is served on 127.0.0.1")
    lines.append("sources:")
    for s in sources:
        has_site = "site" in SourceConfig.model_fields  # the site an aggregated feed carries
        extra = f", site: {_q(s['site'])}" if s.get("site") and has_site else ""
        extra += f", aliases: {json.dumps(s['aliases'], ensure_ascii=False)}" if s.get("aliases") else ""
        lines.append(f"  - {{id: {s['id']}, name: {_q(s['name'])}, url: {_q(feeds_url + s['file'])}, "
                     f"role: {s['role']}, language: {s['language']}{extra}}}")
    return "\n".join(lines) + "\n"


def run_demo_cycle(output_dir: Path, site_url: str, work_dir: Path) -> tuple[Config, Any]:
    """Serve the sample, run one full cycle into a store in ``work_dir``; returns the
    config and the cycle's report."""
    from aggregator.app import Aggregator

    with sample_server() as feeds_url:
        text = demo_config_text(feeds_url, work_dir, output_dir, site_url)
        path = work_dir / "aggregator.yaml"
        path.write_text(text, encoding="utf-8")
        config = parse_config(text, filename=str(path), path=path)
        report = Aggregator(config, config_path=path).run_once(fetch_all=True)
    return config, report


@contextmanager
def work_directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="aggregator-demo-") as d:
        yield Path(d)
