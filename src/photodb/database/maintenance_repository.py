"""SQL of cluster maintenance (photodb.maintenance): recounts, empty clusters, medoids, the
unassigned pool, must-links and merges. Functions take a connection, so each task composes its one
transaction; callers follow the lock order of database.clustering.locks (model lock shared, then
detections, then clusters, then persons, each in id order). Statements that must see what a lock
waited for run after the statement that took the lock (a statement's snapshot is taken when it
starts, so a lock and the re-check it needs are never one statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import psycopg

from photodb.database.clustering import centroids
from photodb.database.clustering.faces import array_of

#: The number of faces (detections with an embedding) per cluster, before its WHERE.
_MEMBERS = (
    "SELECT d.cluster_id, count(*) AS n FROM person_detection d JOIN face_embedding fe ON fe.person_detection_id = d.id"
)


def cluster_models(conn: psycopg.Connection, collection_id: int) -> list[str]:
    """Every embedding model with clusters or faces in the collection, in name order."""
    rows = conn.execute(
        """SELECT embedding_model FROM cluster WHERE collection_id = %(c)s
           UNION
           SELECT fe.embedding_model FROM face_embedding fe
           JOIN person_detection d ON d.id = fe.person_detection_id JOIN photo p ON p.id = d.photo_id
           WHERE p.collection_id = %(c)s
           ORDER BY 1""",
        {"c": collection_id},
    ).fetchall()
    return [r[0] for r in rows]


def lock_collection_clusters(conn: psycopg.Connection, collection_id: int) -> int:
    """Step 4 for a whole collection: every cluster row, in id order."""
    rows = conn.execute(
        "SELECT id FROM cluster WHERE collection_id = %s ORDER BY id FOR UPDATE", (collection_id,)
    ).fetchall()
    return len(rows)


def recompute_centroids(conn: psycopg.Connection, collection_id: int) -> int:
    """Sum and count every cluster's members again (the caller holds the cluster locks, so no face
    joins or leaves meanwhile). Only clusters whose count, sum (beyond float32 rounding: 1e-4 per
    face, as an L2 distance) or centroid (beyond the centroid tolerance) differ are written."""
    return conn.execute(
        f"""WITH s AS (
                SELECT c.id, count(fe.person_detection_id)::int AS n, sum(fe.embedding) AS total
                FROM cluster c
                LEFT JOIN person_detection d ON d.cluster_id = c.id
                LEFT JOIN face_embedding fe ON fe.person_detection_id = d.id
                WHERE c.collection_id = %s GROUP BY c.id)
            UPDATE cluster c SET face_count = s.n, centroid_sum = s.total, updated_at = now(),
                centroid = {centroids.centroid_after("s.total")}
            FROM s
            WHERE c.id = s.id AND (
                c.face_count <> s.n
                OR (c.centroid_sum IS NULL) <> (s.total IS NULL)
                OR coalesce(c.centroid_sum <-> s.total > 1e-4 * greatest(s.n, 1), false)
                OR cluster_centroid_moved(c.centroid, s.total))""",  # noqa: S608 (constants only)
        (collection_id,),
    ).rowcount


def empty_cluster_ids(conn: psycopg.Connection, collection_id: int, *, lock: bool) -> list[int]:
    """Clusters without faces that may go: never a verified one or one linked to a person."""
    rows = conn.execute(
        f"""SELECT c.id FROM cluster c
            WHERE c.collection_id = %s AND NOT c.verified AND c.person_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.cluster_id = c.id)
            ORDER BY c.id {"FOR UPDATE" if lock else ""}""",  # noqa: S608 (constants only)
        (collection_id,),
    ).fetchall()
    return [r[0] for r in rows]


def delete_empty_clusters(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> int:
    """Delete these (locked) clusters if they are still empty, unverified and without a person."""
    return conn.execute(
        """DELETE FROM cluster c WHERE c.id = ANY(%s) AND NOT c.verified AND c.person_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.cluster_id = c.id)""",
        (list(cluster_ids),),
    ).rowcount


def miscounted_cluster_ids(conn: psycopg.Connection, collection_id: int) -> list[int]:
    """Clusters whose face_count is not their number of faces."""
    rows = conn.execute(
        f"""SELECT c.id FROM cluster c
            LEFT JOIN ({_MEMBERS} WHERE d.cluster_id IS NOT NULL GROUP BY d.cluster_id) m ON m.cluster_id = c.id
            WHERE c.collection_id = %s AND c.face_count <> coalesce(m.n, 0) ORDER BY c.id""",  # noqa: S608
        (collection_id,),
    ).fetchall()
    return [r[0] for r in rows]


def broken_medoid_cluster_ids(conn: psycopg.Connection, collection_id: int) -> list[int]:
    """Clusters with faces whose medoid or representative is missing or no longer one of them."""
    rows = conn.execute(
        """SELECT c.id FROM cluster c
           WHERE c.collection_id = %s AND c.face_count > 0 AND (
               NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.id = c.medoid_detection_id AND d.cluster_id = c.id)
               OR NOT EXISTS (SELECT 1 FROM person_detection d
                              WHERE d.id = c.representative_detection_id AND d.cluster_id = c.id))
           ORDER BY c.id""",
        (collection_id,),
    ).fetchall()
    return [r[0] for r in rows]


def stale_medoid_cluster_ids(
    conn: psycopg.Connection, collection_id: int, share: float, among: Sequence[int] | None = None
) -> list[int]:
    """Clusters (of the collection, or of `among`) whose medoid is due: none yet, or face_count
    moved by at least `share` of the count at the last medoid (and by one face or more) since."""
    rows = conn.execute(
        """SELECT c.id FROM cluster c
           WHERE c.collection_id = %s AND (%s::bigint[] IS NULL OR c.id = ANY(%s)) AND c.face_count > 0 AND (
               c.medoid_detection_id IS NULL
               OR abs(c.face_count - c.face_count_at_last_medoid)
                  >= greatest(1, ceil(%s * c.face_count_at_last_medoid)))
           ORDER BY c.id""",
        (collection_id, among, among, share),
    ).fetchall()
    return [r[0] for r in rows]


def lock_clusters(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> list[int]:
    rows = conn.execute(
        "SELECT id FROM cluster WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (sorted(set(cluster_ids)),)
    ).fetchall()
    return [r[0] for r in rows]


def recount(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> int:
    return centroids.recount_clusters(conn, sorted(cluster_ids))


def set_medoids(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> int:
    """Set the medoid of these (locked) clusters; returns how many medoids changed.

    For unit embeddings the member with the smallest summed cosine distance to the others is the
    one nearest (cosine) to the sum of all members, so the medoid is exact without pairwise
    distances. The representative follows the medoid unless it is another member (a choice kept)."""
    return conn.execute(
        """WITH best AS (
               SELECT DISTINCT ON (d.cluster_id) d.cluster_id, d.id
               FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id
               JOIN cluster c ON c.id = d.cluster_id
               WHERE d.cluster_id = ANY(%s)
               ORDER BY d.cluster_id, fe.embedding <=> c.centroid_sum, d.id),
           old AS (SELECT c.id, c.medoid_detection_id FROM cluster c WHERE c.id = ANY(%s)),
           done AS (
               UPDATE cluster c SET medoid_detection_id = best.id, face_count_at_last_medoid = c.face_count,
                   representative_detection_id = CASE
                       WHEN c.representative_detection_id IS DISTINCT FROM c.medoid_detection_id
                            AND EXISTS (SELECT 1 FROM person_detection r
                                        WHERE r.id = c.representative_detection_id AND r.cluster_id = c.id)
                       THEN c.representative_detection_id ELSE best.id END,
                   updated_at = now()
               FROM best WHERE c.id = best.cluster_id
               RETURNING c.id, best.id AS medoid)
           SELECT count(*) FROM done JOIN old ON old.id = done.id
           WHERE old.medoid_detection_id IS DISTINCT FROM done.medoid""",
        (list(cluster_ids), list(cluster_ids)),
    ).fetchone()[0]  # type: ignore[index]


def analyze_tables(conn: psycopg.Connection) -> int:
    """Fresh planner statistics for the tables clustering reads (ANALYZE may run in a transaction)."""
    tables = ("cluster", "person_detection", "face_embedding")
    for table in tables:
        conn.execute(f"ANALYZE {table}")
    return len(tables)


def old_unassigned_faces(conn: psycopg.Connection, collection_id: int | None, older_than: timedelta) -> list[int]:
    """The faces the weekly cleanup turns into singleton clusters: in the unassigned pool (no
    cluster, status 'unassigned': never a 'manual' or 'pending' face) for at least `older_than`
    (zero: all of them), in id order. The one selection of that pool: a filter on which faces may
    form a cluster belongs here."""
    rows = conn.execute(
        """SELECT d.id FROM person_detection d
           JOIN face_embedding fe ON fe.person_detection_id = d.id
           JOIN photo p ON p.id = d.photo_id
           WHERE (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
             AND d.cluster_id IS NULL AND d.cluster_status = 'unassigned' AND d.quality_issue IS NULL
             AND coalesce(d.unassigned_since, '-infinity') <= now() - %(age)s::interval
           ORDER BY d.id""",
        {"c": collection_id, "age": older_than},
    ).fetchall()
    return [r[0] for r in rows]


def lock_detections(conn: psycopg.Connection, detection_ids: Sequence[int]) -> list[int]:
    """Step 3: these detection rows, in id order; returns those that exist."""
    rows = conn.execute(
        "SELECT id FROM person_detection WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (sorted(set(detection_ids)),)
    ).fetchall()
    return [r[0] for r in rows]


def make_singletons(conn: psycopg.Connection, detection_ids: Sequence[int], *, by: str) -> int:
    """One new cluster per (locked) face still in the unassigned pool: the face is its sum,
    centroid, medoid and representative."""
    return conn.execute(
        """WITH made AS (
               INSERT INTO cluster (collection_id, embedding_model, face_count, centroid_sum, centroid,
                                    medoid_detection_id, representative_detection_id,
                                    face_count_at_last_medoid, created_by)
               SELECT p.collection_id, fe.embedding_model, 1, fe.embedding, l2_normalize(fe.embedding),
                      d.id, d.id, 1, %s
               FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id
               JOIN photo p ON p.id = d.photo_id
               WHERE d.id = ANY(%s) AND d.cluster_id IS NULL AND d.cluster_status = 'unassigned'
               ORDER BY d.id
               RETURNING id, medoid_detection_id)
           UPDATE person_detection d SET cluster_id = made.id, cluster_status = 'auto',
               cluster_confidence = NULL, unassigned_since = NULL
           FROM made WHERE d.id = made.medoid_detection_id""",
        (by, list(detection_ids)),
    ).rowcount


@dataclass(frozen=True)
class ClusterRow:
    id: int
    embedding_model: str
    face_count: int
    verified: bool
    hidden: bool
    person_id: int | None


_CLUSTER_COLUMNS = "c.id, c.embedding_model, c.face_count, c.verified, c.hidden, c.person_id"


def clusters(conn: psycopg.Connection, collection_id: int) -> dict[int, ClusterRow]:
    rows = conn.execute(
        f"SELECT {_CLUSTER_COLUMNS} FROM cluster c WHERE c.collection_id = %s ORDER BY c.id",  # noqa: S608
        (collection_id,),
    ).fetchall()
    return {r[0]: ClusterRow(*r) for r in rows}


def cluster_sums(conn: psycopg.Connection, collection_id: int, model: str) -> tuple[list[int], np.ndarray]:
    """Ids and centroid sums of the model's visible clusters with faces (binary transfer)."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            """SELECT id, centroid_sum FROM cluster
               WHERE collection_id = %s AND embedding_model = %s AND NOT hidden
                 AND face_count > 0 AND centroid_sum IS NOT NULL ORDER BY id""",
            (collection_id, model),
        )
        rows = cur.fetchall()
    if not rows:
        return [], np.zeros((0, 512), np.float64)
    return [r[0] for r in rows], np.vstack([array_of(r[1]) for r in rows]).astype(np.float64)


def member_embeddings(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Each cluster's face embeddings, unit length, one row per face (binary transfer)."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            """SELECT d.cluster_id, f.embedding FROM person_detection d
               JOIN face_embedding f ON f.person_detection_id = d.id
               WHERE d.cluster_id = ANY(%s) ORDER BY d.cluster_id, d.id""",
            (list(cluster_ids),),
        )
        rows = cur.fetchall()
    grouped: dict[int, list[np.ndarray]] = {}
    for cluster_id, embedding in rows:
        grouped.setdefault(cluster_id, []).append(array_of(embedding))
    found = {}
    for cluster_id, vectors in grouped.items():
        matrix = np.vstack(vectors).astype(np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        found[cluster_id] = matrix / np.where(norms > 0, norms, 1.0)
    return found


#: The columns of health_figures' query, in its order.
HEALTH_FIGURES = (
    "total_clusters",
    "empty_clusters",
    "clusters_without_centroids",
    "clusters_without_medoids",
    "avg_cluster_size",
    "min_cluster_size",
    "max_cluster_size",
    "total_faces",
    "unclustered_faces",
    "must_link_count",
    "cannot_link_count",
    "verified_clusters",
    "unassigned_pool_size",
    "removable_empty_clusters",
    "face_count_mismatches",
    "pending_review_candidates",
    "persons_without_name",
)


def health_figures(conn: psycopg.Connection, collection_id: int | None) -> dict[str, object]:
    """The figures of `photodb-maintenance health` (the spec's dict, then more), read in one
    snapshot. A cluster's size is its number of faces (detections with an embedding); sizes are
    over clusters with faces; a cluster "without a centroid" or "without a medoid" has faces."""
    scope = {"c": collection_id}
    row = conn.execute(
        """WITH members AS (
               SELECT d.cluster_id, count(*) AS n FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id
               WHERE d.cluster_id IS NOT NULL GROUP BY d.cluster_id),
           cl AS (
               SELECT c.id, c.face_count, c.verified, c.person_id, c.centroid IS NULL AS no_centroid,
                      c.medoid_detection_id IS NULL AS no_medoid, coalesce(m.n, 0) AS n
               FROM cluster c LEFT JOIN members m ON m.cluster_id = c.id
               WHERE %(c)s::bigint IS NULL OR c.collection_id = %(c)s),
           faces AS (
               SELECT d.id, d.cluster_id, d.cluster_status FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id JOIN photo p ON p.id = d.photo_id
               WHERE %(c)s::bigint IS NULL OR p.collection_id = %(c)s)
           SELECT
               (SELECT count(*) FROM cl),
               (SELECT count(*) FROM cl WHERE n = 0),
               (SELECT count(*) FROM cl WHERE n > 0 AND no_centroid),
               (SELECT count(*) FROM cl WHERE n > 0 AND no_medoid),
               (SELECT coalesce(avg(n), 0)::float8 FROM cl WHERE n > 0),
               (SELECT coalesce(min(n), 0) FROM cl WHERE n > 0),
               (SELECT coalesce(max(n), 0) FROM cl WHERE n > 0),
               (SELECT count(*) FROM faces),
               (SELECT count(*) FROM faces WHERE cluster_id IS NULL),
               (SELECT count(*) FROM must_link l JOIN person_detection d ON d.id = l.detection_id_1
                JOIN photo p ON p.id = d.photo_id WHERE %(c)s::bigint IS NULL OR p.collection_id = %(c)s),
               (SELECT count(*) FROM cannot_link l JOIN person_detection d ON d.id = l.detection_id_1
                JOIN photo p ON p.id = d.photo_id WHERE %(c)s::bigint IS NULL OR p.collection_id = %(c)s),
               (SELECT count(*) FROM cl WHERE verified),
               (SELECT count(*) FROM faces WHERE cluster_id IS NULL AND cluster_status = 'unassigned'),
               (SELECT count(*) FROM cl WHERE n = 0 AND NOT verified AND person_id IS NULL),
               (SELECT count(*) FROM cl WHERE face_count <> n),
               (SELECT count(*) FROM face_match_candidate f JOIN faces ON faces.id = f.detection_id
                WHERE f.status = 'pending'),
               (SELECT count(*) FROM person p
                WHERE (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
                  AND NOT p.named)""",
        scope,
    ).fetchone()
    assert row is not None
    figures: dict[str, object] = dict(zip(HEALTH_FIGURES, row, strict=True))
    figures["avg_cluster_size"] = round(float(row[4]), 3)
    per_model = conn.execute(
        """SELECT fe.embedding_model, count(*) FROM face_embedding fe
           JOIN person_detection d ON d.id = fe.person_detection_id JOIN photo p ON p.id = d.photo_id
           WHERE %(c)s::bigint IS NULL OR p.collection_id = %(c)s GROUP BY 1 ORDER BY 1""",
        scope,
    ).fetchall()
    figures["faces_per_model"] = {model: n for model, n in per_model}
    return figures
