"""``aggregator run``: one cycle, the daemon, or a worker."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from aggregator.app import Aggregator

from aggregator.cli.base import (
    _fail,
    _load,
    _store_errors,
    common,
    examples,
    log,
    main,
)
from aggregator.config import Config
from aggregator.exceptions import (
    AggregatorError,
    StorageError,
)
from aggregator.running import heap


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
    heap.settle()
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
