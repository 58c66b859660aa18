"""Faces in no cluster and on no person ("unsorted"), each with the nearest person to suggest.

The suggestion is the nearest cluster with a visible person in the face's embedding model, found
by the centroid HNSW index (the same candidates tier 2 starts from) and measured against the
cluster's exact sum. Body-only detections are no faces and never listed.
"""

from __future__ import annotations

from typing import Any

import psycopg

from photodb.database.people_queries import PHOTO_PATH, display_name

_FROM = """
    FROM person_detection d
    JOIN photo ph ON ph.id = d.photo_id
    JOIN collection col ON col.id = ph.collection_id
    JOIN face_embedding fe ON fe.person_detection_id = d.id"""
#: Unsorted faces of one collection (None: every collection).
_WHERE = """
    WHERE d.cluster_id IS NULL AND d.person_id IS NULL AND d.face_bbox_x IS NOT NULL
      AND (%(c)s::bigint IS NULL OR ph.collection_id = %(c)s)"""


def unsorted_faces(conn: psycopg.Connection, collection_id: int | None, limit: int | None) -> list[dict[str, Any]]:
    rows = conn.execute(
        f"""SELECT d.id, ph.id, {PHOTO_PATH}, d.face_bbox_width, d.face_bbox_height, d.quality_issue,
                   fe.embedding_model, near.cluster_id, near.person_id, near.first_name, near.last_name,
                   near.named, near.distance
            {_FROM}
            LEFT JOIN LATERAL (
                SELECT c.id AS cluster_id, p.id AS person_id, p.first_name, p.last_name, p.named,
                       (c.centroid_sum <=> fe.embedding) AS distance
                FROM cluster c JOIN person p ON p.id = c.person_id
                WHERE c.collection_id = ph.collection_id AND c.embedding_model = fe.embedding_model
                  AND NOT c.hidden AND NOT p.hidden AND c.centroid IS NOT NULL
                ORDER BY c.centroid <=> fe.embedding LIMIT 1) near ON true
            {_WHERE}
            ORDER BY d.face_bbox_width * d.face_bbox_height DESC, d.id  -- the largest first: easiest to recognise
            LIMIT %(limit)s""",  # noqa: S608 (fixed fragments; values are parameters)
        {"c": collection_id, "limit": limit},
    ).fetchall()
    faces = []
    for (
        face_id,
        photo_id,
        path,
        width,
        height,
        issue,
        model,
        cluster_id,
        person_id,
        first,
        last,
        named,
        distance,
    ) in rows:
        nearest = None
        if person_id is not None:
            nearest = {
                "person_id": person_id,
                "name": display_name(person_id, first, last, named),
                "cluster_id": cluster_id,
                "distance": round(float(distance), 3),
            }
        faces.append(
            {
                "id": face_id,
                "photo_id": photo_id,
                "photo_path": path,
                "size": [round(width), round(height)],
                "quality_issue": issue,
                "embedding_model": model,
                "nearest_person": nearest,
            }
        )
    return faces


def unsorted_count(conn: psycopg.Connection, collection_id: int | None) -> int:
    row = conn.execute(f"SELECT count(*) {_FROM} {_WHERE}", {"c": collection_id}).fetchone()
    assert row is not None
    return int(row[0])
