"""photodb-maintenance: periodic upkeep of clusters and people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from photodb import maintenance
from photodb.cli_support import announce_library, settings_or_exit, verbose_option
from photodb.clustering.staleness import check_staleness
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database, DatabaseUnavailable
from photodb.database.migrations import MigrationError
from photodb.people.age_gender import aggregate_people
from photodb.people.association import ThresholdError, auto_associate, check_threshold
from photodb.people.dates import estimate_photo_dates

EXIT_OK, EXIT_WRONG, EXIT_USAGE = 0, 1, 2
#: Problem and note lines shown per task without --json (which lists them all).
SHOWN_PROBLEMS = 10


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@verbose_option
def main() -> None:
    """Cluster and people maintenance for PhotoDB (cron-friendly).

    \b
    Exit codes:
      0  every task ran and found nothing wrong
      1  a task failed, or found something a person should look at
         (constraint violations, contradicting links; health: any problem)
      2  bad usage: an unknown option value, an unknown --collection, a bad setting
    """


def _usage_error(message: str) -> None:
    Console(stderr=True).print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    sys.exit(EXIT_USAGE)


@contextmanager
def _database(collection: str | None) -> Iterator[tuple[Database, int | None]]:
    """The database and the id of `collection` (None: all). An unknown collection is bad usage
    (exit 2); an unreachable database is a failure (exit 1); each one line."""
    settings = settings_or_exit()
    try:
        db = Database(settings, pool_size=2)
    except (DatabaseUnavailable, MigrationError) as error:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True, highlight=False)
        sys.exit(EXIT_WRONG)
    with db:
        collection_id = None
        if collection is not None:
            with db.connection() as conn:
                collection_id = face_db.collection_id_by_name(conn, collection)
            if collection_id is None:
                _usage_error(f"no collection named {collection!r}")
        yield db, collection_id
        announce_library(settings, db)  # after the work, as `open_for_collection` does


def _changes(result: maintenance.TaskResult) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in result.changes.items()) or "-"


def _show(console: Console, result: maintenance.TaskResult) -> None:
    status = "[green]ok[/]" if result.ok else "[red]failed[/]" if result.error else "[yellow]problems[/]"
    console.print(
        f"{result.task:<21} {escape(_changes(result))}  [dim]{result.seconds:.2f} s[/]  {status}",
        soft_wrap=True,
        highlight=False,
    )
    if result.error:
        console.print(f"  error: {escape(result.error)}", soft_wrap=True, highlight=False)
    for line in result.problems[:SHOWN_PROBLEMS]:
        console.print(f"  ! {escape(line)}", soft_wrap=True, highlight=False)
    if len(result.problems) > SHOWN_PROBLEMS:
        console.print(f"  ! ... {len(result.problems) - SHOWN_PROBLEMS} more (--json lists them all)")
    for line in result.notes[:SHOWN_PROBLEMS]:
        console.print(f"  - {escape(line)}", soft_wrap=True, highlight=False, style="dim")
    if len(result.notes) > SHOWN_PROBLEMS:
        console.print(f"  - ... {len(result.notes) - SHOWN_PROBLEMS} more (--json lists them all)", style="dim")


def _run(
    tasks: Sequence[maintenance.Task],
    collection: str | None,
    as_json: bool,
    *,
    similarity_threshold: float | None = None,
    older_than_days: int | None = None,
) -> None:
    """Run tasks in order, one line each as it ends (or one JSON document); exit 0, or 1 when a
    task failed or reported problems."""
    with _database(collection) as (db, collection_id):
        options = maintenance.Options.from_settings(db.settings, similarity_threshold)
        if older_than_days is not None:
            options = maintenance.Options(similarity_threshold, timedelta(days=older_than_days))
        console = Console(highlight=False)
        results = maintenance.run_tasks(
            db, tasks, collection_id, options, on_result=None if as_json else lambda r: _show(console, r)
        )
    ok = all(r.ok for r in results)
    seconds = sum(r.seconds for r in results)
    if as_json:
        document: dict[str, Any] = {
            "library": db.settings.library, "ok": ok, "seconds": round(seconds, 3),
            "tasks": [r.as_dict() for r in results],
        }  # fmt: skip
        click.echo(json.dumps(document, indent=2))
    elif len(results) > 1:
        failed = [r.task for r in results if not r.ok]
        verdict = "all ok" if ok else "needs attention: " + ", ".join(failed)
        click.echo(f"{len(results)} tasks in {seconds:.1f} s: {verdict}")
    sys.exit(EXIT_OK if ok else EXIT_WRONG)


def _collection_option(function: Any) -> Any:
    return click.option("--collection", default=None, help="collection name (default: all)")(function)


def _json_option(function: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="machine-readable output")(function)


@main.command("daily")
@_collection_option
@_json_option
def daily_command(collection: str | None, as_json: bool) -> None:
    """The daily tasks: recompute centroids, cleanup empty clusters, update statistics, propagate
    must-links, merge must-linked clusters, check constraint violations."""
    _run(maintenance.DAILY, collection, as_json)


@main.command("weekly")
@_collection_option
@_json_option
def weekly_command(collection: str | None, as_json: bool) -> None:
    """All daily tasks, then update medoids, merge similar clusters, and turn faces unassigned for
    longer than UNASSIGNED_SINGLETON_DAYS (default 30; 0: all) into singleton clusters."""
    _run(maintenance.WEEKLY, collection, as_json)


def _single(name: str, help_text: str) -> None:
    """One command that runs one task by name."""

    @_collection_option
    @_json_option
    def command(collection: str | None, as_json: bool) -> None:
        _run([maintenance.TASKS[name]], collection, as_json)

    command.__doc__ = help_text
    main.command(name)(command)


_single("recompute-centroids", "Recompute every cluster's face count and centroid from its faces.")
_single("update-medoids", "Recompute medoids of clusters without one or whose size moved 20 % since the last.")
_single("cleanup-empty", "Delete clusters without faces (never a verified one or one linked to a person).")
_single("update-stats", "Fix face counts and broken medoids, and refresh the database's planner statistics.")


@main.command("merge-similar")
@click.option(
    "--similarity-threshold",
    type=float,
    default=None,
    help="largest cosine distance (1 - cosine similarity) between two centroids, and between most face "
    "pairs across them, for a merge; default: each embedding model's `merge` distance (FACE_DISTANCES)",
)
@_collection_option
@_json_option
def merge_similar_command(similarity_threshold: float | None, collection: str | None, as_json: bool) -> None:
    """Merge clusters of one embedding model that are one person: close centroids and most face pairs
    across them close too. Never two verified clusters, never across a cannot-link, a shared photo or
    two persons; what it refused is listed with the reason."""
    if similarity_threshold is not None and not 0 < similarity_threshold <= 2:
        _usage_error(f"--similarity-threshold is a cosine distance in (0, 2], got {similarity_threshold}")
    _run([maintenance.MERGE_SIMILAR], collection, as_json, similarity_threshold=similarity_threshold)


@main.command("cleanup-unassigned")
@click.option("--older-than-days", type=int, default=None, help="default UNASSIGNED_SINGLETON_DAYS (30); 0: all")
@_collection_option
@_json_option
def cleanup_unassigned_command(older_than_days: int | None, collection: str | None, as_json: bool) -> None:
    """Turn faces unassigned for longer than the given days into singleton clusters."""
    if older_than_days is not None and older_than_days < 0:
        _usage_error(f"--older-than-days must be 0 or more, got {older_than_days}")
    _run([maintenance.CLEANUP_UNASSIGNED], collection, as_json, older_than_days=older_than_days)


@main.command("health")
@_collection_option
@_json_option
def health_command(collection: str | None, as_json: bool) -> None:
    """Cluster and face figures; exit 1 with one line per problem when something is wrong."""
    with _database(collection) as (db, collection_id):
        report = maintenance.health(db, collection_id)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        table = Table("figure", "value")
        for key, value in report.figures.items():
            shown = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
            table.add_row(key, shown or "-")
        Console().print(table)
        console = Console(stderr=True)
        for line in report.problems:
            console.print(f"[red]problem:[/] {escape(line)}", soft_wrap=True, highlight=False)
        if report.ok:
            click.echo("healthy")
    sys.exit(EXIT_OK if report.ok else EXIT_WRONG)


@main.command("aggregate-age-gender")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def aggregate_age_gender_command(collection: str | None, as_json: bool) -> None:
    """Recompute each person's estimated birth year and gender from their detections' estimates."""
    with _database(collection) as (db, collection_id):
        report = aggregate_people(db, collection_id, min_confidence=db.settings.age_gender_gender_min_confidence)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(
            f"{report.people} people: {report.with_birth_year} with an estimated birth year, "
            f"{report.with_gender} with a gender"
        )


@main.command("estimate-dates")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def estimate_dates_command(collection: str | None, as_json: bool) -> None:
    """Estimate the capture year of photos without a date from the ages and birth years of the people in them."""
    with _database(collection) as (db, collection_id):
        report = estimate_photo_dates(db, collection_id)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(f"{report.estimated} undated photos estimated from faces, {report.removed} estimates removed")


@main.command("check-staleness")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def check_staleness_command(collection: str | None, as_json: bool) -> None:
    """Report new faces since the active run, parameter drift and model changes; exit 1 if stale."""
    with _database(collection) as (db, collection_id):
        reports = check_staleness(db, collection_id)
    stale = any(r.rebootstrap for r in reports)
    if as_json:
        click.echo(json.dumps({"rebootstrap": stale, "models": [r.as_dict() for r in reports]}, indent=2))
    else:
        table = Table("collection", "model", "faces", "run", "new faces", "unassigned", "verdict")
        for r in reports:
            verdict = "re-bootstrap: " + "; ".join(r.reasons) if r.rebootstrap else "fresh"
            table.add_row(
                str(r.collection_id),
                r.embedding_model,
                str(r.faces),
                str(r.run_id or "-"),
                f"{r.new_faces} ({r.new_share:.0%})",
                str(r.unassigned_faces),
                verdict,
            )
        Console().print(table)
        if not reports:
            click.echo("no faces yet")
    sys.exit(1 if stale else 0)


def _person_label(person_id: int | None) -> str:
    if person_id is None:
        return "no person"
    return "a new person" if person_id < 0 else f"person {person_id}"


@main.command("auto-associate")
@click.option("--threshold", type=float, default=None, help="largest distance of centroids and faces, all models")
@click.option("--dry-run", is_flag=True, help="print the groups it would form; write nothing")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def auto_associate_command(threshold: float | None, dry_run: bool, collection: str | None, as_json: bool) -> None:
    """Group clusters of one person (close centroids, most face pairs across close too, complete
    linkage) into a shared person.

    Each embedding model has its own threshold (PERSON_ASSOCIATION_THRESHOLD for ArcFace w600k_r50,
    measured defaults for the others, PERSON_ASSOCIATION_THRESHOLDS to override). A cluster no other
    cluster joins gets a person of its own when it holds ASSOCIATION_LONE_CLUSTER_MIN_FACES faces or
    more (0: never). Names, verified clusters, user links, unlinks, hidden clusters and cannot-links
    are never overridden.
    """
    try:
        check_threshold(threshold)
    except ThresholdError as error:
        _usage_error(str(error))
    with _database(collection) as (db, collection_id):
        report = auto_associate(db, collection_id, threshold=threshold, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    for model in report.models:
        click.echo(
            f"collection {model.collection_id}, {model.embedding_model} (threshold {model.threshold:g}): "
            f"{model.clusters} clusters, {model.pairs} close pairs, {len(model.groups)} groups"
        )
        for group in model.groups:
            if not group.changed and not group.conflicts:
                continue
            joins = ", ".join(f"{c} -> {_person_label(p)}" for c, p in group.joins.items())
            click.echo(f"  clusters {', '.join(map(str, group.clusters))} (max distance {group.diameter:.3f}): {joins}")
            for conflict in group.conflicts:
                click.echo(f"    not done: {conflict}")
        if model.lone_clusters:
            click.echo(
                f"  {len(model.lone_clusters)} lone clusters {'would get' if dry_run else 'got'} a person of their own"
                f" (at least {model.lone_min_faces} faces)"
            )
    if not report.models:
        click.echo("no clusters yet")
    click.echo(
        f"{'Would make' if dry_run else 'Made'}: {report.persons_created} persons created, "
        f"{report.clusters_linked} clusters linked, {report.persons_merged} persons merged, "
        f"{report.lone_persons_created} persons for lone clusters" + (" (dry run: nothing written)" if dry_run else "")
    )
