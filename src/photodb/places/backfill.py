"""`photodb places backfill`: geocode stored photos that have GPS and no current place.

Works in chunks in photo order, each geocoded with one tree query and written in one short
transaction (place_repository.store_backfilled), so it is safe beside process-local, can be
stopped at any time, and a rerun continues where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from photodb.database import place_repository as places_db
from photodb.database.connection import Database
from photodb.places.geocoder import Place, place_index

CHUNK_SIZE = 1000


@dataclass(frozen=True)
class BackfillResult:
    candidates: int  # photos that needed a place when the backfill started
    written: int  # places stored (a place with no names, for open sea, counts too)
    skipped: int  # photos whose GPS changed, or that got a place elsewhere, meanwhile
    source: str


def backfill_places(
    db: Database,
    *,
    collection_id: int | None,
    force: bool,
    chunk_size: int = CHUNK_SIZE,
    on_start: Callable[[int], None] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> BackfillResult:
    """Give every photo with GPS and no current place its place (with `force`: every photo with GPS)."""
    index = place_index()  # raises PlacesUnavailable before anything is read

    def count() -> int:
        with db.autocommit() as conn:
            return places_db.count_needing_place(conn, collection_id=collection_id, force=force)

    def read(after_id: int) -> list[places_db.GeotaggedPhoto]:
        with db.autocommit() as conn:
            return places_db.photos_needing_place(
                conn, collection_id=collection_id, force=force, after_id=after_id, limit=chunk_size
            )

    def store(geocoded: list[tuple[places_db.GeotaggedPhoto, Place]]) -> int:
        with db.autocommit() as conn:
            return places_db.store_backfilled(conn, geocoded, source=index.source, force=force)

    total = db.retrying(count, "count photos needing a place")
    if on_start is not None:
        on_start(total)
    after_id, written, seen = 0, 0, 0
    while chunk := db.retrying(partial(read, after_id), "read photos needing a place"):
        found = index.lookup_many([p.latitude for p in chunk], [p.longitude for p in chunk])
        written += db.retrying(partial(store, list(zip(chunk, found, strict=True))), "store places")
        seen += len(chunk)
        after_id = chunk[-1].photo_id
        if on_chunk is not None:
            on_chunk(len(chunk))
    return BackfillResult(total, written, seen - written, index.source)
