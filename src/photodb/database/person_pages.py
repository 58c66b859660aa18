"""What the people pages read besides the people views, one page at a time: each person's cover
face, a person's faces, the next unnamed cluster of the queue, names for completion. Plus the one
write of the cover choice (people.covers decides whether it is allowed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from photodb.database.people_queries import display_name

#: How far a face looks away from the camera: the nose's distance from the middle of the eyes, as a
#: share of the eye distance (landmarks 0 and 1 are the eyes, 2 the nose). Unknown without landmarks.
_YAW = """abs(((d.face_landmarks->2->>0)::float8
               - ((d.face_landmarks->0->>0)::float8 + (d.face_landmarks->1->>0)::float8) / 2)
          / nullif(abs((d.face_landmarks->1->>0)::float8 - (d.face_landmarks->0->>0)::float8), 0))"""
#: A face counts as frontal up to this yaw share.
FRONTAL_YAW = 0.15


def person_covers(conn: psycopg.Connection, person_ids: Sequence[int]) -> dict[int, int]:
    """The face each person shows: the chosen one while it is still theirs, else a frontal face
    first, then the sharpest, then the largest. Each person's faces are read through the cluster
    index and the own-face index separately (an OR of the two would scan every face)."""
    rows = conn.execute(
        f"""SELECT p.id, coalesce(
                   (SELECT d.id FROM person_detection d LEFT JOIN cluster c ON c.id = d.cluster_id
                    WHERE d.id = p.cover_detection_id AND coalesce(c.person_id, d.person_id) = p.id),
                   (SELECT d.id FROM (
                        SELECT d.id, d.face_landmarks, d.face_sharpness, d.face_bbox_width * d.face_bbox_height AS area
                        FROM cluster c JOIN person_detection d ON d.cluster_id = c.id
                        WHERE c.person_id = p.id AND d.face_bbox_x IS NOT NULL
                        UNION ALL
                        SELECT d.id, d.face_landmarks, d.face_sharpness, d.face_bbox_width * d.face_bbox_height
                        FROM person_detection d
                        WHERE d.person_id = p.id AND d.cluster_id IS NULL AND d.face_bbox_x IS NOT NULL) d
                    ORDER BY coalesce({_YAW} <= %(frontal)s, false) DESC, d.face_sharpness DESC NULLS LAST,
                             d.area DESC, d.id
                    LIMIT 1))
            FROM person p WHERE p.id = ANY(%(p)s)""",  # noqa: S608 (only a constant is formatted in)
        {"p": list(person_ids), "frontal": FRONTAL_YAW},
    ).fetchall()
    return {person: face for person, face in rows if face is not None}


def set_cover(conn: psycopg.Connection, person_id: int, detection_id: int | None) -> None:
    conn.execute("UPDATE person SET cover_detection_id = %s WHERE id = %s", (detection_id, person_id))


@dataclass(frozen=True)
class PersonFace:
    detection_id: int
    photo_id: int
    cluster_id: int | None  # None: the face is the person's by hand, in no cluster


def person_faces(conn: psycopg.Connection, person_id: int, *, limit: int, offset: int) -> tuple[list[PersonFace], int]:
    """One page of a person's faces (their clusters' and their own), newest photo first, and how many."""
    rows = conn.execute(
        """WITH faces AS (
               SELECT d.id, d.photo_id, d.cluster_id FROM cluster c JOIN person_detection d ON d.cluster_id = c.id
               WHERE c.person_id = %(p)s
               UNION ALL
               SELECT d.id, d.photo_id, d.cluster_id FROM person_detection d
               WHERE d.person_id = %(p)s AND d.cluster_id IS NULL)
           SELECT id, photo_id, cluster_id, count(*) OVER () FROM faces
           ORDER BY photo_id DESC, id LIMIT %(n)s OFFSET %(o)s""",
        {"p": person_id, "n": limit, "o": offset},
    ).fetchall()
    total = rows[0][3] if rows else _count_person_faces(conn, person_id)
    return [PersonFace(r[0], r[1], r[2]) for r in rows], int(total)


def _count_person_faces(conn: psycopg.Connection, person_id: int) -> int:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM cluster c JOIN person_detection d ON d.cluster_id = c.id
                   WHERE c.person_id = %(p)s)
                + (SELECT count(*) FROM person_detection d WHERE d.person_id = %(p)s AND d.cluster_id IS NULL)""",
        {"p": person_id},
    ).fetchone()
    return int(row[0]) if row else 0


def unnamed_clusters(conn: psycopg.Connection, collection_id: int | None, limit: int) -> list[dict[str, Any]]:
    """The largest clusters with no person (not hidden), for the people page's cards."""
    rows = conn.execute(
        """SELECT c.id, c.face_count FROM cluster c
           WHERE c.person_id IS NULL AND NOT c.hidden AND c.face_count > 0
             AND (%(c)s::bigint IS NULL OR c.collection_id = %(c)s)
           ORDER BY c.face_count DESC, c.id LIMIT %(n)s""",
        {"c": collection_id, "n": limit},
    ).fetchall()
    return [{"id": r[0], "faces": r[1]} for r in rows]


def next_unnamed_cluster(
    conn: psycopg.Connection, collection_id: int | None, after_cluster_id: int | None
) -> dict[str, Any] | None:
    """The next cluster with no person, most faces first (then by id), after the given one (the one
    skipped or just named: its place in the order is read now), and how many are left."""
    row = conn.execute(
        """WITH after AS (SELECT face_count, id FROM cluster WHERE id = %(a)s),
                queue AS (
                    SELECT c.id, c.face_count FROM cluster c
                    WHERE c.person_id IS NULL AND NOT c.hidden AND c.face_count > 0
                      AND (%(c)s::bigint IS NULL OR c.collection_id = %(c)s)
                      AND (NOT EXISTS (SELECT 1 FROM after)
                           OR (c.face_count, -c.id) < (SELECT face_count, -id FROM after)))
           SELECT id, face_count, (SELECT count(*) FROM queue) FROM queue ORDER BY face_count DESC, id LIMIT 1""",
        {"a": after_cluster_id, "c": collection_id},
    ).fetchone()
    return None if row is None else {"id": row[0], "faces": row[1], "left": row[2]}


def person_names(
    conn: psycopg.Connection, collection_id: int | None, limit: int, *, named_only: bool
) -> list[tuple[int, str]]:
    """Shown persons (id, name as the lists show it), most faces first: the targets of a move or
    merge, or with `named_only` the completion of a name box."""
    rows = conn.execute(
        """SELECT p.id, p.first_name, p.last_name, p.named FROM person p
           LEFT JOIN cluster c ON c.person_id = p.id
           WHERE NOT p.hidden AND (p.named OR NOT %(named)s)
             AND (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
           GROUP BY p.id ORDER BY coalesce(sum(c.face_count), 0) DESC, p.id LIMIT %(n)s""",
        {"c": collection_id, "n": limit, "named": named_only},
    ).fetchall()
    return [(r[0], display_name(r[0], r[1], r[2], r[3])) for r in rows]
