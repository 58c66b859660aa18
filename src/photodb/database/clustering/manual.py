"""Manual edits: moving one face between clusters by hand."""

from __future__ import annotations

import numpy as np
import psycopg

from photodb.database.clustering.faces import FaceRow, array_of


def lock_face(conn: psycopg.Connection, detection_id: int) -> FaceRow | None:
    row = conn.execute(
        """SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding, pd.cluster_id,
                  pd.cluster_status
           FROM person_detection pd
           JOIN face_embedding fe ON fe.person_detection_id = pd.id
           JOIN photo p ON p.id = pd.photo_id
           WHERE pd.id = %s FOR UPDATE OF pd""",
        (detection_id,),
    ).fetchone()
    if row is None:
        return None
    return FaceRow(row[0], row[1], row[2], array_of(row[3]).astype(np.float32), row[4], row[5])


def lock_cluster(conn: psycopg.Connection, cluster_id: int) -> tuple[int, np.ndarray | None] | None:
    row = conn.execute("SELECT face_count, centroid FROM cluster WHERE id = %s FOR UPDATE", (cluster_id,)).fetchone()
    if row is None:
        return None
    return row[0], None if row[1] is None else array_of(row[1])


def add_face_to_cluster(
    conn: psycopg.Connection, detection_id: int, cluster_id: int, centroid: np.ndarray, confidence: float | None
) -> None:
    conn.execute(
        "UPDATE cluster SET face_count = face_count + 1, centroid = %s, updated_at = now() WHERE id = %s",
        (centroid, cluster_id),
    )
    conn.execute(
        """UPDATE person_detection SET cluster_id = %s, cluster_status = 'auto',
               cluster_confidence = %s, unassigned_since = NULL WHERE id = %s""",
        (cluster_id, confidence, detection_id),
    )


def remove_face_from_cluster(conn: psycopg.Connection, cluster_id: int, centroid: np.ndarray | None) -> None:
    conn.execute(
        """UPDATE cluster SET face_count = greatest(face_count - 1, 0),
               centroid = coalesce(%s, centroid), updated_at = now() WHERE id = %s""",
        (centroid, cluster_id),
    )


def set_detection_cluster(conn: psycopg.Connection, detection_id: int, cluster_id: int | None, status: str) -> None:
    conn.execute(
        """UPDATE person_detection SET cluster_id = %s, cluster_status = %s, cluster_confidence = NULL,
               unassigned_since = CASE WHEN %s::bigint IS NULL THEN coalesce(unassigned_since, now()) END
           WHERE id = %s""",
        (cluster_id, status, cluster_id, detection_id),
    )


def delete_cluster_if_empty(conn: psycopg.Connection, cluster_id: int) -> bool:
    cur = conn.execute(
        """DELETE FROM cluster c WHERE c.id = %s AND NOT c.verified AND c.person_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.cluster_id = c.id)""",
        (cluster_id,),
    )
    return cur.rowcount > 0
