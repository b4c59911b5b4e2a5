"""The ``aggregator`` command line. Thin: parse options, call the stages, print."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from aggregator import __version__
from aggregator.config import DEFAULT_CONFIG_PATH, Config, load_config
from aggregator.exceptions import AggregatorError, ConfigError, StorageError, StoreLockedError

log = logging.getLogger("aggregator")

EXIT_CONFIG = 2
EXIT_STORE = 3
EXIT_LOCKED = 4


def setup_logging(verbose: int, quiet: bool, log_file: str | None, default: int = logging.INFO) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else default)
    handlers: list[logging.Handler] = []
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handlers.append(stream)
    if log_file:
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handlers.append(fh)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    # Libraries talk too much at INFO (one line per HTTP request).
    for noisy in ("httpx", "httpcore", "apscheduler", "urllib3", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level > logging.DEBUG else logging.INFO)


def common(default_level: int = logging.INFO) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--config, --verbose, --quiet and --log-file for a command."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--config", "config_path", type=click.Path(dir_okay=False), default=str(DEFAULT_CONFIG_PATH),
                      show_default=True, help="The YAML config file.")
        @click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
        @click.option("-q", "--quiet", is_flag=True, help="Only errors.")
        @click.option("--log-file", type=click.Path(dir_okay=False), help="Also append logs to this file.")
        @functools.wraps(f)
        def wrapper(*args: Any, config_path: str, verbose: int, quiet: bool, log_file: str | None,
                    **kwargs: Any) -> Any:
            setup_logging(verbose, quiet, log_file, default_level)
            return f(*args, config_path=config_path, quiet=quiet, **kwargs)

        return wrapper

    return deco


def _load(config_path: str) -> Config:
    from aggregator.redaction import Redactor, install

    try:
        cfg = load_config(config_path)
    except ConfigError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_CONFIG)
    # From here on no log line shows the config's secrets (keys, URL passwords).
    install(Redactor(cfg.secrets))
    return cfg


def _fail(e: AggregatorError) -> None:
    from aggregator.redaction import redact

    click.echo(f"error: {redact(str(e))}", err=True)
    if isinstance(e, StoreLockedError):
        sys.exit(EXIT_LOCKED)
    if isinstance(e, ConfigError):
        sys.exit(EXIT_CONFIG)
    sys.exit(EXIT_STORE)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="aggregator")
def main() -> None:
    """Pull news feeds and a Japanese commentary blog, link each blog post to the
    outlet articles it cites, translate, and publish one merged feed.

    \b
    Typical use:
      aggregator check-config                 # is config/aggregator.yaml right?
      aggregator run --once                   # one cycle now (cron-friendly)
      aggregator run                          # keep running on the schedule
      aggregator serve                        # serve output/ at http://127.0.0.1:8080/
    Then subscribe your reader to output/feed.atom (or feed.rss, feed.json).
    """


@main.command()
@click.option("--once", is_flag=True, help="Run one cycle and exit (for cron or a systemd timer).")
@click.option("--all", "fetch_all", is_flag=True, help="With --once: fetch every source now, due or not.")
@common(default_level=logging.WARNING)
def run(once: bool, fetch_all: bool, config_path: str, quiet: bool) -> None:
    """Fetch, store, match, translate and publish: once, or on the schedule.

    A cycle fetches the sources that are due (all of them on a first run), stores new
    and changed entries, links blog posts to the articles they cite, translates what
    the feed will show, and rewrites output/ atomically. Exit status 0 when the cycle
    ran, even if some sources failed (they are reported); 2 for a bad config, 3 for an
    unusable store or output, 4 when another run holds the store.
    """
    from aggregator.storage import Store, StoreLock

    cfg = _load(config_path)
    if fetch_all and not once:
        raise click.UsageError("--all goes with --once (the daemon fetches on each source's schedule)")
    try:
        lock = StoreLock(cfg.db_path).acquire()
    except (StoreLockedError, OSError) as e:
        _fail(e if isinstance(e, AggregatorError) else StorageError(str(e)))
    try:
        if not once:
            from aggregator.daemon import Daemon

            if not quiet and logging.getLogger().level > logging.INFO:
                logging.getLogger().setLevel(logging.INFO)
            Daemon(cfg, config_path=config_path).run()
            return
        _run_once(cfg, fetch_all=fetch_all, quiet=quiet)
    except AggregatorError as e:
        _fail(e)
    finally:
        lock.release()


def _run_once(cfg: Config, *, fetch_all: bool, quiet: bool) -> None:
    from aggregator.pipeline import run_cycle
    from aggregator.progress import cycle_progress
    from aggregator.storage import Store

    with Store(cfg.db_path) as store, cycle_progress(len(cfg.sources), enabled=not quiet) as progress:
        report = run_cycle(store, cfg, fetch_all=fetch_all, progress=progress)
    failed = report.failed_sources
    tty = sys.stdout.isatty()
    if quiet or (not tty and not report.changed and not failed):
        return
    new = sum(s.new for s in report.sources)
    upd = sum(s.updated for s in report.sources)
    click.echo(f"{len(report.sources)} sources fetched ({len(failed)} failed), {new} new and {upd} updated entries, "
               f"{report.matched_posts} posts matched, {report.translated} translated "
               f"({report.translation_pending} pending), {report.published} entries published to "
               f"{cfg.output_dir} in {report.seconds:.1f}s")


@main.command("check-config")
@click.argument("path", required=False, default=str(DEFAULT_CONFIG_PATH), type=click.Path(dir_okay=False))
def check_config(path: str) -> None:
    """Validate a config file (default config/aggregator.yaml) and explain it.

    Exit status 0 when it is valid; 1 with one `file:line: key: problem` line per error.
    """
    try:
        cfg = load_config(path)
    except ConfigError as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    from aggregator.redaction import Redactor

    redact = Redactor(cfg.secrets)
    roles = {"blog": 0, "outlet": 0}
    for s in cfg.sources:
        roles[s.role] += 1
    click.echo(f"{path}: valid")
    click.echo(f"  sources: {len(cfg.sources)} ({roles['blog']} blog, {roles['outlet']} outlet)")
    for s in cfg.sources:
        every = cfg.interval(s)
        click.echo(f"    {s.id:<18} {s.role:<6} {s.language:<4} every {_dur(every.total_seconds()):<5} {redact(s.url)}")
    click.echo(f"  store:   {cfg.db_path}")
    click.echo(f"  output:  {cfg.output_dir} (include {cfg.output.include}, at most {cfg.output.max_entries} entries)")
    provs = ", ".join(p.provider for p in cfg.translation.providers) or "none"
    click.echo(f"  translation: to {cfg.translation.target} via {provs} "
               f"(timeout {_dur(cfg.translation.timeout.total_seconds())})")
    if not roles["blog"]:
        click.echo("  note: no source has role blog; nothing will be matched", err=True)


def _dur(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common()
def status(as_json: bool, config_path: str, quiet: bool) -> None:
    """Per-source health, translation backlog, last publication, store size."""
    from aggregator.status import collect, render_text

    cfg = _load(config_path)
    try:
        data = collect(cfg)
    except AggregatorError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(render_text(data))


@main.command()
@click.argument("post_url")
@common()
def explain(post_url: str, config_path: str, quiet: bool) -> None:
    """Why a blog post links (or does not link) each source.

    POST_URL is the blog post's link as its feed gives it."""
    from aggregator.explain import explain_post

    cfg = _load(config_path)
    try:
        text = explain_post(cfg, post_url)
    except AggregatorError as e:
        _fail(e)
    click.echo(text)


@main.command("eval-matching")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--no-translation", is_flag=True, help="Match without the set's translations (meaning only).")
@common(default_level=logging.WARNING)
def eval_matching(directory: str, as_json: bool, no_translation: bool, config_path: str, quiet: bool) -> None:
    """Precision and recall of matching on a folder in the matchbench layout.

    DIRECTORY holds feeds/, sources.yaml, gold.jsonl and translations.jsonl. The real
    pipeline runs on those feeds served over loopback (translations served by a
    loopback LibreTranslate-protocol server), in a temporary store."""
    from aggregator.evaluation import evaluate, render_report

    try:
        result = evaluate(Path(directory), translate=not no_translation)
    except AggregatorError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(render_report(result))


@main.group()
def sources() -> None:
    """List the sources, or move them in and out as OPML 2.0."""


@sources.command("list")
@common()
def sources_list(config_path: str, quiet: bool) -> None:
    """One line per configured source (passwords and tokens in URLs masked)."""
    from aggregator.redaction import redact

    cfg = _load(config_path)
    for s in cfg.sources:
        aliases = f"  aliases: {', '.join(s.aliases)}" if s.aliases else ""
        click.echo(f"{s.id}\t{s.role}\t{s.language}\t{redact(s.url)}\t{s.title}{aliases}")


@sources.command("export")
@common()
def sources_export(config_path: str, quiet: bool) -> None:
    """Print the sources as OPML 2.0 (for feed readers)."""
    from aggregator.opml import export_opml

    cfg = _load(config_path)
    sys.stdout.write(export_opml(cfg))


@sources.command("import")
@click.argument("opml_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--role", type=click.Choice(["outlet", "blog"]), default="outlet", show_default=True,
              help="Role for imported feeds that do not say (aggregator:role attribute).")
@click.option("--language", default="en", show_default=True, help="Language for imported feeds that do not say.")
@click.option("--dry-run", is_flag=True, help="Show what would be added; change nothing.")
@common()
def sources_import(opml_file: str, role: str, language: str, dry_run: bool, config_path: str, quiet: bool) -> None:
    """Merge the feeds of an OPML file into the config, keeping its comments.

    Feeds already configured (same URL) are skipped; new ones get an id made from
    their title. The config is checked before and after, and written atomically."""
    from aggregator.opml import import_opml

    try:
        added, skipped = import_opml(Path(config_path), Path(opml_file), role=role, language=language,
                                     dry_run=dry_run)
    except AggregatorError as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    for sid, url in added:
        click.echo(f"{'would add' if dry_run else 'added'} {sid}: {url}")
    click.echo(f"{len(added)} added, {len(skipped)} already present" + (" (dry run)" if dry_run else ""))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@common()
def serve(host: str, port: int, config_path: str, quiet: bool) -> None:
    """Serve output/ over HTTP, read-only, with the right content types and caching."""
    from aggregator.server import serve_output

    cfg = _load(config_path)
    serve_output(cfg.output_dir, host=host, port=port)


if __name__ == "__main__":
    main()
