"""photodb places: where photos were taken, by name (offline reverse geocoding of their GPS)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from photodb.cli_support import open_for_collection, verbose_option
from photodb.database import place_repository as places_db
from photodb.places import PlacesUnavailable
from photodb.places.backfill import backfill_places


@click.group()
@verbose_option
def places() -> None:
    """Places: country, region and city of each photo with GPS, from GeoNames data shipped in a
    package (no network). process-local fills them for new photos; `backfill` for photos indexed
    before, or while the data was not installed (it needs the ml extra).
    """


@places.command("backfill")
@click.option("--collection", help="only this collection (default: all)")
@click.option("--force", is_flag=True, help="geocode every photo with GPS again, not only those without a place")
@click.option("--json", "as_json", is_flag=True, help="machine-readable summary")
def backfill_command(collection: str | None, force: bool, as_json: bool) -> None:
    """Give every photo with GPS and no place its place; safe to stop, rerun, or run beside process-local."""
    with open_for_collection(collection) as (db, collection_id), Progress(
        TextColumn("geocoding photos"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True, disable=as_json,
    ) as bar:  # fmt: skip
        task = bar.add_task("places", total=None)
        try:
            result = backfill_places(
                db,
                collection_id=collection_id,
                force=force,
                on_start=lambda total: bar.update(task, total=total),
                on_chunk=lambda done: bar.advance(task, done),
            )
        except PlacesUnavailable as error:
            raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(asdict(result), indent=2))
        return
    skipped = f", {result.skipped} changed meanwhile (left to process-local)" if result.skipped else ""
    click.echo(f"stored {result.written} places of {result.candidates} photos needing one{skipped} ({result.source})")


@places.command("list")
@click.option("--collection", help="only this collection (default: all)")
@click.option("--cities/--countries", "by_city", default=True, show_default=True, help="per city, or per country")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def list_command(collection: str | None, by_city: bool, as_json: bool) -> None:
    """Countries (and regions and cities) with their photo counts, most photos first."""
    with open_for_collection(collection) as (db, collection_id), db.autocommit() as conn:
        rows = places_db.place_counts(conn, collection_id=collection_id, by_city=by_city)
        waiting = places_db.count_needing_place(conn, collection_id=collection_id, force=False)
    if as_json:
        click.echo(json.dumps({"places": [asdict(r) for r in rows], "photos_without_place": waiting}, indent=2))
        return
    table = Table("country", "region", "city", "photos") if by_city else Table("country", "photos")
    for r in rows:
        country = f"{r.country} ({r.country_code})" if r.country_code else "(nothing known near)"
        cells = [country, r.region or "", r.city or ""] if by_city else [country]
        table.add_row(*cells, str(r.photos))
    console = Console()
    console.print(table)
    if waiting:
        console.print(f"{waiting} photos with GPS have no place yet: photodb places backfill")
