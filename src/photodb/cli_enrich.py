"""enrich-photos (and `photodb enrich`): LLM descriptions, objects and tags through Anthropic."""

from __future__ import annotations

import json
import logging
import sys
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from photodb.cli_support import VERBOSE_HELP, announce_library, settings_or_exit
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database, DatabaseUnavailable
from photodb.database.faults import DatabaseUnreachable
from photodb.database.migrations import MigrationError
from photodb.database.repository import PhotoRepository, Scope
from photodb.enrich import create_provider
from photodb.enrich.provider import ProviderError
from photodb.enrich.runner import EnrichOptions, EnrichRunner, EnrichSummary
from photodb.logging_setup import configure_logging

EXIT_RUN_ERROR = 1
EXIT_USAGE = 2


class RichReporter:
    """Photos settled, and one bar per batch while waiting for it."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self.photos = self.progress.add_task("photos", total=None)
        self.batches: dict[str, TaskID] = {}

    def photo_done(self, ok: bool) -> None:
        self.progress.advance(self.photos)

    def batch_progress(self, provider_batch_id: str, done: int, total: int) -> None:
        task = self.batches.get(provider_batch_id)
        if task is None:
            task = self.batches[provider_batch_id] = self.progress.add_task(f"batch {provider_batch_id}", total=total)
        self.progress.update(task, completed=done, total=total)


def _fail(console: Console, message: str, status: int = EXIT_RUN_ERROR) -> NoReturn:
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    sys.exit(status)


def _scope(db: Database, collection: str, path: Path) -> Scope:
    """The photos under PATH in the collection; PATH must lie under the collection's root."""
    with db.connection() as conn:
        collection_id = face_db.collection_id_by_name(conn, collection)
    if collection_id is None:
        raise click.ClickException(f"no collection named {collection!r}: index it first with process-local")
    root = PhotoRepository(db).get_collection(collection_id).root_path
    folder = path.expanduser().resolve()
    if root is None:
        raise click.ClickException(f"collection {collection!r} has no photos yet: run process-local first")
    try:
        prefix = folder.relative_to(root).as_posix()
    except ValueError:
        raise click.ClickException(f"{folder} is outside collection {collection!r} ({root})") from None
    return Scope(collection_id, None if prefix == "." else prefix)


def _report(console: Console, summary: EnrichSummary, as_json: bool) -> None:
    if as_json:
        data = asdict(summary)
        data["errors"] = [{"filename": f, "error": e} for f, e in summary.errors]
        click.echo(json.dumps(data, default=str, indent=2))
        return
    cost = "unknown" if summary.actual_cost_cents is None else f"${summary.actual_cost_cents / 100:.4f}"
    estimate = "unknown" if summary.estimated_cost_cents is None else f"${summary.estimated_cost_cents / 100:.4f}"
    console.print(
        f"{summary.provider} {summary.model} ({summary.mode}): sent {summary.sent}, completed {summary.completed}, "
        f"failed {summary.failed}, back in the queue {summary.freed}; cost {cost}"
        + (f", estimated for submitted batches {estimate}" if summary.batches_submitted else ""),
        soft_wrap=True,
    )
    if summary.batches_submitted:
        console.print(
            f"submitted {len(summary.batches_submitted)} batch(es); fetch results with enrich-photos --check-batches"
        )
    if summary.batches_open:
        console.print(f"{summary.batches_open} batch(es) still running")
    for note in summary.notes:
        console.print(escape(note), soft_wrap=True, highlight=False)
    if summary.unknown_results:
        console.print(f"[yellow]warning:[/] {summary.unknown_results} result(s) for unknown request ids ignored")
    for filename, message in summary.errors:
        console.print(f"  [red]✗[/] {escape(filename)}: {escape(message or '')}", soft_wrap=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--no-batch", is_flag=True, help="Analyse photo by photo now (full price), not as a batch (half price).")
@click.option("--retry-failed", is_flag=True, help="Send photos whose analysis failed before once more.")
@click.option("--force", is_flag=True, help="Analyse again photos already analysed.")
@click.option("--max-photos", type=click.IntRange(1), help="Send at most this many photos.")
@click.option("--collection", default="default", show_default=True, help="Library the photos belong to.")
@click.option("--flush", is_flag=True, help="Send a last batch even when it is smaller than MIN_BATCH_SIZE.")
@click.option("--wait", is_flag=True, help="Wait for the batches to end and store their results.")
@click.option("--check-batches", is_flag=True, help="Look at submitted batches and store the results of ended ones.")
@click.option("--check-config", is_flag=True, help="Verify the provider settings without spending money.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--verbose", "-v", is_flag=True, help=VERBOSE_HELP)
def main(
    path: Path | None, no_batch: bool, retry_failed: bool, force: bool, max_photos: int | None, collection: str,
    flush: bool, wait: bool, check_batches: bool, check_config: bool, as_json: bool, verbose: bool,
) -> None:  # fmt: skip
    """Add LLM descriptions, objects, people counts and tags to the indexed photos under PATH.

    Photos must have been indexed by process-local (its normalized images are what is sent). By
    default photos go as batches of BATCH_SIZE (half price, results within 24 hours): fetch the
    results later with --check-batches, or add --wait. A remainder smaller than MIN_BATCH_SIZE
    waits for the next run unless --flush. --no-batch analyses photo by photo now.
    """
    console = Console(stderr=True)
    settings = settings_or_exit()
    configure_logging(settings, console, verbose)
    # The SDK's and httpx's debug logs carry whole requests (image data): never below INFO.
    for name in ("anthropic", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.INFO if name == "anthropic" else logging.WARNING)
    if path is None and not (check_batches or check_config):
        raise click.UsageError("give a PATH to enrich, or --check-batches / --check-config")
    if path is not None and (check_batches or check_config):
        raise click.UsageError("--check-batches and --check-config take no PATH")
    if no_batch and (flush or wait):
        raise click.UsageError("--flush and --wait are for batches; --no-batch sends photo by photo")
    try:
        provider, limits = create_provider(settings)  # a missing key is one line, before anything is sent
        if path is not None and not no_batch:
            provider.ensure_batch_ready()  # and so is a missing bucket
    except ProviderError as error:
        _fail(console, str(error), EXIT_USAGE)
    if check_config:
        try:
            findings = provider.check()
        except ProviderError as error:
            _fail(console, str(error))
        for line in findings:
            console.print(escape(line), soft_wrap=True)
        return
    if path is not None and not path.expanduser().is_dir():
        _fail(console, f"not a folder: {path}", EXIT_USAGE)
    db: Database | None = None
    reporter = None if as_json else RichReporter(console)
    try:
        db = Database(settings, pool_size=2)
        announce_library(settings, db)
        runner = EnrichRunner(settings, db, provider, limits, reporter)
        with reporter.progress if reporter is not None else nullcontext():
            if path is not None:
                options = EnrichOptions(no_batch, retry_failed, force, max_photos, flush)
                summary = runner.run(_scope(db, collection, path), options)
                if wait and summary.batches_submitted:
                    waited = runner.check_batches(wait=True)
                    summary.completed, summary.failed = waited.completed, summary.failed + waited.failed
                    summary.freed, summary.actual_cost_cents = waited.freed, waited.actual_cost_cents
                    summary.batches_finished = waited.batches_finished
            else:
                summary = runner.check_batches(wait=wait)
    except (DatabaseUnavailable, DatabaseUnreachable, MigrationError, ProviderError) as error:
        _fail(console, str(error))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] submitted batches are kept; run enrich-photos --check-batches")
        sys.exit(130)
    finally:
        if db is not None:
            db.close()
    _report(console, summary, as_json)
