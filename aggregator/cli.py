"""The ``aggregator`` command line. Thin: parse options, call the stages, print."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from aggregator import __version__

if TYPE_CHECKING:
    from aggregator.app import Aggregator

from aggregator.config import DEFAULT_CONFIG_PATH, Config, load_config
from aggregator.exceptions import (
    AggregatorError,
    ConfigError,
    PublicationRefused,
    StorageError,
    StoreLockedError,
)

log = logging.getLogger("aggregator")

EXIT_CONFIG = 2
EXIT_STORE = 3
EXIT_LOCKED = 4
EXIT_REFUSED = 5
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE: a bug of ours, not the user's input


class _Guarded(click.Group):
    """The last line of defence: an exception no stage expected (a bug of ours) becomes one
    line and exit 70; its traceback goes to the log (shown with -vv, kept by --log-file),
    never to a user's terminal unasked."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - the point of this class
            from aggregator.redaction import redact

            log.debug("internal error", exc_info=True)
            detail = redact(str(e)).splitlines()[0][:300] if str(e) else ""
            click.echo(f"error: internal error ({type(e).__name__}{': ' + detail if detail else ''}); "
                       "this is a bug in aggregator: please report it with the output of the same command "
                       "run with -vv", err=True)
            sys.exit(EXIT_INTERNAL)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time: rich's progress bar replaces it
    with a proxy that prints log lines above the bar instead of through it."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbose: int, quiet: bool, log_file: str | None, default: int = logging.INFO) -> None:
    """stderr at ``default`` (-v: INFO, -vv: DEBUG, -q: ERROR); the log file, when
    given, at INFO (-vv: DEBUG) whatever -q says, so that it keeps the whole story."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else default)
    handlers: list[logging.Handler] = []
    stream = _StderrHandler()
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    stream.setLevel(level)
    handlers.append(stream)
    if log_file:
        try:
            fh = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as e:
            raise click.UsageError(f"--log-file {log_file}: {e.strerror or e}") from None
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        fh.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        handlers.append(fh)
        level = min(level, fh.level)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    # Libraries talk too much at INFO (one line per HTTP request).
    for noisy in ("httpx", "httpcore", "apscheduler", "urllib3", "charset_normalizer"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level > logging.DEBUG else logging.INFO)


def _global_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--config, -v, -q and --log-file, unset by default: a subcommand's own value wins,
    then the one given before the subcommand (``aggregator -v run --once``)."""
    f = click.option("--log-file", type=click.Path(dir_okay=False), default=None,
                     help="Also append logs to this file (INFO, whatever the console shows).")(f)
    f = click.option("-q", "--quiet", is_flag=True, default=None, help="Only errors.")(f)
    f = click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")(f)
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                     help=f"The YAML config file (default {DEFAULT_CONFIG_PATH}).")(f)
    return f


def _merged(config_path: str | None, verbose: int, quiet: bool | None,
            log_file: str | None) -> tuple[str, int, bool, str | None]:
    ctx = click.get_current_context(silent=True)
    root = (ctx.find_root().obj if ctx is not None else None) or {}
    return (config_path or root.get("config_path") or str(DEFAULT_CONFIG_PATH),
            verbose or root.get("verbose") or 0,
            bool(quiet if quiet is not None else root.get("quiet")),
            log_file or root.get("log_file"))


def common(default_level: int = logging.INFO) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--config, --verbose, --quiet and --log-file for a command (also accepted before it)."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @_global_options
        @functools.wraps(f)
        def wrapper(*args: Any, config_path: str | None, verbose: int, quiet: bool | None, log_file: str | None,
                    **kwargs: Any) -> Any:
            config_path, verbose, quiet, log_file = _merged(config_path, verbose, quiet, log_file)
            setup_logging(verbose, quiet, log_file, default_level)
            return f(*args, config_path=config_path, quiet=quiet, **kwargs)

        return wrapper

    return deco


def examples(*lines: str) -> str:
    """An epilog of examples: the last thing every ``--help`` shows."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


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


def _echo_text(text: str) -> None:
    """Print what came from feeds (titles, errors): without bidirectional-text controls,
    which would make the terminal show a line in another order than it is."""
    from aggregator.html_text import strip_bidi

    click.echo(strip_bidi(text))


@contextlib.contextmanager
def _store_errors(cfg: Config) -> Iterator[None]:
    """The database's errors on the store (SQLite: damaged file, full disk...; PostgreSQL:
    the server cannot be reached, refuses, is full...) as one line and exit 3."""
    import sqlite3

    from aggregator.exceptions import storage_error
    from aggregator.store.backend import as_storage_error, db_errors

    try:
        yield
    except AggregatorError:
        raise
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        _fail(storage_error(e.filename or cfg.store_name, sqlite3.OperationalError("database or disk is full")))
    except Exception as e:
        if not isinstance(e, db_errors()):
            raise
        _fail(as_storage_error(cfg.store_name, e))


def _fail(e: AggregatorError) -> None:
    from aggregator.redaction import redact

    click.echo(f"error: {redact(str(e))}", err=True)
    if isinstance(e, StoreLockedError):
        sys.exit(EXIT_LOCKED)
    if isinstance(e, PublicationRefused):
        sys.exit(EXIT_REFUSED)
    if isinstance(e, ConfigError):
        sys.exit(EXIT_CONFIG)
    sys.exit(EXIT_STORE)


@click.group(cls=_Guarded, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=examples(
                 "aggregator demo                   # the whole product offline, on a bundled sample",
                 "aggregator init                   # write config/aggregator.yaml",
                 "aggregator -v run --once          # one cycle now (cron-friendly)"))
@click.version_option(__version__, prog_name="aggregator")
@_global_options
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool | None,
         log_file: str | None) -> None:
    """Pull news feeds and a Japanese commentary blog, link each blog post to the
    outlet articles it cites, translate, and publish one merged feed.

    \b
    Typical use:
      aggregator check-config                 # is config/aggregator.yaml right?
      aggregator run --once                   # one cycle now (cron-friendly)
      aggregator run                          # keep running on the schedule
      aggregator serve                        # serve output/ at http://127.0.0.1:8080/
    Then subscribe your reader to output/feed.atom (or feed.rss, feed.json).
    --config, -v/-q and --log-file go before or after the command's name.
    """
    ctx.obj = {"config_path": config_path, "verbose": verbose, "quiet": quiet, "log_file": log_file}


@main.command(epilog=examples(
    "aggregator run --once                          # one cycle now; quiet unless something changed",
    "aggregator run --once --all -v                 # fetch every source now, log each step",
    "aggregator run --config /etc/aggregator.yaml   # the daemon, with another config"))
@click.option("--once", is_flag=True, help="Run one cycle and exit (for cron or a systemd timer).")
@click.option("--all", "fetch_all", is_flag=True, help="With --once: fetch every source now, due or not.")
@click.option("--allow-shrink", is_flag=True,
              help="With --once: publish even when that drops more than half of the published posts at once.")
@common(default_level=logging.WARNING)
def run(once: bool, fetch_all: bool, allow_shrink: bool, config_path: str, quiet: bool) -> None:
    """Fetch, store, match, translate and publish: once, or on the schedule.

    A cycle fetches the sources that are due (all of them on a first run), stores new
    and changed entries, links blog posts to the articles they cite, translates what
    the feed will show, and rewrites output/ atomically.

    \b
    --once (cron, systemd timers): one cycle, then exit. Prints one summary line
      when something changed or a source failed (failures also on stderr), nothing
      otherwise; on a terminal, a progress bar over the sources due and the summary.
    Without --once: a daemon. Each source is fetched on its interval (plus jitter);
      matching, translation and publishing follow once fetches settle. Logs one line
      per source fetched and one per cycle (INFO; -q: errors only). SIGHUP reloads
      the config (a broken one is refused, the running one kept); SIGINT/SIGTERM
      stop, abandoning fetches in flight, and exit 0.
    On a PostgreSQL store, each daemon is a worker: start several (on one host or
      many, same config) and they share the work: each due source fetched by one
      of them, processing in one at a time, a dead worker's work taken over within
      30 s (docs/scaling.md). Restart them to change the config.

    \b
    The last good publication is never replaced by a much smaller one by accident:
      one that would drop more than half of the published posts at once (a lost
      store, a config that lost the blog) is refused, with one line saying so,
      until `run --once --allow-shrink` publishes it. A store file that vanishes or
      is replaced under a running daemon stops its publications (ERROR in the log)
      until the file is back or the daemon restarts.

    \b
    Exit status: 0 when the cycle ran, even if some sources failed (they are
    reported); 2 for a bad config; 3 for an unusable store or output; 4 when
    another run (daemon or --once) holds the store; 5 when the publication was
    refused because it would drop most published posts (see --allow-shrink).
    """
    from aggregator.app import Aggregator

    cfg = _load(config_path)
    if fetch_all and not once:
        raise click.UsageError("--all goes with --once (the daemon fetches on each source's schedule)")
    if allow_shrink and not once:
        raise click.UsageError("--allow-shrink goes with --once (one deliberate publication, then the daemon again)")
    app = Aggregator(cfg, config_path=config_path)
    if not once and cfg.is_postgres:
        # On PostgreSQL every daemon is one of several cooperating workers (docs/scaling.md).
        _run_worker(cfg, config_path, quiet)
        return
    try:
        with _store_errors(cfg):
            lock = app.lock("aggregator run --once" if once else "aggregator run (daemon)")
    except (AggregatorError, OSError) as e:
        _fail(e if isinstance(e, AggregatorError) else StorageError(f"{cfg.db_path}.lock: {e}"))
    abandoned = False
    try:
        with _store_errors(cfg):
            if not once:
                from aggregator.running.daemon import Daemon

                _console_level(logging.INFO, quiet)
                daemon = Daemon(cfg, config_path=config_path)
                daemon.run()
                abandoned = daemon.abandoned
            else:
                abandoned = _run_once(app, fetch_all=fetch_all, quiet=quiet, allow_shrink=allow_shrink)
    except AggregatorError as e:
        _fail(e)
    finally:
        lock.release()
    if abandoned:
        _leave_now()


def _leave_now() -> None:
    """Exit 0 at once: a fetch blocked on a slow server holds a thread Python would wait
    for at exit (until its read timeout); everything is stored and closed by now."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_worker(cfg: Config, config_path: str, quiet: bool) -> None:
    from aggregator.running.workers import run_worker

    _console_level(logging.INFO, quiet)
    try:
        with _store_errors(cfg):
            abandoned = run_worker(cfg, config_path=config_path)
    except AggregatorError as e:
        _fail(e)
    if abandoned:
        _leave_now()


def _console_level(level: int, quiet: bool) -> None:
    """The daemon logs at INFO on the console unless -q (``run --once`` only warns)."""
    if quiet:
        return
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            h.setLevel(min(h.level, level))
    root.setLevel(min(root.level, level))


def _run_once(app: Aggregator, *, fetch_all: bool, quiet: bool, allow_shrink: bool = False) -> bool:
    """One cycle; True when fetches were abandoned because of a signal."""
    import signal
    import threading

    from aggregator.progress import cycle_progress

    cfg = app.config
    stop = threading.Event()

    def on_stop(signum: int, frame: object) -> None:
        log.warning("received %s: finishing the cycle with what is fetched", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    with cycle_progress(enabled=not quiet) as progress:
        report = app.run_once(fetch_all=fetch_all, progress=progress, stop=stop,
                              on_due=progress.start if progress else None, allow_shrink=allow_shrink)
    # A cron user sees stderr: a translator that failed is said there, once per provider.
    for line in report.provider_warnings():
        log.warning("%s", line)
    failed = report.failed_sources
    if quiet or (not sys.stdout.isatty() and not report.changed and not failed):
        return stop.is_set()
    click.echo(f"{report.summary()}; output in {cfg.output_dir}")
    return stop.is_set()


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
    from aggregator.config import config_warning_lines

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


def _dur(seconds: float) -> str:
    from datetime import timedelta

    from aggregator.config import format_duration

    return format_duration(timedelta(seconds=seconds))


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


@main.group(epilog=examples(
    "aggregator sources list",
    "aggregator sources export > feeds.opml",
    "aggregator sources import --dry-run feeds.opml"))
def sources() -> None:
    """List the sources, or move them in and out as OPML 2.0."""


@sources.command("list", epilog=examples("aggregator sources list", "aggregator sources list --json"))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common()
def sources_list(as_json: bool, config_path: str, quiet: bool) -> None:
    """The configured sources: id, role, language, interval, name, aliases, URL.

    A table (plain columns when not on a terminal); `aggregator status` shows how
    each is doing."""
    import shutil

    from aggregator.redaction import redact
    from aggregator.running.status import render_sources

    cfg = _load(config_path)
    if as_json:
        click.echo(json.dumps([{"id": s.id, "role": s.role, "language": s.language, "name": s.title,
                                "every": _dur(cfg.interval(s).total_seconds()), "aliases": list(s.aliases),
                                "url": redact(s.url)} for s in cfg.sources], ensure_ascii=False, indent=2))
        return
    tty = sys.stdout.isatty()
    _echo_text(render_sources(cfg, terminal=tty, width=shutil.get_terminal_size().columns if tty else None))


@sources.command("export", epilog=examples(
    "aggregator sources export > feeds.opml", "aggregator --config /etc/aggregator.yaml sources export"))
@common()
def sources_export(config_path: str, quiet: bool) -> None:
    """Print the sources as OPML 2.0 (for feed readers)."""
    from aggregator.running.opml import export_opml

    cfg = _load(config_path)
    sys.stdout.write(export_opml(cfg))


@sources.command("import", epilog=examples(
    "aggregator sources import --dry-run feeds.opml     # what would be added",
    "aggregator sources import --role outlet --language en feeds.opml"))
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
    from aggregator.running.opml import import_opml

    try:
        added, skipped = import_opml(Path(config_path), Path(opml_file), role=role, language=language,
                                     dry_run=dry_run)
    except AggregatorError as e:
        click.echo(str(e), err=True)
        sys.exit(1)
    for sid, url in added:
        click.echo(f"{'would add' if dry_run else 'added'} {sid}: {url}")
    click.echo(f"{len(added)} added, {len(skipped)} already present" + (" (dry run)" if dry_run else ""))


@main.group(epilog=examples(
    "aggregator store check",
    "aggregator store backup backups/aggregator-$(date +%F).sqlite3"))
def store() -> None:
    """Check the store's integrity, or copy it while it is in use."""


@store.command("check", epilog=examples(
    "aggregator store check",
    "aggregator store check --quick --config /etc/aggregator.yaml"))
@click.option("--quick", is_flag=True, help="PRAGMA quick_check: skips checking indexes against their tables "
              "(SQLite).")
@common()
def store_check(quick: bool, config_path: str, quiet: bool) -> None:
    """Check the store (SQLite's integrity_check), without writing to it.

    \b
    Prints `STORE: ok (...)` and exits 0, or the problems found and what to
    do, and exits 3. Safe while a run works on the store.
    On PostgreSQL (storage.url: postgresql://...) it checks, in one read-only
    snapshot, the schema version, that every entry can be read back, and that
    nothing refers to an entry or source that is not there; the pages
    themselves are PostgreSQL's to check (pg_amcheck, by its administrator).
    """
    from aggregator.store.integrity import check_file

    cfg = _load(config_path)
    try:
        if cfg.is_postgres:
            from aggregator.store.pgcheck import check_postgres

            result = check_postgres(cfg.store_location)
        else:
            result = check_file(cfg.db_path, full=not quick)
    except AggregatorError as e:
        _fail(e)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.ok:
        what = [f"schema {result.schema}" if result.schema is not None else "not an aggregator store",
                f"{result.size / 1e6:.1f} MB"]
        if result.entries is not None:
            what.append(f"{result.entries:,} entries")
        click.echo(f"{result.name}: ok ({', '.join(what)})")
        return
    finder = "the check finds" if cfg.is_postgres else "SQLite finds"
    click.echo(f"{result.name}: damaged: {finder} {len(result.problems)}"
               f"{'+' if len(result.problems) >= 20 else ''} problem(s):", err=True)
    for line in result.problems:
        click.echo(f"  {line}", err=True)
    if cfg.is_postgres:
        click.echo("Restore a pg_dump backup (`aggregator store backup DEST` makes them), or ask the database's "
                   "administrator.", err=True)
    else:
        click.echo("aggregator will not write to it. Restore a backup (`aggregator store backup DEST` makes them), "
                   "or move the file aside and run again to start a new store.", err=True)
    sys.exit(EXIT_STORE)


@store.command("backup", epilog=examples(
    "aggregator store backup backups/aggregator-$(date +%F).sqlite3",
    "aggregator store backup /mnt/usb/aggregator.sqlite3 --config /etc/aggregator.yaml",
    "aggregator store backup backups/aggregator-$(date +%F).dump     # PostgreSQL: pg_dump's custom format"))
@click.argument("dest", type=click.Path(dir_okay=False))
@common()
def store_backup(dest: str, config_path: str, quiet: bool) -> None:
    """Copy the store to DEST (a new file) with SQLite's online backup API.

    \b
    Consistent even while a daemon works on the store; the copy is checked. A
    damaged store is not copied (exit 3). To restore: stop aggregator, move the
    damaged file aside, put the copy in its place (storage.url).
    On PostgreSQL, runs pg_dump --format=custom into DEST (checked with
    pg_restore --list; restore with pg_restore); without pg_dump on PATH it
    says so and exits 3.
    """
    from aggregator.store.integrity import backup_file

    cfg = _load(config_path)
    try:
        if cfg.is_postgres:
            from aggregator.store.pgcheck import backup_postgres

            size = backup_postgres(cfg.store_location, Path(dest))
        else:
            size = backup_file(cfg.db_path, Path(dest))
    except AggregatorError as e:
        _fail(e)
    how = "dumped (pg_dump, custom format) to" if cfg.is_postgres else "copied to"
    click.echo(f"{cfg.store_name} {how} {dest} ({size / 1e6:.1f} MB, checked)")


@main.command(epilog=examples(
    "aggregator init                      # asks for the two addresses",
    "aggregator init --link https://news.example.org/ --base-url https://news.example.org/feeds/",
    "aggregator init --config /etc/aggregator.yaml --link https://news.example.org/ --base-url https://news.example.org/"))
@click.option("--link", help="output.link: the site the feed belongs to (its ids are made from this host).")
@click.option("--base-url", help="output.base_url: where the output folder is served (the feeds' self links).")
@click.option("--force", is_flag=True, help="Overwrite an existing config.")
@common()
def init(link: str | None, base_url: str | None, force: bool, config_path: str, quiet: bool) -> None:
    """Write a config (default config/aggregator.yaml) from the example shipped with aggregator.

    The example reads the real blog and the outlets it cites; only two addresses are
    yours to give: output.link and output.base_url (asked for on a terminal, else
    given as options). The written config is checked before anything is said done."""
    from aggregator.running.setup import InitError, write_config

    path = Path(config_path)
    if path.exists() and not force:
        click.echo(f"error: {path} exists (--force overwrites it)", err=True)
        sys.exit(1)
    interactive = sys.stdin.isatty()
    if link is None:
        if not interactive:
            raise click.UsageError("--link is required when not on a terminal")
        link = click.prompt("The site this feed belongs to (output.link)", default="https://example.org/")
    if base_url is None:
        if not interactive:
            raise click.UsageError("--base-url is required when not on a terminal")
        base_url = click.prompt("Where output/ will be served (output.base_url)", default=link.rstrip("/") + "/feeds/")
    try:
        written = write_config(path, link=link, base_url=base_url)
    except InitError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"wrote {written}")
    click.echo(f"next: aggregator check-config --config {written}   then: aggregator run --once --config {written}")


@main.command(epilog=examples(
    "aggregator demo                       # then open the printed http://127.0.0.1:8080/",
    "aggregator demo --port 8000",
    "aggregator demo --output /tmp/demo    # write the output there and exit (no server)"))
@click.option("--port", default=8080, show_default=True, type=int,
              help="Serve the result on http://127.0.0.1:PORT/ (0: any free port).")
@click.option("--output", "output_dir", type=click.Path(file_okay=False),
              help="Write the output (feeds and page) to this folder and exit.")
@common(default_level=logging.WARNING)
def demo(port: int, output_dir: str | None, config_path: str, quiet: bool) -> None:
    """The whole product offline, on a sample written for the project.

    A Japanese defence blog's feed (15 posts) and five outlets' feeds are served on
    127.0.0.1; one full cycle fetches, stores (in a temporary store), matches each post
    to the articles it cites, translates the posts with the sample's translation memory
    (no network, no translation provider) and publishes. The result is served at the
    printed URL until Ctrl-C, or, with --output, written to a folder. Your own config
    (--config) is not read or changed."""
    from aggregator.demo import run_demo_cycle, work_directory

    try:
        with work_directory() as work:
            if output_dir:
                out = Path(output_dir).resolve()
                cfg, report = run_demo_cycle(out, f"http://127.0.0.1:{port or 8080}/", work)
                _demo_summary(report, cfg)
                click.echo(f"Output in {out}: open {out / 'index.html'}, or subscribe to {out / 'feed.atom'}")
                return
            from aggregator.publishing.serve import make_server, serve_output

            out = work / "output"
            out.mkdir()
            server = make_server(out, "127.0.0.1", port)
            site = f"http://127.0.0.1:{server.server_address[1]}/"
            cfg, report = run_demo_cycle(out, site, work)
            _demo_summary(report, cfg)
            click.echo(f"Serving the demo at {site} (feeds: {site}feed.atom, {site}feed.rss, {site}feed.json); "
                       "Ctrl-C to stop")
            serve_output(out, host="127.0.0.1", port=port, server=server)
    except AggregatorError as e:
        _fail(e)


def _demo_summary(report: Any, cfg: Config) -> None:
    click.echo(f"demo: {report.summary()}")


@main.command(epilog=examples(
    "aggregator serve                          # http://127.0.0.1:8080/",
    "aggregator serve --host 0.0.0.0 --port 8000"))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@common()
def serve(host: str, port: int, config_path: str, quiet: bool) -> None:
    """Serve output/ over HTTP, read-only, with the right content types and caching."""
    from aggregator.publishing.serve import serve_output

    cfg = _load(config_path)
    try:
        serve_output(cfg.output_dir, host=host, port=port)
    except AggregatorError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_STORE)


if __name__ == "__main__":
    main()
