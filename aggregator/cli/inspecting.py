"""Commands that look without changing: check-config, status, explain, eval-matching."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from aggregator.cli.base import (
    _dur,
    _echo_text,
    _fail,
    _load,
    _store_errors,
    common,
    examples,
    main,
)
from aggregator.config import Config, load_config
from aggregator.exceptions import (
    AggregatorError,
    ConfigError,
    StorageError,
)


@main.command("check-config", epilog=examples(
    "aggregator check-config                            # config/aggregator.yaml",
    "aggregator check-config --config /etc/aggregator.yaml",
    "aggregator check-config --strict other.yaml        # warnings fail too (exit 1)"))
@click.argument("path", required=False, default=None, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@common()
def check_config(path: str | None, strict: bool, config_path: str, quiet: bool) -> None:
    """Validate a config file (PATH, or --config, default config/aggregator.yaml) and explain it.

    \b
    Valid: prints what the config means (sources, intervals, store, output,
    translation, retention) and exits 0; warnings (e.g. a feed listed twice, an
    outlet without aliases, no blog) go to stderr as `file:line: key: warning`.
    Invalid: one `file:line: key: problem` line per error on stderr, exit 1.
    """
    path = path or config_path
    from aggregator.configcheck import config_warning_lines

    try:
        cfg = load_config(path)
    except ConfigError as e:
        click.echo(str(e), err=True)
        click.echo(f"{path}: {len(e.errors)} error{'s' if len(e.errors) != 1 else ''}, not valid", err=True)
        sys.exit(1)
    from aggregator.redaction import Redactor

    redact = Redactor(cfg.secrets)
    roles = {"blog": 0, "outlet": 0}
    for s in cfg.sources:
        roles[s.role] += 1
    warnings = config_warning_lines(path, cfg)
    click.echo(f"{path}: valid" + (f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
                                   if warnings else ""))
    click.echo(f"  sources: {len(cfg.sources)} ({roles['blog']} blog, {roles['outlet']} outlet)")
    for s in cfg.sources:
        every = cfg.interval(s)
        click.echo(f"    {s.id:<18} {s.role:<6} {s.language:<4} every {_dur(every.total_seconds()):<5} {redact(s.url)}")
    click.echo(f"  schedule: each source on its interval, plus up to "
               f"{_dur(cfg.schedule.jitter.total_seconds())} of random delay")
    click.echo(f"  store:   {cfg.store_name}")
    click.echo(f"  output:  {cfg.output_dir} (include {cfg.output.include}, the newest {cfg.output.max_entries} posts)")
    provs = ", ".join(p.provider for p in cfg.translation.providers) or "none"
    click.echo(f"  translation: to {cfg.translation.target} via {provs} "
               f"(timeout {_dur(cfg.translation.timeout.total_seconds())})")
    from aggregator.exceptions import TranslationError
    from aggregator.translating.providers import make_provider

    for p in cfg.translation.providers:
        try:
            make_provider(p)  # no network: catches what the config alone cannot (a missing package)
        except TranslationError as e:
            click.echo(f"  warning: translation provider {p.provider} will be left out: {e}", err=True)
    if cfg.memory_path is not None:
        from aggregator.translating.memory import memory_for

        try:
            memory = memory_for(cfg.memory_path)
        except ConfigError as e:
            click.echo(f"{path}: {e}", err=True)
            sys.exit(1)
        click.echo(f"  translation memory: {memory.units if memory else 0} translation units from {cfg.memory_path}"
                   " (used before any provider)")
    keep = cfg.retention.articles
    click.echo("  retention: " + (f"uncited outlet articles pruned after {_dur(keep.total_seconds())}"
                                  if keep is not None else "every article kept")
               + f"; posts kept; store compacted at most every {_dur(cfg.retention.compact_every.total_seconds())}")
    _explain_source_changes(cfg)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if strict and warnings:
        sys.exit(1)


def _explain_source_changes(cfg: Config) -> None:
    """What the config will do to the sources its store knows: renames, url changes,
    removals (read-only: checking a config changes nothing)."""
    from aggregator.running.cycle import configured_sources
    from aggregator.sources.decide import describe, plan_sources
    from aggregator.store.sources import stored_sources

    if not cfg.is_postgres and not cfg.db_path.exists():
        return
    try:
        stored = stored_sources(cfg.store_location)
    except StorageError as e:
        click.echo(f"  warning: cannot read the store to compare its sources: {e}", err=True)
        return
    lines = describe(plan_sources(configured_sources(cfg), stored))
    if lines:
        click.echo(f"  source changes against the store ({len(lines)}), applied on the next run:")
        for line in lines:
            click.echo(f"    {line}")




@main.command(epilog=examples(
    "aggregator status                       # a table on a terminal",
    "aggregator status --json | jq '.sources[] | select(.consecutive_failures > 0)'",
    "aggregator --config /etc/aggregator.yaml status"))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common()
def status(as_json: bool, config_path: str, quiet: bool) -> None:
    """Per-source health, translation backlog, last publication, store size.

    \b
    One row per source: entries stored, last fetch, its result, consecutive
    errors, next fetch. Then: whether a run holds the store, the translation
    backlog of the feed, the last publication, the store's size. A table on a
    terminal, plain columns otherwise; --json for scripts (times in UTC, ISO 8601).
    """
    import shutil

    from aggregator.app import Aggregator
    from aggregator.running.status import render_text

    cfg = _load(config_path)
    try:
        with _store_errors(cfg):
            data = Aggregator(cfg, config_path=config_path).status()
    except AggregatorError as e:
        _fail(e)
    if as_json:
        _echo_text(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        tty = sys.stdout.isatty()
        _echo_text(render_text(data, terminal=tty, width=shutil.get_terminal_size().columns if tty else None))


@main.command(epilog=examples(
    "aggregator explain https://grandfleet.info/us-related/some-post/",
    "aggregator explain --config /etc/aggregator.yaml https://grandfleet.info/?p=12345"))
@click.argument("post_url")
@common()
def explain(post_url: str, config_path: str, quiet: bool) -> None:
    """Why a blog post links (or does not link) each source.

    POST_URL is the blog post's link as its feed gives it. Exit 1 when the store
    holds no such post."""
    from aggregator.app import Aggregator
    from aggregator.exceptions import NotFoundError

    cfg = _load(config_path)
    try:
        with _store_errors(cfg):
            text = Aggregator(cfg, config_path=config_path).explain(post_url)
    except NotFoundError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except AggregatorError as e:
        _fail(e)
    _echo_text(text)


@main.command("eval-matching", epilog=examples(
    "aggregator eval-matching ../shared/matchbench/dev",
    "aggregator eval-matching --json ../shared/matchbench/dev2 > dev2.json",
    "aggregator eval-matching --no-translation ../shared/matchbench/dev"))
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-translation", is_flag=True, help="Match without the set's translations (meaning only).")
@common(default_level=logging.WARNING)
def eval_matching(directory: str, as_json: bool, no_translation: bool, config_path: str, quiet: bool) -> None:
    """Precision and recall of matching on a folder in the matchbench layout.

    DIRECTORY holds feeds/, sources.yaml, gold.jsonl and translations.jsonl. The real
    pipeline runs on those feeds served over loopback (translations served by a
    loopback LibreTranslate-protocol server), in a temporary store."""
    from aggregator.running.evaluation import evaluate, render_report

    try:
        result = evaluate(Path(directory), translate=not no_translation)
    except AggregatorError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_report(result))
