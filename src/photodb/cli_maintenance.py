"""photodb-maintenance: periodic upkeep of clusters. Only check-staleness exists so far."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from photodb.clustering.staleness import check_staleness
from photodb.config import load_settings
from photodb.database import clustering_repository as repo
from photodb.database.connection import Database, DatabaseUnavailable


@click.group()
def main() -> None:
    """Cluster maintenance for PhotoDB."""


@main.command("check-staleness")
@click.option("--collection", default=None, help="collection name (default: all)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def check_staleness_command(collection: str | None, as_json: bool) -> None:
    """Report new faces since the active run, parameter drift and model changes; exit 1 if stale."""
    try:
        db = Database(load_settings(), pool_size=2)
    except DatabaseUnavailable as error:
        raise click.ClickException(str(error)) from error
    with db:
        collection_id = None
        if collection is not None:
            with db.connection() as conn:
                collection_id = repo.collection_id_by_name(conn, collection)
            if collection_id is None:
                raise click.ClickException(f"no collection named {collection!r}")
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
