"""Commands that set up and look after: sources, store, init, demo, serve."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from aggregator.cli.base import (
    EXIT_STORE,
    _dur,
    _echo_text,
    _fail,
    _load,
    common,
    examples,
    main,
)
from aggregator.config import Config
from aggregator.exceptions import AggregatorError


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
