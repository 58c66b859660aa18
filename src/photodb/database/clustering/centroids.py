"""Cluster centroids: one representation, kept exact by every writer.

`cluster.centroid_sum` is the unnormalised sum of the member embeddings and `face_count` their
number. Adding a face adds its embedding, removing one subtracts it, and a recount sums the members
again: the same operation each time (float32 sums; they agree to rounding). `cluster.centroid`,
the unit vector the HNSW index searches, follows from the sum: it is rewritten only when the
normalised sum has moved more than a tolerance (cosine distance) away from it, so most
assignments to a large cluster are HOT updates that add no index entry (the sum is stored in the
heap row, outside TOAST); the stored centroid is never further than that from the exact one.
The rule and the tolerance are written once, in the database functions cluster_centroid_moved,
cluster_centroid_after and cluster_sum_plus (migration 0006), which the assignment function uses
too. The centroid is settled by its own statement (`settle_centroids`) after the sum changed: an UPDATE
that assigns the column any expression, even one that yields the old value, is never HOT.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg


def tolerance(conn: psycopg.Connection) -> float:
    """Largest cosine distance between a stored centroid and its exact normalised sum."""
    row = conn.execute("SELECT cluster_centroid_tolerance()").fetchone()
    assert row is not None
    return float(row[0])


def centroid_after(new_sum: str, old_centroid: str = "c.centroid") -> str:
    """SQL for the centroid that goes with `new_sum` (an SQL expression, NULL for an empty cluster):
    the old one while it is within the tolerance, else the normalised sum."""
    return f"cluster_centroid_after({old_centroid}, {new_sum})"


#: The sum after adding the embedding `x` (an SQL expression) to cluster row `c`.
def sum_plus(x: str) -> str:
    return f"cluster_sum_plus(c.centroid_sum, c.face_count, {x})"


#: The sum after removing `count` faces whose embeddings sum to `total` from cluster row `c`.
def sum_minus(total: str, count: str) -> str:
    return f"CASE WHEN c.face_count - {count} <= 0 THEN NULL ELSE c.centroid_sum - {total} END"


def recount_clusters(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> int:
    """Recompute face_count, centroid_sum and centroid of these clusters from their members."""
    if not cluster_ids:
        return 0
    return conn.execute(
        f"""UPDATE cluster c SET face_count = s.n, centroid_sum = s.total, updated_at = now(),
                centroid = {centroid_after("s.total")}
            FROM (SELECT k.id, count(fe.person_detection_id) AS n, sum(fe.embedding) AS total
                  FROM unnest(%s::bigint[]) AS k(id)
                  LEFT JOIN person_detection d ON d.cluster_id = k.id
                  LEFT JOIN face_embedding fe ON fe.person_detection_id = d.id
                  GROUP BY k.id) s
            WHERE c.id = s.id""",  # noqa: S608 (only constants are formatted in)
        (list(cluster_ids),),
    ).rowcount


def subtract_detections(conn: psycopg.Connection, detection_ids: Sequence[int]) -> list[int]:
    """Take these detections out of their clusters' sums and counts (they are about to be deleted
    or moved; their rows must already be locked, and then their clusters'). Returns the clusters."""
    rows = conn.execute(
        f"""UPDATE cluster c SET face_count = greatest(c.face_count - s.n, 0), updated_at = now(),
                centroid_sum = {sum_minus("s.total", "s.n")}
            FROM (SELECT d.cluster_id, count(*) AS n, sum(fe.embedding) AS total
                  FROM person_detection d JOIN face_embedding fe ON fe.person_detection_id = d.id
                  WHERE d.id = ANY(%s) AND d.cluster_id IS NOT NULL GROUP BY d.cluster_id) s
            WHERE c.id = s.cluster_id
            RETURNING c.id""",  # noqa: S608 (only constants are formatted in)
        (list(detection_ids),),
    ).fetchall()
    changed = sorted(r[0] for r in rows)
    settle_centroids(conn, changed)
    return changed


def settle_centroids(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> None:
    """Rewrite the centroid of these clusters whose normalised sum has moved beyond the tolerance,
    and only those (their sums already changed, in this transaction)."""
    conn.execute(
        """UPDATE cluster c SET centroid = l2_normalize(c.centroid_sum)
           WHERE c.id = ANY(%s) AND cluster_centroid_moved(c.centroid, c.centroid_sum)""",
        (list(cluster_ids),),
    )


def add_detection(conn: psycopg.Connection, detection_id: int, cluster_id: int) -> None:
    """Fold one detection's embedding into a (locked) cluster's sum and count."""
    conn.execute(
        f"""UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                centroid_sum = {sum_plus("fe.embedding")}
            FROM face_embedding fe WHERE c.id = %s AND fe.person_detection_id = %s""",  # noqa: S608
        (cluster_id, detection_id),
    )
    settle_centroids(conn, [cluster_id])
