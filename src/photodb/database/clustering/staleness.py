"""What the staleness check counts: faces added since a run, faces without a cluster."""

from __future__ import annotations

import psycopg


def faces_after(conn: psycopg.Connection, collection_id: int, model: str, detection_id: int) -> int:
    row = conn.execute(
        """SELECT count(*) FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s AND fe.embedding_model = %s AND pd.id > %s""",
        (collection_id, model, detection_id),
    ).fetchone()
    assert row is not None
    return row[0]


def unassigned_count(conn: psycopg.Connection, collection_id: int, model: str) -> int:
    row = conn.execute(
        """SELECT count(*) FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s AND fe.embedding_model = %s AND pd.cluster_id IS NULL""",
        (collection_id, model),
    ).fetchone()
    assert row is not None
    return row[0]
