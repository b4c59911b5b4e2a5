"""What every command shares: the ``aggregator`` group, its global options, logging, loading the
config, and how errors become exit statuses."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from aggregator import __version__
from aggregator.config import DEFAULT_CONFIG_PATH, Config, load_config
from aggregator.exceptions import (
    AggregatorError,
    ConfigError,
    PublicationRefused,
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

def _dur(seconds: float) -> str:
    from datetime import timedelta

    from aggregator.config import format_duration

    return format_duration(timedelta(seconds=seconds))


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
