"""Cluster centroids: one representation, kept exact by every writer.

`cluster.centroid_sum` is the unnormalised sum of the member embeddings and `face_count` their
number. Adding a face adds its embedding, removing one subtracts it, and a recount sums the members
again: the same operation each time (float32 sums; they agree to rounding). `cluster.centroid`,
the unit vector the HNSW index searches, follows from the sum: it is rewritten only when the
normalised sum has moved more than CENTROID_TOLERANCE (cosine distance) away from it, so most
assignments to a large cluster are HOT updates that add no index entry (the sum is stored in the
heap row, outside TOAST); the stored centroid is never further than that from the exact one.
The centroid is settled by its own statement (`settle_sql`) after the sum changed: an UPDATE that
assigns the column any expression, even one that yields the old value, is never HOT.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

#: Largest cosine distance between the stored centroid and the exact normalised sum: 1e-4 is an
#: angle of 0.014 rad. Tier 2 only finds its candidates by the stored centroid and measures them
#: against the exact sum, so this bounds how far a candidate's rank can shift, never a decision.
CENTROID_TOLERANCE = 1e-4


def centroid_after(new_sum: str, old_centroid: str = "c.centroid") -> str:
    """SQL for the centroid that goes with `new_sum` (an SQL expression, NULL for an empty cluster):
    the old one while it is within the tolerance, else the normalised sum."""
    return f"""CASE WHEN ({new_sum}) IS NULL THEN NULL
                    WHEN {old_centroid} IS NULL OR ({old_centroid} <=> ({new_sum})) > {CENTROID_TOLERANCE}
                    THEN l2_normalize({new_sum}) ELSE {old_centroid} END"""


#: The sum after adding the embedding `x` (an SQL expression) to cluster row `c`.
def sum_plus(x: str) -> str:
    return f"CASE WHEN c.centroid_sum IS NULL OR c.face_count <= 0 THEN {x} ELSE c.centroid_sum + {x} END"


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


def settle_sql(which: str) -> str:
    """SQL that rewrites the centroid of the clusters `which` (an SQL condition on `c`) whose
    normalised sum has moved beyond the tolerance, and only those."""
    return f"""UPDATE cluster c
        SET centroid = CASE WHEN c.centroid_sum IS NOT NULL THEN l2_normalize(c.centroid_sum) END
        WHERE ({which}) AND CASE WHEN c.centroid IS NULL OR c.centroid_sum IS NULL
                                 THEN (c.centroid IS NULL) <> (c.centroid_sum IS NULL)
                                 ELSE (c.centroid <=> c.centroid_sum) > {CENTROID_TOLERANCE} END"""  # noqa: S608


def settle_centroids(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> None:
    conn.execute(settle_sql("c.id = ANY(%s)"), (list(cluster_ids),))


def add_detection(conn: psycopg.Connection, detection_id: int, cluster_id: int) -> None:
    """Fold one detection's embedding into a (locked) cluster's sum and count."""
    conn.execute(
        f"""UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
                centroid_sum = {sum_plus("fe.embedding")}
            FROM face_embedding fe WHERE c.id = %s AND fe.person_detection_id = %s""",  # noqa: S608
        (cluster_id, detection_id),
    )
    settle_centroids(conn, [cluster_id])
