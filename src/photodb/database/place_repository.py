"""Every SQL statement for photo places (`photo_place`, migration 0017): write, backfill, list.

A place row records the coordinates it was geocoded from; it is current while they equal
metadata's. Writers lock the metadata row before the place row: the metadata stage's upsert does
so implicitly, the backfill with `FOR UPDATE` in photo order, and it writes a place only where
metadata still holds the coordinates it geocoded, so a backfill running beside process-local
never stores a place for coordinates the stage has just replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from photodb.places.geocoder import Place

_PLACE_COLUMNS = "country_code, country, region, city, distance_km, source"


@dataclass(frozen=True)
class GeotaggedPhoto:
    photo_id: int
    latitude: float
    longitude: float


@dataclass(frozen=True)
class GeocodedPlace:
    """A place and the data set that named it, as the metadata stage hands it to the repository."""

    place: Place
    source: str


@dataclass(frozen=True)
class PlaceCount:
    country_code: str | None
    country: str | None
    region: str | None
    city: str | None
    photos: int


def write_place(
    conn: psycopg.Connection, photo_id: int, latitude: float, longitude: float, place: Place, source: str
) -> None:
    """Store (or replace) the place of a photo geocoded from (latitude, longitude)."""
    conn.execute(
        f"""INSERT INTO photo_place (photo_id, latitude, longitude, {_PLACE_COLUMNS})
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (photo_id) DO UPDATE SET latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
                country_code = EXCLUDED.country_code, country = EXCLUDED.country, region = EXCLUDED.region,
                city = EXCLUDED.city, distance_km = EXCLUDED.distance_km, source = EXCLUDED.source,
                geocoded_at = now()""",  # noqa: S608
        (photo_id, latitude, longitude, place.country_code, place.country, place.region, place.city,
         place.distance_km, source),
    )  # fmt: skip


def delete_stale_place(conn: psycopg.Connection, photo_id: int) -> None:
    """Drop a place whose coordinates are no longer the photo's (GPS removed or changed)."""
    conn.execute(
        """DELETE FROM photo_place p
           WHERE p.photo_id = %s
             AND NOT EXISTS (SELECT 1 FROM metadata m WHERE m.photo_id = p.photo_id
                             AND m.latitude = p.latitude AND m.longitude = p.longitude)""",
        (photo_id,),
    )


def get_place(conn: psycopg.Connection, photo_id: int) -> dict[str, object] | None:
    row = conn.execute(
        f"SELECT latitude, longitude, {_PLACE_COLUMNS} FROM photo_place WHERE photo_id = %s",  # noqa: S608
        (photo_id,),
    ).fetchone()
    if row is None:
        return None
    names = ["latitude", "longitude", *(c.strip() for c in _PLACE_COLUMNS.split(","))]
    return dict(zip(names, row, strict=True))


_NEEDS_PLACE = """
    FROM metadata m JOIN photo ph ON ph.id = m.photo_id
    LEFT JOIN photo_place p ON p.photo_id = m.photo_id
    WHERE m.latitude IS NOT NULL
      AND (%(collection_id)s::bigint IS NULL OR ph.collection_id = %(collection_id)s)
      AND (%(force)s OR p.photo_id IS NULL OR p.latitude <> m.latitude OR p.longitude <> m.longitude)
"""


def count_needing_place(conn: psycopg.Connection, *, collection_id: int | None, force: bool) -> int:
    """Photos with GPS and no current place (with `force`: every photo with GPS)."""
    row = conn.execute(
        f"SELECT count(*) {_NEEDS_PLACE}",
        {"collection_id": collection_id, "force": force},
    ).fetchone()
    return int(row[0]) if row else 0


def photos_needing_place(
    conn: psycopg.Connection, *, collection_id: int | None, force: bool, after_id: int, limit: int
) -> list[GeotaggedPhoto]:
    """The next chunk (photo order, after `after_id`) of photos the backfill geocodes."""
    rows = conn.execute(
        f"""SELECT m.photo_id, m.latitude, m.longitude {_NEEDS_PLACE}
              AND m.photo_id > %(after_id)s
            ORDER BY m.photo_id LIMIT %(limit)s""",
        {"collection_id": collection_id, "force": force, "after_id": after_id, "limit": limit},
    ).fetchall()
    return [GeotaggedPhoto(int(r[0]), float(r[1]), float(r[2])) for r in rows]


def store_backfilled(
    conn: psycopg.Connection,
    geocoded: Sequence[tuple[GeotaggedPhoto, Place]],
    *,
    source: str,
    force: bool,
) -> int:
    """Write a chunk's places in one transaction; returns how many rows were written.

    Skips photos whose metadata moved on since they were read (other coordinates, or deleted) and,
    without `force`, photos that meanwhile got a current place from the metadata stage.
    """
    if not geocoded:
        return 0
    ids = [photo.photo_id for photo, _ in geocoded]
    with conn.transaction():
        conn.execute("SELECT 1 FROM metadata WHERE photo_id = ANY(%s) ORDER BY photo_id FOR UPDATE", (ids,))
        cursor = conn.execute(
            f"""INSERT INTO photo_place (photo_id, latitude, longitude, {_PLACE_COLUMNS})
                SELECT u.photo_id, u.latitude, u.longitude, u.country_code, u.country, u.region, u.city,
                       u.distance_km, %(source)s
                FROM unnest(%(ids)s::bigint[], %(lats)s::float8[], %(lons)s::float8[], %(codes)s::text[],
                            %(countries)s::text[], %(regions)s::text[], %(cities)s::text[], %(kms)s::float8[])
                     AS u(photo_id, latitude, longitude, country_code, country, region, city, distance_km)
                JOIN metadata m ON m.photo_id = u.photo_id AND m.latitude = u.latitude AND m.longitude = u.longitude
                ORDER BY u.photo_id
                ON CONFLICT (photo_id) DO UPDATE SET latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
                    country_code = EXCLUDED.country_code, country = EXCLUDED.country, region = EXCLUDED.region,
                    city = EXCLUDED.city, distance_km = EXCLUDED.distance_km, source = EXCLUDED.source,
                    geocoded_at = now()
                WHERE %(force)s OR photo_place.latitude <> EXCLUDED.latitude
                   OR photo_place.longitude <> EXCLUDED.longitude""",  # noqa: S608
            {
                "source": source,
                "force": force,
                "ids": ids,
                "lats": [photo.latitude for photo, _ in geocoded],
                "lons": [photo.longitude for photo, _ in geocoded],
                "codes": [place.country_code for _, place in geocoded],
                "countries": [place.country for _, place in geocoded],
                "regions": [place.region for _, place in geocoded],
                "cities": [place.city for _, place in geocoded],
                "kms": [place.distance_km for _, place in geocoded],
            },
        )
        return cursor.rowcount


def place_counts(conn: psycopg.Connection, *, collection_id: int | None, by_city: bool) -> list[PlaceCount]:
    """Photo counts per country (and per region and city with `by_city`), most photos first."""
    columns = "p.country_code, p.country, p.region, p.city" if by_city else "p.country_code, p.country, NULL, NULL"
    group = "p.country_code, p.country, p.region, p.city" if by_city else "p.country_code, p.country"
    rows = conn.execute(
        f"""SELECT {columns}, count(*)
            FROM photo_place p JOIN photo ph ON ph.id = p.photo_id
            WHERE %(collection_id)s::bigint IS NULL OR ph.collection_id = %(collection_id)s
            GROUP BY {group}
            ORDER BY count(*) DESC, p.country NULLS LAST, 3 NULLS LAST, 4 NULLS LAST""",  # noqa: S608
        {"collection_id": collection_id},
    ).fetchall()
    return [PlaceCount(r[0], r[1], r[2], r[3], int(r[4])) for r in rows]
