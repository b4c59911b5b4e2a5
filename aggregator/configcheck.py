"""What ``check-config`` warns about: things in a valid config that are probably not
what its author meant (pure), and the same as ``file:line: key: message`` lines."""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML

from aggregator.config import Config, format_duration
from aggregator.yamltree import dotted_path, line_of

EXAMPLE_HOST = "example.org"
MIN_POLITE_INTERVAL = timedelta(minutes=5)


def config_warnings(config: Config) -> list[tuple[tuple[Any, ...], str]]:
    """Things in a valid config that are probably not what its author meant, as
    (key path, explanation). Pure: ``check-config`` adds the file and line."""
    from aggregator.urls import canonical_url, private_address_kind

    out: list[tuple[tuple[Any, ...], str]] = []
    blogs = [s for s in config.sources if s.role == "blog"]
    outlets = [s for s in config.sources if s.role == "outlet"]
    if not blogs:
        out.append((("sources",), "no source has role blog: nothing will be matched, and the feed "
                                  "will hold outlet articles only"))
    if blogs and not outlets:
        out.append((("sources",), "no source has role outlet: blog posts will have nothing to link to"))
    seen: dict[str, int] = {}
    for i, s in enumerate(config.sources):
        key = canonical_url(s.url)
        if key in seen:
            first = config.sources[seen[key]]
            out.append((("sources", i, "url"), f"same feed as sources[{seen[key]}] ({first.id}): it would be "
                                               "fetched twice and its entries stored twice"))
        else:
            seen[key] = i
    blog_langs = {b.language for b in blogs}
    for i, s in enumerate(config.sources):
        if s.role == "outlet" and not s.aliases and blog_langs - {s.language}:
            langs = ", ".join(sorted(blog_langs - {s.language}))
            out.append((("sources", i), f"outlet {s.id} has no aliases: a blog in {langs} that names it in "
                                        f"its own script (as ロイター names Reuters) will only be understood "
                                        f"when it writes {s.title!r}; add aliases: [...]"))
        host = (urlsplit(s.url).hostname or "").lower()
        kind = "loopback" if host == "localhost" or host.endswith(".localhost") else private_address_kind(host)
        if kind not in (None, "unparsable") and not (s.allow_private_network or config.fetch.allow_private_networks):
            out.append((("sources", i, "url"), f"{host} is a {kind} address: fetching it will be refused; set "
                                               "allow_private_network: true on this source if it is meant to be "
                                               "on your network"))
        if config.interval(s) < MIN_POLITE_INTERVAL:
            where = ("sources", i, "every") if s.every is not None else ("schedule", "every")
            out.append((where, f"{s.id} is fetched every {format_duration(config.interval(s))}: more often "
                               f"than every {format_duration(MIN_POLITE_INTERVAL)} is impolite to most publishers"))
    target = config.translation.target
    if not config.translation.providers and any(s.language != target for s in config.sources):
        out.append((("translation", "providers"), f"no provider: entries not in {target} will be published "
                                                  "untranslated"))
    for i, p in enumerate(config.translation.providers):
        package = {"openai": "openai", "deepl": "deepl"}.get(p.provider)
        if package and importlib.util.find_spec(package) is None:
            out.append((("translation", "providers", i), f"provider {p.provider} needs the {package!r} package, "
                                                         f"which is not installed: pip install 'aggregator[{package}]'"
                                                         " (until then the chain goes without it)"))
    for key in ("link", "base_url"):
        value = getattr(config.output, key)
        if EXAMPLE_HOST in value.split("/")[2:3]:
            why = ("entry ids are tag: URIs made from it and never change once published"
                   if key == "link" else "the feeds' self links point there")
            out.append((("output", key), f"still the example {value}: set your own before the first run "
                                         f"({why})"))
    if config.schedule.jitter > config.schedule.every / 4:
        out.append((("schedule", "jitter"), f"{format_duration(config.schedule.jitter)} is more than a quarter of "
                                            f"schedule.every; the daemon caps it at a quarter of each interval"))
    return out


def config_warning_lines(path: str | os.PathLike[str], config: Config) -> list[str]:
    """:func:`config_warnings` as ``file:line: key: message`` lines."""
    found = config_warnings(config)
    if not found:
        return []
    try:
        root = YAML(typ="rt").load(Path(path).read_text(encoding="utf-8"))
    except Exception:  # it parsed a moment ago; without lines the warnings still help
        root = None
    return [f"{path}:{line_of(root, loc) or '?'}: {dotted_path(loc)}: {msg}" for loc, msg in found]
