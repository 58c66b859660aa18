"""photodb-maintenance: periodic upkeep of clusters. Only check-staleness exists so far."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from photodb.cli_support import open_for_collection
from photodb.clustering.staleness import check_staleness


@click.group()
def main() -> None:
    """Cluster maintenance for PhotoDB."""


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
