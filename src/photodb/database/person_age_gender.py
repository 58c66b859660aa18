"""SQL of the per-person age/gender aggregation (photodb.people.age_gender): functions taking a
connection, so the caller reads and writes one collection's people in one transaction.

A detection belongs to a person through its own person_id, or through its cluster's person_id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class PersonSample:
    """One detection's estimate, as the aggregation weighs it."""

    person_id: int
    age: float | None
    gender: str | None
    gender_confidence: float | None
    detection_confidence: float | None  # the face's, else the body's
    face_short_side: float | None  # in original-image pixels; None for a body alone
    captured_at: datetime | None


@dataclass(frozen=True)
class PersonAgeGender:
    person_id: int
    birth_year: int | None
    birth_year_stddev: float | None
    gender: str | None
    gender_confidence: float | None
    sample_count: int


def person_ids(conn: psycopg.Connection, collection_id: int | None, only: Sequence[int] | None = None) -> list[int]:
    """Every person of the collection (None: all), or those of `only` that still exist, locked
    for the update, in id order."""
    rows = conn.execute(
        """SELECT id FROM person
           WHERE (%(c)s::bigint IS NULL OR collection_id = %(c)s) AND (%(only)s::bigint[] IS NULL OR id = ANY(%(only)s))
           ORDER BY id FOR UPDATE""",
        {"c": collection_id, "only": None if only is None else list(only)},
    ).fetchall()
    return [row[0] for row in rows]


def samples(conn: psycopg.Connection, person_ids: Sequence[int]) -> list[PersonSample]:
    """Estimated detections of these people, with the photo's capture time when it has one.

    A face's own person_id wins over its cluster's; the faces are found through the person and
    cluster indexes (a few persons' faces cost a few index scans, not a pass over every face)."""
    rows = conn.execute(
        """SELECT o.person_id, d.age_estimate, d.gender, d.gender_confidence,
                  COALESCE(d.face_confidence, d.body_confidence),
                  LEAST(d.face_bbox_width, d.face_bbox_height) / COALESCE(p.normalized_scale, 1.0),
                  m.captured_at
           FROM (SELECT d.id, d.person_id FROM person_detection d WHERE d.person_id = ANY(%(p)s)
                 UNION ALL
                 SELECT d.id, c.person_id FROM cluster c JOIN person_detection d ON d.cluster_id = c.id
                 WHERE c.person_id = ANY(%(p)s) AND d.person_id IS NULL) o
           JOIN person_detection d ON d.id = o.id
           JOIN photo p ON p.id = d.photo_id
           LEFT JOIN metadata m ON m.photo_id = d.photo_id
           WHERE d.age_estimate IS NOT NULL OR d.gender IS NOT NULL
           ORDER BY d.id""",
        {"p": list(person_ids)},
    ).fetchall()
    return [PersonSample(*row) for row in rows]


def store(conn: psycopg.Connection, results: Sequence[PersonAgeGender]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            """UPDATE person SET estimated_birth_year = %s, birth_year_stddev = %s, gender = %s,
                                 gender_confidence = %s, age_gender_sample_count = %s,
                                 age_gender_updated_at = now(), updated_at = now()
               WHERE id = %s""",
            [
                (r.birth_year, r.birth_year_stddev, r.gender, r.gender_confidence, r.sample_count, r.person_id)
                for r in results
            ],
        )
