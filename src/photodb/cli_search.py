"""photodb search: find photos by what they show, who is in them, when, where, tags and descriptions."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import date
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from photodb.cli_support import open_for_collection, settings_or_exit, verbose_option
from photodb.search.service import (
    FIRST_YEAR,
    LAST_YEAR,
    SearchError,
    SearchRequest,
    SearchResult,
    nothing_enriched,
    search,
)
from photodb.utils.terminal import printable

EXIT_BAD_INPUT = 2
NOTHING_ENRICHED = (
    "no photo has an LLM description yet: --words searches what `photodb enrich PATH` writes "
    "(for what photos show without it, give a QUERY or --tag)"
)


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[red]error:[/] {escape(printable(message))}", soft_wrap=True, highlight=False)
    sys.exit(EXIT_BAD_INPUT)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SearchError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def _near(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lat_text, lon_text = value.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise SearchError(f"--near {value!r} is not LAT,LON (e.g. 48.8584,2.2945)") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise SearchError(f"--near {value!r}: latitude is -90..90, longitude -180..180")
    return lat, lon


def _as_json(result: SearchResult) -> dict[str, Any]:
    return {
        "photo_id": result.photo_id,
        "original_path": str(result.original_path) if result.original_path else None,
        "normalized_path": str(result.normalized_path) if result.normalized_path else None,
        "captured_at": result.captured_at.isoformat() if result.captured_at else None,
        "score": result.score,
        "persons": [{"id": p.id, "name": p.name} for p in result.persons],
        "date_estimated": result.estimated_year is not None,
        "estimated_year": result.estimated_year,
        "estimated_stddev_years": result.estimated_stddev,
    }


def _captured(r: SearchResult) -> str:
    if r.captured_at is not None:
        return r.captured_at.strftime("%Y-%m-%d %H:%M")
    if r.estimated_year is not None:
        return f"~{r.estimated_year:.0f} ±{r.estimated_stddev or 0:.0f} (faces)"
    return "-"


def _show(results: list[SearchResult]) -> None:
    if not results:
        click.echo("no photos match")
        return
    table = Table("photo", "captured", "score", "persons", "original", "normalized")
    for r in results:
        table.add_row(
            str(r.photo_id),
            _captured(r),
            f"{r.score:.3f}" if r.score is not None else "-",
            escape(", ".join(printable(p.name) or f"person {p.id}" for p in r.persons) or "-"),
            escape(str(r.original_path or "-")),
            escape(str(r.normalized_path or "-")),
        )
    Console(width=200).print(table)


@click.command("search")
@click.argument("query", nargs=-1)
@click.option("--words", help="full-text search of the LLM descriptions, objects and tags (web-search syntax)")
@click.option("--person", "persons", multiple=True, help="a person's name; several: photos of them together")
@click.option("--any-person", is_flag=True, help="photos of any of the --person / --cluster given, not all")
@click.option("--cluster", "clusters", multiple=True, type=int, help="an unnamed face cluster by id (repeatable)")
@click.option("--from", "start", metavar="YYYY-MM-DD", help="taken on or after this day")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="taken on or before this day")
@click.option("--year", type=click.IntRange(FIRST_YEAR, LAST_YEAR), help="taken in this year")
@click.option("--month", type=click.IntRange(1, 12), help="taken in this month (of --year, or of any year)")
@click.option("--on-this-day", is_flag=True, help="taken on today's day and month, any year")
@click.option("--camera", help="camera make or model containing this text (e.g. iphone)")
@click.option("--place", help="a country, region or city name (from the places stage)")
@click.option("--near", metavar="LAT,LON", help="taken near this GPS position")
@click.option("--radius-km", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True)
@click.option("--tag", "tags", multiple=True, help="a scene, taxonomy or object tag (repeatable: all of them)")
@click.option("--face-tag", "face_tags", multiple=True, help="a tag of a face in the photo, e.g. smiling")
@click.option("--like-photo", type=int, metavar="PHOTO_ID", help="photos that look like this photo")
@click.option("--like-face", type=int, metavar="DETECTION_ID", help="photos with a face like this face")
@click.option(
    "--sort",
    type=click.Choice(["relevance", "newest", "oldest"]),
    default="relevance",
    show_default=True,
    help="relevance: CLIP similarity, else full-text rank, else newest",
)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--collection", help="only this collection")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@verbose_option
def search_command(
    query: tuple[str, ...],
    words: str | None,
    persons: tuple[str, ...],
    any_person: bool,
    clusters: tuple[int, ...],
    start: str | None,
    end: str | None,
    year: int | None,
    month: int | None,
    on_this_day: bool,
    camera: str | None,
    place: str | None,
    near: str | None,
    radius_km: float,
    tags: tuple[str, ...],
    face_tags: tuple[str, ...],
    like_photo: int | None,
    like_face: int | None,
    sort: str,
    limit: int,
    collection: str | None,
    as_json: bool,
) -> None:
    """Find photos: QUERY is what they show (CLIP text search); every option narrows the result.

    \b
    Examples:
      photodb search "a dog on the beach"
      photodb search --person Grace --person Alan --year 1985      Grace and Alan together
      photodb search --person Grace --person Alan --any-person     either of them
      photodb search --words "birthday cake -candles" --from 2020-01-01
      photodb search --tag beach --face-tag smiling --near 43.7,7.26 --radius-km 20
      photodb search --like-photo 1234 --limit 10 --json

    QUERY needs the CLIP weights (CLIP_MODEL_PATH); a photo counts only at a similarity of at least
    SEARCH_MIN_SIMILARITY for the model, so a query nothing resembles finds nothing. --words
    searches the LLM analyses with stemming in SEARCH_TEXT_LANGUAGE (default english).
    """
    settings = settings_or_exit()
    try:
        request = SearchRequest(
            text=" ".join(query) if query else None,
            words=words,
            persons=persons,
            clusters=clusters,
            any_person=any_person,
            start=_date(start, "--from"),
            end=_date(end, "--to"),
            year=year,
            month=month,
            on_day=date.today() if on_this_day else None,
            camera=camera,
            place=place,
            near=_near(near),
            radius_km=radius_km,
            tags=tags,
            face_tags=face_tags,
            like_photo=like_photo,
            like_face=like_face,
            limit=limit,
            sort=sort,  # type: ignore[arg-type]
        )
        with open_for_collection(collection) as (db, collection_id):
            results = search(db, settings, replace(request, collection_id=collection_id))
            if words and not results and nothing_enriched(db):
                Console(stderr=True).print(NOTHING_ENRICHED, soft_wrap=True, highlight=False, markup=False)
    except SearchError as error:
        _fail(str(error))
    if as_json:
        click.echo(json.dumps([_as_json(r) for r in results], indent=2))
    else:
        _show(results)
