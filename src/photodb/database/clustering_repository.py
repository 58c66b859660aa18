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


def load_faces(conn: psycopg.Connection, collection_id: int, model: str) -> FaceSet:
    ids: list[int] = []
    vectors: list[np.ndarray] = []
    clusters: list[int] = []
    statuses: list[str | None] = []
    with conn.cursor(binary=True) as cur:
        cur.execute(FACES_SQL, (collection_id, model))
        for det_id, embedding, cluster_id, status in cur:
            ids.append(det_id)
            vectors.append(_array(embedding))
            clusters.append(-1 if cluster_id is None else cluster_id)
            statuses.append(status)
    embeddings = np.vstack(vectors).astype(np.float32) if vectors else np.zeros((0, 512), np.float32)
    return FaceSet(np.asarray(ids, np.int64), embeddings, np.asarray(clusters, np.int64), statuses)


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


def insert_clusters(
    conn: psycopg.Connection, collection_id: int, model: str, run_id: int, clusters: Sequence[NewCluster]
) -> list[int]:
    ids = []
    with conn.cursor() as cur:
        for c in clusters:
            cur.execute(
                """INSERT INTO cluster (collection_id, embedding_model, face_count, centroid,
                       medoid_detection_id, representative_detection_id, face_count_at_last_medoid,
                       hdbscan_run_id, lambda_birth, persistence)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (
                    collection_id,
                    model,
                    c.face_count,
                    c.centroid,
                    c.medoid_detection_id,
                    c.medoid_detection_id,
                    c.face_count,
                    run_id,
                    c.lambda_birth,
                    c.persistence,
                ),
            )
            row = cur.fetchone()
            assert row is not None
            ids.append(row[0])
    return ids


def update_clusters(conn: psycopg.Connection, run_id: int, clusters: dict[int, NewCluster]) -> None:
    """Rewrite reused clusters; a cluster left without a new lambda keeps the one it had."""
    with conn.cursor() as cur:
        cur.executemany(
            """UPDATE cluster SET face_count = %s, centroid = %s, medoid_detection_id = %s,
                   representative_detection_id = coalesce(representative_detection_id, %s),
                   face_count_at_last_medoid = %s, hdbscan_run_id = %s,
                   lambda_birth = coalesce(%s, lambda_birth), persistence = coalesce(%s, persistence),
                   updated_at = now()
               WHERE id = %s""",
            [
                (
                    c.face_count,
                    c.centroid,
                    c.medoid_detection_id,
                    c.medoid_detection_id,
                    c.face_count,
                    run_id,
                    c.lambda_birth,
                    c.persistence,
                    cid,
                )
                for cid, c in clusters.items()
            ],
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
    """Faces with an embedding, no cluster, and no pending review or manual decision."""
    rows = conn.execute(
        """SELECT pd.id FROM person_detection pd
           JOIN face_embedding fe ON fe.person_detection_id = pd.id
           JOIN photo p ON p.id = pd.photo_id
           WHERE pd.cluster_id IS NULL
             AND (pd.cluster_status IS NULL OR pd.cluster_status IN ('unassigned', 'auto'))
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
    with conn.cursor() as cur, cur.copy(
        "COPY face_embedding (person_detection_id, embedding_model, embedding_dim, embedding)"
        " FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "text", "int4", "vector"])
        for det_id, vector in zip(detection_ids, embeddings, strict=True):
            copy.write_row((det_id, model, vector.shape[0], np.asarray(vector, np.float32)))
    return detection_ids
