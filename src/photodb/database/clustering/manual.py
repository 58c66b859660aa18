"""Manual edits: moving one face between clusters by hand (the sums follow in centroids)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg

from photodb.database.clustering import centroids, locks
from photodb.database.clustering.faces import FaceRow, array_of


def lock_face(conn: psycopg.Connection, detection_id: int) -> FaceRow | None:
    """Step 3 of the lock order: the detection row, with what a move needs to know."""
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


def set_detection_cluster(conn: psycopg.Connection, detection_id: int, cluster_id: int | None, status: str) -> None:
    conn.execute(
        """UPDATE person_detection SET cluster_id = %s, cluster_status = %s, cluster_confidence = NULL,
               quality_issue = NULL,
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


def release_faces(conn: psycopg.Connection, detection_ids: Sequence[int]) -> None:
    """Take faces out of their clusters, back to waiting for an assignment (sums and counts follow).
    The caller holds the model lock; the rows are locked here in the one order."""
    rows = conn.execute(
        "SELECT cluster_id FROM person_detection WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (list(detection_ids),)
    ).fetchall()
    locks.lock_clusters(conn, [r[0] for r in rows if r[0] is not None])
    centroids.subtract_detections(conn, detection_ids)
    conn.execute(
        """UPDATE person_detection SET cluster_id = NULL, cluster_status = NULL, cluster_confidence = NULL,
               unassigned_since = NULL WHERE id = ANY(%s)""",
        (list(detection_ids),),
    )
    conn.execute("DELETE FROM face_match_candidate WHERE detection_id = ANY(%s)", (list(detection_ids),))
