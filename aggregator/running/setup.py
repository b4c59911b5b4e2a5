"""``aggregator init``: a config from the shipped example, with the user's two addresses."""

from __future__ import annotations

import io
import os
import tempfile
from importlib import resources
from pathlib import Path

from aggregator.config import load_config
from aggregator.exceptions import AggregatorError, ConfigError


class InitError(AggregatorError):
    """The config could not be written as asked."""


def example_text() -> str:
    return (resources.files("aggregator") / "example.yaml").read_text(encoding="utf-8")


def configured_example(link: str, base_url: str) -> str:
    """The example with ``output.link`` and ``output.base_url`` set, comments kept."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    data = yaml.load(example_text())
    data["output"]["link"] = link
    data["output"]["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def write_config(path: Path, *, link: str, base_url: str) -> Path:
    """Write the configured example to ``path`` (atomically), after checking it."""
    from aggregator.config import parse_config

    text = configured_example(link.strip(), base_url.strip())
    try:
        parse_config(text, filename=str(path), path=path)
    except ConfigError as e:
        raise InitError(str(e)) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        raise InitError(f"cannot write {path}: {e.strerror or e}") from None
    load_config(path)  # what was written reads back
    return path
