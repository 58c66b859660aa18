"""photodb-maintenance: periodic upkeep of clusters and people."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from photodb.cli_support import open_for_collection
from photodb.clustering.staleness import check_staleness
from photodb.people.age_gender import aggregate_people
from photodb.people.association import ThresholdError, auto_associate, check_threshold


@click.group()
def main() -> None:
    """Cluster and people maintenance for PhotoDB."""


@main.command("aggregate-age-gender")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def aggregate_age_gender_command(collection: str | None, as_json: bool) -> None:
    """Recompute each person's estimated birth year and gender from their detections' estimates."""
    with open_for_collection(collection) as (db, collection_id):
        report = aggregate_people(db, collection_id, min_confidence=db.settings.age_gender_gender_min_confidence)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(
            f"{report.people} people: {report.with_birth_year} with an estimated birth year, "
            f"{report.with_gender} with a gender"
        )


@main.command("check-staleness")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def check_staleness_command(collection: str | None, as_json: bool) -> None:
    """Report new faces since the active run, parameter drift and model changes; exit 1 if stale."""
    with open_for_collection(collection) as (db, collection_id):
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
@click.option("--threshold", type=float, default=None, help="largest centroid distance, for every model [per model]")
@click.option("--dry-run", is_flag=True, help="print the groups it would form; write nothing")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def auto_associate_command(threshold: float | None, dry_run: bool, collection: str | None, as_json: bool) -> None:
    """Group clusters of one person (close centroids, complete linkage) into a shared person.

    Each embedding model has its own threshold (PERSON_ASSOCIATION_THRESHOLD for ArcFace w600k_r50,
    measured defaults for the others, PERSON_ASSOCIATION_THRESHOLDS to override). Names, verified
    clusters, user links and cannot-links are never overridden.
    """
    try:
        check_threshold(threshold)
    except ThresholdError as error:
        Console(stderr=True).print(f"[red]error:[/] {error}", soft_wrap=True, highlight=False)
        sys.exit(2)
    with open_for_collection(collection) as (db, collection_id):
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
    if not report.models:
        click.echo("no clusters yet")
    click.echo(
        f"{'Would make' if dry_run else 'Made'}: {report.persons_created} persons created, "
        f"{report.clusters_linked} clusters linked, {report.persons_merged} persons merged"
        + (" (dry run: nothing written)" if dry_run else "")
    )
