"""SQL of dates from faces (photodb.people.dates): birth dates, the faces that date an undated
photo, the stored estimates, and each person's age per photo. Functions take a connection so the
caller reads and writes in one transaction.

A detection belongs to a person through its own person_id, or through its cluster's person_id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg


@dataclass(frozen=True)
class DatingFace:
    """A face with an age estimate, in a photo without a capture date, of a person with a birth year."""

    photo_id: int
    detection_id: int
    person_id: int
    age: float
    birth_date: date | None
    estimated_birth_year: int | None
    birth_year_stddev: float | None


@dataclass(frozen=True)
class PhotoEstimate:
    photo_id: int
    estimated_year: float
    stddev_years: float
    persons: list[dict[str, float | int]]


@dataclass(frozen=True)
class PhotoAge:
    """A person's photo: its capture time (or the estimated year) and the person's age in it."""

    photo_id: int
    captured_at: datetime | None
    estimated_year: float | None
    age_estimate: float | None


def set_birth_date(conn: psycopg.Connection, person_id: int, birth_date: date | None, by: str | None) -> None:
    conn.execute(
        "UPDATE person SET birth_date = %s, birth_date_by = %s, updated_at = now() WHERE id = %s",
        (birth_date, by, person_id),
    )


def birth_of(conn: psycopg.Connection, person_id: int) -> tuple[date | None, int | None, float | None]:
    """(birth_date, estimated_birth_year, birth_year_stddev) of a person."""
    row = conn.execute(
        "SELECT birth_date, estimated_birth_year, birth_year_stddev FROM person WHERE id = %s", (person_id,)
    ).fetchone()
    return (None, None, None) if row is None else (row[0], row[1], row[2])


def photos_of_persons(conn: psycopg.Connection, person_ids: Sequence[int]) -> list[int]:
    """The undated photos whose estimate these persons may change: those with a face of theirs now
    (through its cluster or its own person_id), and those whose stored estimate used one of them
    (faces a person just lost, or a person merged away)."""
    rows = conn.execute(
        """SELECT d.photo_id FROM cluster c JOIN person_detection d ON d.cluster_id = c.id
           LEFT JOIN metadata m ON m.photo_id = d.photo_id
           WHERE c.person_id = ANY(%(p)s) AND m.captured_at IS NULL
           UNION
           SELECT d.photo_id FROM person_detection d LEFT JOIN metadata m ON m.photo_id = d.photo_id
           WHERE d.person_id = ANY(%(p)s) AND m.captured_at IS NULL
           UNION
           SELECT e.photo_id FROM photo_date_estimate e CROSS JOIN LATERAL jsonb_array_elements(e.persons) AS u(face)
           WHERE (u.face ->> 'person_id')::bigint = ANY(%(p)s)
           ORDER BY 1""",
        {"p": list(person_ids)},
    ).fetchall()
    return [r[0] for r in rows]


def dating_faces(
    conn: psycopg.Connection, collection_id: int | None, photo_ids: Sequence[int] | None = None
) -> list[DatingFace]:
    """Faces that can date their photo: photo without captured_at, face with an age estimate,
    person with a birth date or an estimated birth year, by photo (only `photo_ids` when given:
    then the photos are found by primary key, not by a pass over the collection)."""
    if photo_ids is not None and not photo_ids:
        return []
    scope = "p.id = ANY(%(photos)s)" if photo_ids is not None else "(%(c)s::bigint IS NULL OR p.collection_id = %(c)s)"
    rows = conn.execute(
        f"""SELECT p.id, d.id, pr.id, d.age_estimate, pr.birth_date, pr.estimated_birth_year, pr.birth_year_stddev
            FROM photo p
            JOIN person_detection d ON d.photo_id = p.id
            LEFT JOIN cluster c ON c.id = d.cluster_id
            JOIN person pr ON pr.id = COALESCE(d.person_id, c.person_id)
            LEFT JOIN metadata m ON m.photo_id = p.id
            WHERE {scope}
              AND m.captured_at IS NULL AND d.age_estimate IS NOT NULL
              AND (pr.birth_date IS NOT NULL OR pr.estimated_birth_year IS NOT NULL)
            ORDER BY p.id, d.id""",  # noqa: S608 (one of two constant conditions)
        {"c": collection_id, "photos": None if photo_ids is None else list(photo_ids)},
    ).fetchall()
    return [DatingFace(*row) for row in rows]


def replace_estimates(
    conn: psycopg.Connection,
    collection_id: int | None,
    estimates: Sequence[PhotoEstimate],
    photo_ids: Sequence[int] | None = None,
) -> int:
    """Store `estimates` as the collection's 'faces' estimates (of `photo_ids` only, when given):
    the others there are deleted, unchanged rows keep their computed_at. Returns the rows deleted."""
    scope = (
        "e.photo_id = ANY(%(scope)s)" if photo_ids is not None else "(%(c)s::bigint IS NULL OR p.collection_id = %(c)s)"
    )
    deleted = conn.execute(
        f"""DELETE FROM photo_date_estimate e USING photo p
            WHERE p.id = e.photo_id AND e.source = 'faces' AND {scope}
              AND NOT (e.photo_id = ANY(%(keep)s))""",  # noqa: S608 (one of two constant conditions)
        {
            "c": collection_id,
            "scope": None if photo_ids is None else list(photo_ids),
            "keep": [e.photo_id for e in estimates],
        },
    ).rowcount
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO photo_date_estimate (photo_id, estimated_year, stddev_years, source, persons)
               VALUES (%s, %s, %s, 'faces', %s::jsonb)
               ON CONFLICT (photo_id) DO UPDATE
                   SET estimated_year = EXCLUDED.estimated_year, stddev_years = EXCLUDED.stddev_years,
                       source = EXCLUDED.source, persons = EXCLUDED.persons, computed_at = now()
                   WHERE (photo_date_estimate.estimated_year, photo_date_estimate.stddev_years,
                          photo_date_estimate.persons)
                         IS DISTINCT FROM (EXCLUDED.estimated_year, EXCLUDED.stddev_years, EXCLUDED.persons)""",
            [(e.photo_id, e.estimated_year, e.stddev_years, json.dumps(e.persons)) for e in estimates],
        )
    return deleted


def person_photos(conn: psycopg.Connection, person_id: int) -> list[PhotoAge]:
    """The person's photos with a capture date or an estimated one, oldest first, with the face's age estimate."""
    rows = conn.execute(
        """SELECT photo_id, captured_at, estimated_year, age FROM (
               SELECT d.photo_id, m.captured_at, MAX(d.age_estimate) AS age,
                      CASE WHEN m.captured_at IS NULL THEN e.estimated_year END AS estimated_year
               FROM person_detection d
               LEFT JOIN cluster c ON c.id = d.cluster_id
               LEFT JOIN metadata m ON m.photo_id = d.photo_id
               LEFT JOIN photo_date_estimate e ON e.photo_id = d.photo_id
               WHERE COALESCE(d.person_id, c.person_id) = %s
                 AND (m.captured_at IS NOT NULL OR e.photo_id IS NOT NULL)
               GROUP BY d.photo_id, m.captured_at, e.estimated_year) dated
           ORDER BY COALESCE(EXTRACT(YEAR FROM captured_at) + (EXTRACT(DOY FROM captured_at) - 1) / 366.0,
                             estimated_year), photo_id""",
        (person_id,),
    ).fetchall()
    return [PhotoAge(*row) for row in rows]
