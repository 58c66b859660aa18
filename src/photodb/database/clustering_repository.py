"""Every SQL statement of identity clustering: bootstrap runs, clusters, assignments, constraints.

Bootstrap writes and incremental assignment of one (collection, embedding model) serialise on a
transaction-scoped advisory lock: a bootstrap holds it exclusively while it rewrites clusters,
each incremental assignment holds it shared, so they never see each other's half-done work and
never deadlock on cluster rows. Among incremental assignments, the detection row and then the
cluster row are locked with SELECT ... FOR UPDATE (always in that order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import psycopg.sql
from psycopg.types.json import Jsonb

FACES_SQL = """
    SELECT pd.id, fe.embedding, pd.cluster_id, pd.cluster_status
    FROM face_embedding fe
    JOIN person_detection pd ON pd.id = fe.person_detection_id
    JOIN photo p ON p.id = pd.photo_id
    WHERE p.collection_id = %s AND fe.embedding_model = %s
    ORDER BY pd.id
"""


@dataclass
class FaceSet:
    """The faces of one collection and embedding model, as bootstrap sees them."""

    ids: np.ndarray  # int64
    embeddings: np.ndarray  # float32 (n, 512)
    cluster_ids: np.ndarray  # int64, -1 for none
    statuses: list[str | None]


@dataclass(frozen=True)
class ClusterInfo:
    id: int
    verified: bool
    person_id: int | None
    constrained: bool  # takes part in a cluster-level cannot-link
    lambda_birth: float | None


@dataclass(frozen=True)
class ActiveRun:
    id: int
    collection_id: int
    embedding_model: str
    created_at: datetime
    embedding_count: int
    min_cluster_size: int
    min_samples: int
    parameters: dict[str, Any]


@dataclass(frozen=True)
class FaceRow:
    """One detection locked for incremental assignment."""

    id: int
    collection_id: int
    embedding_model: str
    embedding: np.ndarray
    cluster_id: int | None
    status: str | None


@dataclass(frozen=True)
class Neighbour:
    cluster_id: int
    distance: float  # cosine distance
    lambda_birth: float | None


@dataclass(frozen=True)
class NewCluster:
    centroid: np.ndarray
    face_count: int
    medoid_detection_id: int
    lambda_birth: float | None
    persistence: float | None


def _array(value: Any) -> np.ndarray:
    """pgvector hands back numpy arrays in text mode and Vector objects in binary mode."""
    return value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)


def lock_model(conn: psycopg.Connection, collection_id: int, model: str, *, shared: bool) -> None:
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    conn.execute(f"SELECT {fn}(%s::int, hashtext(%s))", (collection_id, model))


def embedding_models(conn: psycopg.Connection, collection_id: int) -> dict[str, int]:
    rows = conn.execute(
        """SELECT fe.embedding_model, count(*) FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s GROUP BY 1 ORDER BY 1""",
        (collection_id,),
    ).fetchall()
    return {model: count for model, count in rows}


def collection_id_by_name(conn: psycopg.Connection, name: str) -> int | None:
    row = conn.execute("SELECT id FROM collection WHERE name = %s", (name,)).fetchone()
    return row[0] if row else None


def collection_ids(conn: psycopg.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM collection ORDER BY id").fetchall()]


STORED_DIM = 512


def load_faces(conn: psycopg.Connection, collection_id: int, model: str) -> FaceSet:
    """Stream the faces (binary COPY) into one preallocated array: no per-row vector objects and
    no whole result held in memory, which at 100k faces would double the bootstrap's peak RSS."""
    row = conn.execute(
        """SELECT count(*) FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s AND fe.embedding_model = %s""",
        (collection_id, model),
    ).fetchone()
    assert row is not None
    # Vectors are read at their stored width (models with fewer dimensions are zero-padded to it),
    # the same width incremental assignment reads, so the run's PCA applies to both.
    size, dim = int(row[0]), STORED_DIM
    ids = np.empty(size, np.int64)
    clusters = np.full(size, -1, np.int64)
    embeddings = np.zeros((size, dim), np.float32)
    statuses: list[str | None] = []
    count = 0
    query = psycopg.sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(
        psycopg.sql.SQL(FACES_SQL.replace("%s", "{}")).format(collection_id, model)
    )
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.set_types(["int8", "vector", "int8", "text"])
        for det_id, embedding, cluster_id, status in copy.rows():
            if count == size:  # faces added since the count: grow
                ids, clusters = np.resize(ids, 2 * size + 1), np.resize(clusters, 2 * size + 1)
                embeddings = np.resize(embeddings, (2 * size + 1, dim))
                size = 2 * size + 1
            ids[count] = det_id
            embeddings[count] = _array(embedding)
            clusters[count] = -1 if cluster_id is None else cluster_id
            statuses.append(status)
            count += 1
    return FaceSet(ids[:count], embeddings[:count], clusters[:count], statuses)


def load_clusters(conn: psycopg.Connection, collection_id: int, model: str) -> dict[int, ClusterInfo]:
    rows = conn.execute(
        """SELECT c.id, c.verified, c.person_id,
                  EXISTS (SELECT 1 FROM cluster_cannot_link l
                          WHERE l.cluster_id_1 = c.id OR l.cluster_id_2 = c.id),
                  c.lambda_birth
           FROM cluster c WHERE c.collection_id = %s AND c.embedding_model = %s""",
        (collection_id, model),
    ).fetchall()
    return {r[0]: ClusterInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows}


def load_links(conn: psycopg.Connection, table: str, collection_id: int, model: str) -> list[tuple[int, int]]:
    """must_link or cannot_link pairs whose both faces belong to this collection and model."""
    if table not in ("must_link", "cannot_link"):
        raise ValueError(table)
    rows = conn.execute(
        f"""SELECT l.detection_id_1, l.detection_id_2 FROM {table} l
            JOIN face_embedding f1 ON f1.person_detection_id = l.detection_id_1
            JOIN face_embedding f2 ON f2.person_detection_id = l.detection_id_2
            JOIN person_detection d1 ON d1.id = l.detection_id_1
            JOIN photo p1 ON p1.id = d1.photo_id
            WHERE p1.collection_id = %s AND f1.embedding_model = %s AND f2.embedding_model = %s""",  # noqa: S608
        (collection_id, model, model),
    ).fetchall()
    return [(a, b) for a, b in rows]


def insert_run(
    conn: psycopg.Connection,
    *,
    collection_id: int,
    model: str,
    embedding_count: int,
    cluster_count: int,
    noise_count: int,
    min_cluster_size: int,
    min_samples: int,
    parameters: dict[str, Any],
    condensed_tree: dict[str, Any],
    clusterer_state: bytes,
    reducer_state: bytes,
) -> int:
    row = conn.execute(
        """INSERT INTO hdbscan_run (collection_id, embedding_model, embedding_count, cluster_count,
               noise_count, min_cluster_size, min_samples, parameters, condensed_tree,
               clusterer_state, reducer_state)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            collection_id,
            model,
            embedding_count,
            cluster_count,
            noise_count,
            min_cluster_size,
            min_samples,
            Jsonb(parameters),
            Jsonb(condensed_tree),
            clusterer_state,
            reducer_state,
        ),
    ).fetchone()
    assert row is not None
    return row[0]


def activate_run(conn: psycopg.Connection, run_id: int, label_to_cluster_id: dict[str, int]) -> None:
    """Make this run the active one; superseded runs keep their statistics but drop their blobs."""
    conn.execute(
        """UPDATE hdbscan_run o SET is_active = false, clusterer_state = NULL, reducer_state = NULL
           FROM hdbscan_run n
           WHERE n.id = %s AND o.collection_id = n.collection_id
             AND o.embedding_model = n.embedding_model AND o.id <> n.id AND o.is_active""",
        (run_id,),
    )
    conn.execute(
        "UPDATE hdbscan_run SET is_active = true, label_to_cluster_id = %s WHERE id = %s",
        (Jsonb(label_to_cluster_id), run_id),
    )


_CLUSTER_COPY_TYPES = ["int8", "int8", "text", "int4", "vector", "int8", "int8", "int4", "int8", "float8", "float8"]


def insert_clusters(
    conn: psycopg.Connection, collection_id: int, model: str, run_id: int, clusters: Sequence[NewCluster]
) -> list[int]:
    """Insert new clusters by one binary COPY, their ids drawn from the sequence beforehand."""
    if not clusters:
        return []
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('cluster', 'id')) FROM generate_series(1, %s)", (len(clusters),)
        ).fetchall()
    ]
    with (
        conn.cursor() as cur,
        cur.copy(
            """COPY cluster (id, collection_id, embedding_model, face_count, centroid, medoid_detection_id,
               representative_detection_id, face_count_at_last_medoid, hdbscan_run_id, lambda_birth,
               persistence) FROM STDIN WITH (FORMAT BINARY)"""
        ) as copy,
    ):
        copy.set_types(_CLUSTER_COPY_TYPES)
        for cid, c in zip(ids, clusters, strict=True):
            copy.write_row(
                (
                    cid,
                    collection_id,
                    model,
                    c.face_count,
                    np.asarray(c.centroid, np.float32),
                    c.medoid_detection_id,
                    c.medoid_detection_id,
                    c.face_count,
                    run_id,
                    c.lambda_birth,
                    c.persistence,
                )
            )
    return ids


def update_clusters(conn: psycopg.Connection, run_id: int, clusters: dict[int, NewCluster]) -> None:
    """Rewrite reused clusters (COPY into a temporary table, then one UPDATE); a cluster left
    without a new lambda keeps the one it had."""
    if not clusters:
        return
    conn.execute(
        """CREATE TEMP TABLE cluster_rewrite (id BIGINT PRIMARY KEY, face_count INTEGER, centroid vector,
               medoid BIGINT, lambda_birth DOUBLE PRECISION, persistence DOUBLE PRECISION) ON COMMIT DROP"""
    )
    with conn.cursor() as cur, cur.copy("COPY cluster_rewrite FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int4", "vector", "int8", "float8", "float8"])
        for cid, c in clusters.items():
            copy.write_row(
                (
                    cid,
                    c.face_count,
                    np.asarray(c.centroid, np.float32),
                    c.medoid_detection_id,
                    c.lambda_birth,
                    c.persistence,
                )
            )
    conn.execute(
        """UPDATE cluster c SET face_count = r.face_count, centroid = r.centroid, medoid_detection_id = r.medoid,
               representative_detection_id = coalesce(c.representative_detection_id, r.medoid),
               face_count_at_last_medoid = r.face_count, hdbscan_run_id = %s,
               lambda_birth = coalesce(r.lambda_birth, c.lambda_birth),
               persistence = coalesce(r.persistence, c.persistence), updated_at = now()
           FROM cluster_rewrite r WHERE c.id = r.id""",
        (run_id,),
    )


def write_assignments(conn: psycopg.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Bulk-set (id, cluster_id, status, confidence, lambda_val, outlier_score, unassigned) by COPY."""
    conn.execute(
        """CREATE TEMP TABLE cluster_assignment (id BIGINT PRIMARY KEY, cluster_id BIGINT,
               status TEXT, confidence DOUBLE PRECISION, lambda_val DOUBLE PRECISION,
               outlier_score DOUBLE PRECISION, unassigned BOOLEAN) ON COMMIT DROP"""
    )
    with conn.cursor() as cur, cur.copy("COPY cluster_assignment FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(
        """UPDATE person_detection d SET cluster_id = a.cluster_id, cluster_status = a.status,
               cluster_confidence = a.confidence, lambda_val = a.lambda_val,
               outlier_score = a.outlier_score,
               unassigned_since = CASE WHEN a.unassigned THEN coalesce(d.unassigned_since, now()) END
           FROM cluster_assignment a WHERE d.id = a.id"""
    )


def refresh_face_counts(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> None:
    conn.execute(
        """UPDATE cluster c SET face_count = (SELECT count(*) FROM person_detection d
                                               WHERE d.cluster_id = c.id)
           WHERE c.id = ANY(%s)""",
        (list(cluster_ids),),
    )


def delete_empty_clusters(conn: psycopg.Connection, collection_id: int, model: str) -> int:
    """Drop clusters with no faces, except verified or named ones: a person is never lost silently."""
    cur = conn.execute(
        """DELETE FROM cluster c WHERE c.collection_id = %s AND c.embedding_model = %s
               AND NOT c.verified AND c.person_id IS NULL
               AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.cluster_id = c.id)""",
        (collection_id, model),
    )
    return cur.rowcount


# -- active runs -------------------------------------------------------------------------------

_RUN_COLUMNS = (
    "id, collection_id, embedding_model, created_at, embedding_count, min_cluster_size, min_samples, parameters"
)


def active_runs(conn: psycopg.Connection, collection_id: int | None = None) -> list[ActiveRun]:
    rows = conn.execute(
        f"""SELECT {_RUN_COLUMNS} FROM hdbscan_run
            WHERE is_active AND (%s::bigint IS NULL OR collection_id = %s)
            ORDER BY collection_id, embedding_model""",  # noqa: S608
        (collection_id, collection_id),
    ).fetchall()
    return [ActiveRun(*row) for row in rows]


def active_run(conn: psycopg.Connection, collection_id: int, model: str) -> ActiveRun | None:
    row = conn.execute(
        f"""SELECT {_RUN_COLUMNS} FROM hdbscan_run
            WHERE is_active AND collection_id = %s AND embedding_model = %s""",  # noqa: S608
        (collection_id, model),
    ).fetchone()
    return ActiveRun(*row) if row else None


def run_state(conn: psycopg.Connection, run_id: int) -> tuple[bytes, bytes, dict[str, int]] | None:
    row = conn.execute(
        "SELECT clusterer_state, reducer_state, label_to_cluster_id FROM hdbscan_run WHERE id = %s",
        (run_id,),
    ).fetchone()
    if row is None or row[0] is None or row[1] is None:
        return None
    return bytes(row[0]), bytes(row[1]), row[2] or {}


# -- incremental assignment --------------------------------------------------------------------


@dataclass(frozen=True)
class NewFace(FaceRow):
    """A face read (without locks) for incremental assignment, with its model's active run."""

    run_id: int | None


def faces_to_assign(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, NewFace]:
    """Every face asked for, with its embedding and active run, in one query (no locks)."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            """SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding, pd.cluster_id,
                      pd.cluster_status, r.id
               FROM person_detection pd
               JOIN face_embedding fe ON fe.person_detection_id = pd.id
               JOIN photo p ON p.id = pd.photo_id
               LEFT JOIN hdbscan_run r ON r.is_active AND r.collection_id = p.collection_id
                                      AND r.embedding_model = fe.embedding_model
               WHERE pd.id = ANY(%s)""",
            (list(detection_ids),),
        )
        return {r[0]: NewFace(r[0], r[1], r[2], _array(r[3]).astype(np.float32), r[4], r[5], r[6]) for r in cur}


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
    ),"""

#: Tier 1: the cluster the condensed tree chose, unless a cannot-link forbids it.
_TIER1_CHOICE = """
    ambiguous AS (SELECT false AS yes),
    choice AS (
        SELECT %(cluster)s::bigint AS cluster_id, %(confidence)s::float8 AS confidence, 1 AS rank
        WHERE %(cluster)s::bigint NOT IN (SELECT cluster_id FROM blocked)
    ),"""

#: Tier 2: the nearest centroids (HNSW, filtered by collection and model); a face inside two
#: epsilon balls by nearly the same margin is ambiguous and goes to review. epsilon is the
#: cluster's 1/lambda_birth, never more than the model's threshold (which also serves clusters
#: without a lambda): LEAST ignores the NULL of a missing lambda.
_TIER2_CHOICE = """
    near AS MATERIALIZED (
        SELECT c.id, c.centroid <=> %(embedding)b AS distance,
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

#: Lock the best surviving choice (a cluster deleted meanwhile is skipped), fold the face into its
#: centroid, new = normalize(old * n + x), and record the outcome on the detection.
_ASSIGN_WRITE = """
    target AS MATERIALIZED (
        SELECT c.id, ch.confidence FROM choice ch JOIN cluster c ON c.id = ch.cluster_id
        WHERE EXISTS (SELECT 1 FROM face)
        ORDER BY ch.rank LIMIT 1
        FOR UPDATE OF c
    ),
    joined AS (
        UPDATE cluster c SET face_count = c.face_count + 1, updated_at = now(),
            centroid = CASE WHEN c.centroid IS NULL OR c.face_count <= 0 THEN l2_normalize(f.embedding)
                            ELSE l2_normalize(c.centroid * array_fill(c.face_count::real,
                                                ARRAY[vector_dims(c.centroid)])::vector + f.embedding) END
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
"""

ASSIGN_TIER1_SQL = "WITH" + _ASSIGN_FACE + _TIER1_CHOICE + _ASSIGN_WRITE
ASSIGN_TIER2_SQL = "WITH" + _ASSIGN_FACE + _TIER2_CHOICE + _ASSIGN_WRITE


@dataclass(frozen=True)
class Assignment:
    found: bool  # the face was still waiting for a cluster when locked
    status: str | None  # 'auto', 'pending', 'unassigned', or None when nothing was written
    cluster_id: int | None


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

    With `cluster_id` (tier 1) the face joins that cluster unless a cannot-link forbids it or the
    cluster is gone, in which case nothing is written (found and status None: try tier 2).
    Without it (tier 2) the nearest centroids decide, and with `final` a face no ball holds is
    marked unassigned. The shared advisory lock is taken first, in its own statement, so that the
    assignment's snapshot follows any bootstrap it waited for; then one statement locks the
    detection row, then the cluster row (always in that order), and writes everything.
    `conn` must be in autocommit mode; BEGIN, lock, settings, statement and COMMIT are pipelined.
    """
    params: dict[str, Any] = {"det": face.id, "final": final}
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
        lock_model(conn, face.collection_id, face.embedding_model, shared=True)
        # An assignment is derived data that assign_unclustered redoes: a crash may lose the last
        # few milliseconds of them (never consistency), so the commit does not wait for the WAL flush.
        conn.execute("SET LOCAL synchronous_commit = off")
        if cluster_id is None:
            nearest_settings(conn, ef_search)
        cur = conn.execute(sql, params)
    row = cur.fetchone()
    assert row is not None
    return Assignment(bool(row[0]), row[1], row[2])


def nearest_settings(conn: psycopg.Connection, ef_search: int) -> None:
    """Transaction-local settings of tier 2's centroid lookup."""
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef_search),))
    # exact distance order even when other collections' or models' centroids are skipped
    conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")
    # The planner prices a scan of a few thousand centroids below the HNSW index, but each centroid
    # is a TOASTed 2 KiB vector: the index is the faster path (the benchmark shows the plan).
    conn.execute("SET LOCAL enable_seqscan = off")


def explain_nearest(
    conn: psycopg.Connection, collection_id: int, model: str, embedding: np.ndarray, ef_search: int = 40
) -> str:
    """The plan of tier 2's centroid lookup (the benchmark checks that it uses the HNSW index)."""
    nearest_settings(conn, ef_search)
    rows = conn.execute(
        """EXPLAIN SELECT c.id FROM cluster c
           WHERE c.collection_id = %(collection)s AND c.embedding_model = %(model)s AND NOT c.hidden
           ORDER BY c.centroid <=> %(embedding)b LIMIT 5""",
        {"collection": collection_id, "model": model, "embedding": embedding},
    ).fetchall()
    return "\n".join(r[0] for r in rows)


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
    return FaceRow(row[0], row[1], row[2], _array(row[3]).astype(np.float32), row[4], row[5])


def face_models(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, tuple[int, str, np.ndarray]]:
    """(collection, model, embedding) per detection, read without locks for the tier-1 batch."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            """SELECT pd.id, p.collection_id, fe.embedding_model, fe.embedding
               FROM person_detection pd
               JOIN face_embedding fe ON fe.person_detection_id = pd.id
               JOIN photo p ON p.id = pd.photo_id WHERE pd.id = ANY(%s)""",
            (list(detection_ids),),
        )
        return {r[0]: (r[1], r[2], _array(r[3]).astype(np.float32)) for r in cur}


def nearest_clusters(
    conn: psycopg.Connection, collection_id: int, model: str, embedding: np.ndarray, limit: int
) -> list[Neighbour]:
    rows = conn.execute(
        """SELECT id, centroid <=> %s AS distance, lambda_birth FROM cluster
           WHERE collection_id = %s AND embedding_model = %s AND centroid IS NOT NULL AND NOT hidden
           ORDER BY centroid <=> %s LIMIT %s""",
        (embedding, collection_id, model, embedding, limit),
    ).fetchall()
    return [Neighbour(r[0], float(r[1]), r[2]) for r in rows]


def cluster_distance(conn: psycopg.Connection, cluster_id: int, embedding: np.ndarray) -> Neighbour | None:
    row = conn.execute(
        "SELECT id, centroid <=> %s, lambda_birth FROM cluster WHERE id = %s AND centroid IS NOT NULL",
        (embedding, cluster_id),
    ).fetchone()
    return Neighbour(row[0], float(row[1]), row[2]) if row else None


def cannot_link_clusters(conn: psycopg.Connection, detection_id: int) -> set[int]:
    """Clusters holding a face that must not share a cluster with this one."""
    rows = conn.execute(
        """SELECT DISTINCT d.cluster_id FROM cannot_link l
           JOIN person_detection d
             ON d.id = CASE WHEN l.detection_id_1 = %s THEN l.detection_id_2 ELSE l.detection_id_1 END
           WHERE (l.detection_id_1 = %s OR l.detection_id_2 = %s) AND d.cluster_id IS NOT NULL""",
        (detection_id, detection_id, detection_id),
    ).fetchall()
    return {r[0] for r in rows}


def lock_cluster(conn: psycopg.Connection, cluster_id: int) -> tuple[int, np.ndarray | None] | None:
    row = conn.execute("SELECT face_count, centroid FROM cluster WHERE id = %s FOR UPDATE", (cluster_id,)).fetchone()
    if row is None:
        return None
    return row[0], None if row[1] is None else _array(row[1])


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


def mark_unassigned(conn: psycopg.Connection, detection_id: int) -> None:
    conn.execute(
        """UPDATE person_detection SET cluster_status = 'unassigned',
               unassigned_since = coalesce(unassigned_since, now()) WHERE id = %s""",
        (detection_id,),
    )


def mark_pending(conn: psycopg.Connection, detection_id: int, candidates: Sequence[tuple[int, float]]) -> None:
    conn.execute(
        "UPDATE person_detection SET cluster_status = 'pending', unassigned_since = NULL WHERE id = %s",
        (detection_id,),
    )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
               VALUES (%s, %s, %s)
               ON CONFLICT (detection_id, cluster_id) DO UPDATE SET similarity = EXCLUDED.similarity""",
            [(detection_id, cid, sim) for cid, sim in candidates],
        )


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


# -- staleness ---------------------------------------------------------------------------------


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


def insert_faces(
    conn: psycopg.Connection, collection_id: int, embeddings: np.ndarray, model: str, *, photo_prefix: str = "face"
) -> list[int]:
    """Import embeddings computed elsewhere (benchmarks, tests): one photo and one face each."""
    start = conn.execute("SELECT coalesce(max(id), 0) FROM photo").fetchone()
    assert start is not None
    names = [f"{photo_prefix}-{start[0] + i}.jpg" for i in range(len(embeddings))]
    photo_ids = [
        r[0]
        for r in conn.execute(
            """INSERT INTO photo (collection_id, filename) SELECT %s, unnest(%s::text[])
               RETURNING id""",
            (collection_id, names),
        ).fetchall()
    ]
    detection_ids = [
        r[0]
        for r in conn.execute(
            """INSERT INTO person_detection (photo_id, face_bbox_x, face_bbox_y, face_bbox_width,
                   face_bbox_height, face_confidence)
               SELECT unnest(%s::bigint[]), 0, 0, 10, 10, 0.9 RETURNING id""",
            (photo_ids,),
        ).fetchall()
    ]
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY face_embedding (person_detection_id, embedding_model, embedding_dim, embedding)"
            " FROM STDIN WITH (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int8", "text", "int4", "vector"])
        for det_id, vector in zip(detection_ids, embeddings, strict=True):
            copy.write_row((det_id, model, vector.shape[0], np.asarray(vector, np.float32)))
    return detection_ids
