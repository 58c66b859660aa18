"""process-local: index a folder of photos with the local stages."""

from __future__ import annotations

import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from photodb.cli_support import VERBOSE_HELP, announce_library, settings_or_exit
from photodb.database.connection import Database, DatabaseUnavailable, run_pool_size
from photodb.database.faults import DatabaseUnreachable
from photodb.database.migrations import MigrationError
from photodb.database.models import StageCounts
from photodb.logging_setup import configure_logging
from photodb.processors.local_processor import LocalProcessor, RunError, RunOptions, default_parallel
from photodb.processors.summary import RunSummary
from photodb.stages import PIPELINE_ORDER, implemented_stages

EXIT_RUN_ERROR = 1
EXIT_INTERRUPTED = 130
#: --json layout. 2: a stage's "skipped" counts photos the stage could not run for (a missing
#: model), with "skip_reasons"; what 1 called "skipped" (done before, left alone) is "unchanged".
SUMMARY_FORMAT = 2
#: The summary names at most this many distinct skip reasons per stage.
SHOWN_SKIP_REASONS = 3


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} photos/s" if task.speed else "- photos/s", style="cyan")


class RichProgress:
    """One bar per stage: done/total for the whole scope (other workers' progress included)."""

    def __init__(self, console: Console, stages: list[str]) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<15}"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[notes]}"),
            console=console,
            transient=False,
        )
        self.tasks = {name: self.progress.add_task(name, total=None, notes="") for name in stages}
        self.skip_reasons: dict[str, str] = {}

    def skipping(self, reasons: dict[str, str]) -> None:
        self.skip_reasons = dict(reasons)

    def update(self, counts: dict[str, StageCounts], registered: int, discovering: bool) -> None:
        for name, task_id in self.tasks.items():
            stage_counts = counts.get(name, StageCounts())
            self.progress.update(
                task_id,
                total=stage_counts.total or None,
                completed=stage_counts.settled,
                notes=progress_notes(stage_counts, self.skip_reasons.get(name), discovering),
            )


def progress_notes(counts: StageCounts, skip_reason: str | None, discovering: bool) -> str:
    """The text after a stage's bar (rich markup): failures, skips and why, whether files are still being found."""
    notes = []
    if counts.failed:
        notes.append(f"[red]{counts.failed} failed[/]")
    if counts.skipped:
        why = f": {escape(skip_reason)}" if skip_reason else ""
        notes.append(f"[yellow]{counts.skipped} skipped{why}[/]")
    if discovering:
        notes.append("(finding files…)")
    return " ".join(notes)


def _stage_help() -> str:
    return (
        f"Run only this stage (repeatable); stages run in the order {' -> '.join(PIPELINE_ORDER)}. "
        "Default: all of them."
    )


def _validate_stages(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    if not value:
        return implemented_stages()
    return [name for name in PIPELINE_ORDER if name in value]


def _summary_table(summary: RunSummary, library: str) -> Table:
    title = "Dry run: what would happen" if summary.dry_run else f"process-local: {escape(summary.root)}"
    table = Table(title=f"{title}, library {escape(library)}", title_justify="left")
    table.add_column("stage", no_wrap=True, min_width=max(map(len, PIPELINE_ORDER)))
    table.add_column("would run" if summary.dry_run else "completed", justify="right", min_width=9)
    table.add_column("unchanged", justify="right", min_width=9)
    table.add_column("skipped (cannot run here)", justify="right", style="yellow")
    if not summary.dry_run:
        table.add_column("failed", justify="right", style="red")
        table.add_column("blocked by a failed earlier stage", justify="right")
        table.add_column("waiting on an earlier stage", justify="right")
    for name, stage in summary.stages.items():
        cells = [name, str(stage.completed), str(stage.unchanged), str(stage.skipped)]
        if not summary.dry_run:
            cells += [str(stage.failed), str(stage.blocked), str(stage.waiting)]
        table.add_row(*cells)
    for name, reason in summary.unavailable.items():
        table.add_row(name, "[yellow]not run[/]", escape(reason), *([""] * (1 if summary.dry_run else 4)))
    table.caption = (
        f"{summary.discovered} photos found ({summary.new} new, {summary.changed} changed, "
        f"{summary.unchanged} unchanged), {summary.ignored_files} other files ignored"
        + (f", {summary.symlink_loops} symlink loops skipped" if summary.symlink_loops else "")
        + f" in {summary.elapsed_seconds:.1f}s"
    )
    return table


def skip_lines(summary: RunSummary) -> list[str]:
    """One line per stage and reason for skipping (rich markup): each reason is told once, not per photo."""
    lines = []
    for name, stage in summary.stages.items():
        reasons = dict(stage.skip_reasons)
        if not reasons and name in summary.skipping and not summary.dry_run:
            reasons = {summary.skipping[name]: stage.skipped}
        shown = list(reasons.items())[:SHOWN_SKIP_REASONS]
        for reason, count in shown:
            lines.append(f"  [yellow]skipped[/] {name}: {count} photos: {escape(reason or 'no reason given')}")
        if len(reasons) > len(shown):
            others = sum(reasons.values()) - sum(count for _, count in shown)
            lines.append(f"  [yellow]skipped[/] {name}: {others} photos for {len(reasons) - len(shown)} other reasons")
    return lines


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def people_line(summary: RunSummary) -> str | None:
    """The last line of a run (rich markup): where the library's people stand and what to do next."""
    if summary.people_error is not None:
        return (
            f"[yellow]people:[/] not brought up to date ({escape(summary.people_error)}); "
            "the next run, or `photodb cluster`, does it"
        )
    people = summary.people
    if people is None:
        return None
    counts = (
        f"{_plural(people.persons, 'person')} ({people.named} named), {_plural(people.unsorted_faces, 'unsorted face')}"
    )
    if not people.ran:
        return f"[bold]people:[/] {counts}; another process is updating them with this run's faces"
    if people.persons == 0 and people.unsorted_faces == 0:
        return "[bold]people:[/] no faces found yet"
    step = "name them with `photodb web` or `photodb people list`"
    if people.named == people.persons and people.unsorted_faces:
        step = "sort the rest with `photodb people list --unsorted`"
    elif people.named == people.persons:
        step = "search them with `photodb search --person NAME`"
    return f"[bold]people:[/] {counts} — {step}"


def _summary_json(summary: RunSummary, library: str) -> str:
    data = {"summary_format": SUMMARY_FORMAT, "library": library, **asdict(summary)}
    data["errors"] = [{**asdict(e), "at": e.at.isoformat() if e.at else None} for e in summary.errors]
    return json.dumps(data, indent=2)


def _fail(console: Console, message: str) -> NoReturn:
    """One unwrapped line on stderr (messages hold paths and brackets, never markup), exit 1."""
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(EXIT_RUN_ERROR)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--parallel",
    "-p",
    type=click.IntRange(1, 1000),
    default=default_parallel,
    show_default="cores, max 8",
    help="Worker threads. Several processes or hosts may also run on the same library at once.",
)
@click.option(
    "--stage", "stages", multiple=True, type=click.Choice(PIPELINE_ORDER), callback=_validate_stages, help=_stage_help()
)
@click.option("--force", is_flag=True, help="Redo the selected stages even for photos already processed.")
@click.option("--dry-run", is_flag=True, help="Only report what would be registered and processed; change nothing.")
@click.option("--max-photos", type=click.IntRange(1), help="Stop discovering after this many photos.")
@click.option(
    "--collection",
    default="default",
    show_default=True,
    help="Library to index into; each collection has its own root folder, photos and people.",
)
@click.option("--retry-failed", is_flag=True, help="Try photos whose stage failed before once more.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help=f"Print the summary as JSON on stdout (no progress bars); its layout is summary_format {SUMMARY_FORMAT}.",
)
@click.option(
    "--no-people",
    is_flag=True,
    help="Do not bring people up to date at the end (clustering and persons; UPDATE_PEOPLE_AFTER_INDEX=false "
    "turns it off for good). `photodb cluster` and `photodb maintenance weekly` do it by hand.",
)
@click.option("--verbose", "-v", is_flag=True, help=VERBOSE_HELP)
def main(
    path: Path, parallel: int, stages: list[str], force: bool, dry_run: bool, max_photos: int | None,
    collection: str, retry_failed: bool, as_json: bool, no_people: bool, verbose: bool,
) -> None:  # fmt: skip
    """Index the photos under PATH: normalize, read metadata, detect people, then group their faces.

    Runs without any set-up: when DATABASE_URL is not set, PhotoDB starts its own PostgreSQL under
    PHOTODB_HOME and stops it when the last PhotoDB process exits. Rerunning is cheap: unchanged
    files are left alone, changed files are redone. Photos that fail are recorded with the reason and
    the run goes on. When faces were added, the run ends by grouping them into people (a new
    clustering when the library has none or it is stale, else the changed clusters only), so
    `photodb people list` and `photodb web` show them at once. A stage whose model is missing
    records its photos as skipped, says why once, and a later run that has the model processes
    them. The exit status is 0 unless the run itself could
    not happen or had to stop (database unreachable for DATABASE_RETRY_DEADLINE_SECONDS, an internal
    error: one line says which).
    """
    console = Console(stderr=True)
    settings = settings_or_exit()
    configure_logging(settings, console, verbose)
    if not verbose:  # the pool's reconnect attempts during a blip; the run reports what matters
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    options = RunOptions(
        stages=stages, parallel=parallel, force=force, dry_run=dry_run, max_photos=max_photos,
        retry_failed=retry_failed, collection=collection,
        people=settings.update_people_after_index and not no_people,
    )  # fmt: skip
    if not path.expanduser().exists():
        _fail(console, f"folder not found: {path}")
    if not path.expanduser().is_dir():
        _fail(console, f"not a folder: {path}")
    db: Database | None = None
    try:
        db = Database(settings, pool_size=run_pool_size(parallel))
        announce_library(settings)
        shortage = db.connection_shortage(run_pool_size(parallel))
        if shortage is not None:
            console.print(f"[yellow]warning:[/] {escape(shortage)}", soft_wrap=True)
        show_progress = not as_json and not dry_run
        progress = RichProgress(console, stages) if show_progress else None
        processor = LocalProcessor(settings, db, options, progress)
        if progress is not None:
            with progress.progress:
                summary = processor.run(path)
            with console.status("people: checking for new faces") as status:
                processor.update_people(summary, lambda message: status.update(escape(message)))
        else:
            summary = processor.run(path)
            processor.update_people(summary)
    except (DatabaseUnavailable, DatabaseUnreachable, MigrationError, RunError) as error:
        _fail(console, str(error))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted:[/] unfinished photos will be picked up by the next run")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if db is not None:
            db.close()

    if as_json:
        click.echo(_summary_json(summary, settings.library))
    else:
        console.print(_summary_table(summary, settings.library))
        for line in skip_lines(summary):
            console.print(line, soft_wrap=True)
        for error in summary.errors:
            console.print(
                f"  [red]✗[/] {escape(error.filename)} [dim]({error.stage})[/]: {escape(error.message)}",
                soft_wrap=True,
            )
        line = people_line(summary)
        if line is not None:
            console.print(line, soft_wrap=True)
    if summary.stopped_by is not None:
        _fail(console, summary.stopped_by)
