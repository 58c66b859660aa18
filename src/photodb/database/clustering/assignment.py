"""Incremental assignment: one face into the active run's clusters, in one statement.

A face never joins a cluster that holds a face it has a cannot-link with, nor one that holds
another face of its own photo (two faces in one photo are two people): such clusters are taken
out of the choice, so tier 1's cluster falls through to tier 2 and tier 2 takes the next cluster
whose ball holds the face, or leaves it unassigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from photodb.database.clustering import centroids
from photodb.database.clustering.faces import FaceRow, array_of


@dataclass(frozen=True)
class NewFace(FaceRow):
    """A face read (without locks) for incremental assignment, with its model's active run."""

    run_id: int | None
    photo_id: int


def faces_to_assign(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, NewFace]:
    """Every face asked for, with its embedding and active run, in one query (no locks)."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            """SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding, pd.cluster_id,
                      pd.cluster_status, r.id, pd.photo_id
               FROM person_detection pd
               JOIN face_embedding fe ON fe.person_detection_id = pd.id
               JOIN photo p ON p.id = pd.photo_id
               LEFT JOIN hdbscan_run r ON r.is_active AND r.collection_id = p.collection_id
                                      AND r.embedding_model = fe.embedding_model
               WHERE pd.id = ANY(%s)""",
            (list(detection_ids),),
        )
        return {r[0]: NewFace(r[0], r[1], r[2], array_of(r[3]).astype(np.float32), r[4], r[5], r[6], r[7]) for r in cur}


#: The face, locked; skipped (no row) once it has a cluster or a manual or pending decision.
_ASSIGN_FACE = """
    face AS MATERIALIZED (
        SELECT pd.id, fe.embedding FROM person_detection pd
        JOIN face_embedding fe ON fe.person_detection_id = pd.id
        WHERE pd.id = %(det)s AND pd.cluster_id IS NULL
          AND (pd.cluster_status IS NULL OR pd.cluster_status NOT IN ('manual', 'pending'))
        FOR UPDATE OF pd
    ),
    blocked AS MATERIALIZED (
        SELECT d.cluster_id FROM cannot_link l
        JOIN person_detection d
          ON d.id = CASE WHEN l.detection_id_1 = %(det)s THEN l.detection_id_2 ELSE l.detection_id_1 END
        WHERE (l.detection_id_1 = %(det)s OR l.detection_id_2 = %(det)s) AND d.cluster_id IS NOT NULL
        UNION
        SELECT d.cluster_id FROM person_detection d
        WHERE d.photo_id = %(photo)s AND d.id <> %(det)s AND d.cluster_id IS NOT NULL
    ),"""


#: Tier 1: the cluster the condensed tree chose, unless it is blocked.
_TIER1_CHOICE = """
    ambiguous AS (SELECT false AS yes),
    choice AS (
        SELECT %(cluster)s::bigint AS cluster_id, %(confidence)s::float8 AS confidence, 1 AS rank
        WHERE %(cluster)s::bigint NOT IN (SELECT cluster_id FROM blocked)
    ),"""


#: Tier 2: the nearest centroids (HNSW, filtered by collection and model), found by the indexed
#: centroid and measured against the exact sum (cosine distance ignores its length), so the indexed
#: centroid's tolerance never changes a decision, only, rarely, which candidates make the list. In
#: the heap row, the sum is also cheaper to read than the TOASTed centroid. A face inside two
#: epsilon balls by nearly the same margin is ambiguous and goes to review. epsilon is the
#: cluster's 1/lambda_birth, never more than the model's threshold (which also serves clusters
#: without a lambda): LEAST ignores the NULL of a missing lambda.
_TIER2_CHOICE = """
    near AS MATERIALIZED (
        SELECT c.id, c.centroid_sum <=> %(embedding)b AS distance,
               least(CASE WHEN c.lambda_birth > 0 THEN power(1.0 / c.lambda_birth, 2) / 2 END,
                     %(threshold)s::float8) AS epsilon
        FROM cluster c
        WHERE c.collection_id = %(collection)s AND c.embedding_model = %(model)s AND NOT c.hidden
        ORDER BY c.centroid <=> %(embedding)b LIMIT %(neighbours)s
    ),
    within AS MATERIALIZED (
        SELECT id, distance, epsilon, row_number() OVER (ORDER BY distance, id) AS rank FROM near
        WHERE distance < epsilon AND id NOT IN (SELECT cluster_id FROM blocked)
    ),
    ambiguous AS MATERIALIZED (
        SELECT EXISTS (SELECT 1 FROM within a JOIN within b ON a.rank = 1 AND b.rank = 2
                       WHERE b.distance - a.distance < %(margin)s) AS yes
    ),
    choice AS (
        SELECT w.id AS cluster_id, greatest(0.0, 1.0 - w.distance / w.epsilon) AS confidence, w.rank
        FROM within w, ambiguous a WHERE NOT a.yes
    ),
    candidates AS (
        INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
        SELECT f.id, w.id, 1.0 - w.distance FROM face f, within w, ambiguous a WHERE a.yes
        ON CONFLICT (detection_id, cluster_id) DO UPDATE SET similarity = EXCLUDED.similarity
        RETURNING cluster_id
    ),"""


#: Lock the best surviving choice (a cluster deleted meanwhile is skipped), add the face to its sum
#: and count (centroids), and record the outcome on the detection.
_ASSIGN_WRITE = """
    target AS MATERIALIZED (
        SELECT c.id, ch.confidence FROM choice ch JOIN cluster c ON c.id = ch.cluster_id
        WHERE EXISTS (SELECT 1 FROM face) AND NOT c.hidden
        ORDER BY ch.rank LIMIT 1
        FOR UPDATE OF c
    ),
    joined AS (
        UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
            centroid_sum = {plus}
        FROM target t, face f WHERE c.id = t.id
        RETURNING c.id, t.confidence
    ),
    outcome AS (
        SELECT f.id, j.id AS cluster_id, j.confidence,
               CASE WHEN j.id IS NOT NULL THEN 'auto' WHEN a.yes THEN 'pending' ELSE 'unassigned' END AS status
        FROM face f CROSS JOIN ambiguous a LEFT JOIN joined j ON true
    ),
    detection AS (
        UPDATE person_detection d SET cluster_id = o.cluster_id, cluster_status = o.status,
            cluster_confidence = CASE WHEN o.cluster_id IS NOT NULL THEN o.confidence
                                      ELSE d.cluster_confidence END,
            unassigned_since = CASE WHEN o.status = 'unassigned' THEN coalesce(d.unassigned_since, now()) END
        FROM outcome o WHERE d.id = o.id AND (o.status <> 'unassigned' OR %(final)s)
        RETURNING o.status, o.cluster_id
    )
    SELECT EXISTS (SELECT 1 FROM face), (SELECT status FROM detection), (SELECT cluster_id FROM detection)
""".replace("{plus}", centroids.sum_plus("f.embedding"))

#: Run after the assignment, in its transaction: the joined cluster's centroid, if it moved.
_SETTLE_SQL = centroids.settle_sql("c.id = (SELECT d.cluster_id FROM person_detection d WHERE d.id = %s)")


ASSIGN_TIER1_SQL = "WITH" + _ASSIGN_FACE + _TIER1_CHOICE + _ASSIGN_WRITE


ASSIGN_TIER2_SQL = "WITH" + _ASSIGN_FACE + _TIER2_CHOICE + _ASSIGN_WRITE


@dataclass(frozen=True)
class Assignment:
    found: bool  # the face was still waiting for a cluster when locked
    status: str | None  # 'auto', 'pending', 'unassigned', or None when nothing was written
    cluster_id: int | None


#: Everything the assignment statement needs before it runs, as one statement so that the
#: statement's snapshot follows whatever the locks waited for: the model lock (shared) and the
#: photo lock, steps 1 and 2 of the lock order with the keys of locks.lock_model and lock_photo,
#: and transaction-local settings only (PgBouncer). An assignment is derived data that
#: assign_unclustered redoes: a crash may lose the last few milliseconds of them (never
#: consistency), so the commit does not wait for the WAL flush.
_PRELUDE_SQL = """
    SELECT pg_advisory_xact_lock_shared(%s::int, hashtext(%s)), pg_advisory_xact_lock(%s::bigint),
           set_config('synchronous_commit', 'off', true), set_config('hnsw.ef_search', %s, true),
           set_config('hnsw.iterative_scan', 'strict_order', true), set_config('enable_seqscan', 'off', true)"""


def assign_face(
    conn: psycopg.Connection,
    face: NewFace,
    *,
    cluster_id: int | None,
    confidence: float | None,
    threshold: float,
    margin: float,
    neighbours: int,
    ef_search: int,
    final: bool = True,
) -> Assignment:
    """Assign one face in one short transaction and one network round trip.

    With `cluster_id` (tier 1) the face joins that cluster unless it is blocked (cannot-link, same
    photo) or gone, in which case nothing is written (found and status None: try tier 2). Without
    it (tier 2) the nearest centroids decide, and with `final` a face no ball holds is marked
    unassigned. The locks follow database.clustering.locks: model, photo, detection, cluster.
    `conn` must be in autocommit mode; BEGIN, prelude, statement and COMMIT are pipelined.
    """
    params: dict[str, Any] = {"det": face.id, "photo": face.photo_id, "final": final}
    if cluster_id is not None:
        sql = ASSIGN_TIER1_SQL
        params |= {"cluster": cluster_id, "confidence": confidence}
    else:
        sql = ASSIGN_TIER2_SQL
        params |= {
            "embedding": face.embedding,
            "collection": face.collection_id,
            "model": face.embedding_model,
            "threshold": threshold,
            "margin": margin,
            "neighbours": neighbours,
        }
    with conn.pipeline(), conn.transaction():
        conn.execute(_PRELUDE_SQL, (face.collection_id, face.embedding_model, face.photo_id, str(ef_search)))
        cur = conn.execute(sql, params)
        conn.execute(_SETTLE_SQL, (face.id,))
    row = cur.fetchone()
    assert row is not None
    return Assignment(bool(row[0]), row[1], row[2])


def nearest_settings(conn: psycopg.Connection, ef_search: int) -> None:
    """Transaction-local settings of tier 2's centroid lookup (the same as the prelude's): exact
    distance order even when other collections' or models' centroids are skipped, and the HNSW
    index even where the planner prices a scan of a few thousand centroids below it."""
    conn.execute(
        """SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'strict_order', true),
                  set_config('enable_seqscan', 'off', true)""",
        (str(ef_search),),
    )


_NEAREST_SQL = """SELECT c.id, c.centroid <=> %(embedding)b FROM cluster c
    WHERE c.collection_id = %(collection)s AND c.embedding_model = %(model)s AND NOT c.hidden
    ORDER BY c.centroid <=> %(embedding)b LIMIT %(neighbours)s"""


def explain_nearest(
    conn: psycopg.Connection, collection_id: int, model: str, embedding: np.ndarray, ef_search: int = 40
) -> str:
    """The plan of tier 2's centroid lookup (the benchmark checks that it uses the HNSW index)."""
    nearest_settings(conn, ef_search)
    rows = conn.execute(
        "EXPLAIN " + _NEAREST_SQL,
        {"collection": collection_id, "model": model, "embedding": embedding, "neighbours": 5},
    ).fetchall()
    return "\n".join(r[0] for r in rows)


def nearest_centroids(
    conn: psycopg.Connection, collection_id: int, model: str, embedding: np.ndarray, neighbours: int, ef_search: int
) -> list[tuple[int, float]]:
    """The bare nearest-centroid query in its own pipelined transaction: the benchmark's baseline
    for one assignment (`conn` in autocommit mode)."""
    params = {"collection": collection_id, "model": model, "embedding": embedding, "neighbours": neighbours}
    with conn.pipeline(), conn.transaction():
        nearest_settings(conn, ef_search)
        cur = conn.execute(_NEAREST_SQL, params)
    return [(r[0], float(r[1])) for r in cur.fetchall()]


def unclustered_detection_ids(conn: psycopg.Connection, collection_id: int | None = None) -> list[int]:
    """Faces with an embedding that no run or assignment has looked at yet (or whose cluster is gone).

    Faces in the unassigned pool are left out: a bootstrap called them noise (or an assignment
    found no cluster) with everything known then; a re-bootstrap, not a looser second look by
    centroid distance, is what revisits them.
    """
    rows = conn.execute(
        """SELECT pd.id FROM person_detection pd
           JOIN face_embedding fe ON fe.person_detection_id = pd.id
           JOIN photo p ON p.id = pd.photo_id
           WHERE pd.cluster_id IS NULL
             AND (pd.cluster_status IS NULL OR pd.cluster_status = 'auto')
             AND (%s::bigint IS NULL OR p.collection_id = %s)
           ORDER BY pd.id""",
        (collection_id, collection_id),
    ).fetchall()
    return [r[0] for r in rows]
