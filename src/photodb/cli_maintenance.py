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
