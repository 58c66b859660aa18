"""Bootstrap runs: writing a run, its clusters and its assignments, and reading active runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from photodb.database.clustering import centroids


@dataclass(frozen=True)
class ClusterInfo:
    id: int
    verified: bool
    person_id: int | None
    constrained: bool  # takes part in a cluster-level cannot-link
    lambda_birth: float | None
    hidden: bool = False  # hidden by a person: kept, like a verified or named cluster


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
class NewCluster:
    """A cluster as a bootstrap writes it: the sum (not the mean) of its members' embeddings."""

    centroid_sum: np.ndarray
    face_count: int
    medoid_detection_id: int
    lambda_birth: float | None
    persistence: float | None

    @classmethod
    def of_members(
        cls,
        embeddings: np.ndarray,
        ids: np.ndarray,
        members: Sequence[int],
        lambda_birth: float | None = None,
        persistence: float | None = None,
    ) -> NewCluster:
        """The cluster of these faces (indices into `embeddings` and `ids`): the sum of their
        embeddings, and as medoid the member nearest to its direction (the medoid by cosine)."""
        vectors = embeddings[list(members)]
        total = vectors.sum(axis=0, dtype=np.float64)
        medoid = int(ids[list(members)[int(np.argmax(vectors @ total))]])
        return cls(total.astype(np.float32), len(members), medoid, lambda_birth, persistence)


def load_clusters(conn: psycopg.Connection, collection_id: int, model: str) -> dict[int, ClusterInfo]:
    rows = conn.execute(
        """SELECT c.id, c.verified, c.person_id,
                  EXISTS (SELECT 1 FROM cluster_cannot_link l
                          WHERE l.cluster_id_1 = c.id OR l.cluster_id_2 = c.id),
                  c.lambda_birth, c.hidden
           FROM cluster c WHERE c.collection_id = %s AND c.embedding_model = %s""",
        (collection_id, model),
    ).fetchall()
    return {r[0]: ClusterInfo(*r) for r in rows}


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


_CLUSTER_COPY_TYPES = [
    *("int8", "int8", "text", "int4", "vector", "vector", "int8", "int8", "int4", "int8", "float8", "float8")
]


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / (np.linalg.norm(vector) or 1.0)).astype(np.float32)


def _live_medoids(conn: psycopg.Connection, clusters: Iterable[NewCluster]) -> set[int]:
    """The medoids that still exist: a detection rerun may have deleted faces since they were loaded
    (reruns hold the model lock shared, so none is deleted while the caller holds it exclusively)."""
    ids = [c.medoid_detection_id for c in clusters]
    return {r[0] for r in conn.execute("SELECT id FROM person_detection WHERE id = ANY(%s)", (ids,)).fetchall()}


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
    live = _live_medoids(conn, clusters)
    with (
        conn.cursor() as cur,
        cur.copy(
            """COPY cluster (id, collection_id, embedding_model, face_count, centroid_sum, centroid,
               medoid_detection_id,
               representative_detection_id, face_count_at_last_medoid, hdbscan_run_id, lambda_birth,
               persistence) FROM STDIN WITH (FORMAT BINARY)"""
        ) as copy,
    ):
        copy.set_types(_CLUSTER_COPY_TYPES)
        for cid, c in zip(ids, clusters, strict=True):
            medoid = c.medoid_detection_id if c.medoid_detection_id in live else None
            copy.write_row(
                (
                    cid,
                    collection_id,
                    model,
                    c.face_count,
                    np.asarray(c.centroid_sum, np.float32),
                    _unit(c.centroid_sum),
                    medoid,
                    medoid,
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
        """CREATE TEMP TABLE cluster_rewrite (id BIGINT PRIMARY KEY, face_count INTEGER, centroid_sum vector,
               centroid vector, medoid BIGINT, lambda_birth DOUBLE PRECISION, persistence DOUBLE PRECISION)
           ON COMMIT DROP"""
    )
    live = _live_medoids(conn, clusters.values())
    with conn.cursor() as cur, cur.copy("COPY cluster_rewrite FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int4", "vector", "vector", "int8", "float8", "float8"])
        for cid, c in clusters.items():
            copy.write_row(
                (
                    cid,
                    c.face_count,
                    np.asarray(c.centroid_sum, np.float32),
                    _unit(c.centroid_sum),
                    c.medoid_detection_id if c.medoid_detection_id in live else None,
                    c.lambda_birth,
                    c.persistence,
                )
            )
    conn.execute(
        """UPDATE cluster c SET face_count = r.face_count, centroid_sum = r.centroid_sum, centroid = r.centroid,
               medoid_detection_id = r.medoid,
               representative_detection_id = coalesce(c.representative_detection_id, r.medoid),
               face_count_at_last_medoid = r.face_count, hdbscan_run_id = %s,
               lambda_birth = coalesce(r.lambda_birth, c.lambda_birth),
               persistence = coalesce(r.persistence, c.persistence), updated_at = now()
           FROM cluster_rewrite r WHERE c.id = r.id""",
        (run_id,),
    )


def write_assignments(conn: psycopg.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Bulk-set (id, cluster_id, status, confidence, lambda_val, outlier_score, unassigned,
    quality_issue) by COPY.

    A face that is 'manual' now keeps its cluster: the bootstrap pinned the faces that were manual
    when it loaded them, and one set by hand while it ran is newer than its plan. Faces deleted
    since loading are simply not found. The planned rows stay in `cluster_assignment` until commit
    for `settle_clusters`.
    """
    conn.execute(
        """CREATE TEMP TABLE cluster_assignment (id BIGINT PRIMARY KEY, cluster_id BIGINT,
               status TEXT, confidence DOUBLE PRECISION, lambda_val DOUBLE PRECISION,
               outlier_score DOUBLE PRECISION, unassigned BOOLEAN, quality_issue TEXT) ON COMMIT DROP"""
    )
    with conn.cursor() as cur, cur.copy("COPY cluster_assignment FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(
        """UPDATE person_detection d SET cluster_id = a.cluster_id, cluster_status = a.status,
               cluster_confidence = a.confidence, lambda_val = a.lambda_val,
               outlier_score = a.outlier_score, quality_issue = a.quality_issue,
               unassigned_since = CASE WHEN a.unassigned THEN coalesce(d.unassigned_since, now()) END
           FROM cluster_assignment a WHERE d.id = a.id AND d.cluster_status IS DISTINCT FROM 'manual'"""
    )


def settle_clusters(conn: psycopg.Connection, collection_id: int, model: str) -> list[int]:
    """Recount the clusters whose members differ from the bootstrap's plan (after write_assignments):
    faces assigned, moved by hand or deleted while the bootstrap ran. The others' counts and sums
    are the plan's, already exact. Returns the recounted clusters."""
    rows = conn.execute(
        """WITH actual AS (
               SELECT d.id, d.cluster_id FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id
               JOIN photo p ON p.id = d.photo_id
               WHERE p.collection_id = %s AND fe.embedding_model = %s)
           SELECT DISTINCT x.id FROM actual a FULL JOIN cluster_assignment p ON p.id = a.id
           CROSS JOIN LATERAL (VALUES (a.cluster_id), (p.cluster_id)) AS x(id)
           WHERE a.cluster_id IS DISTINCT FROM p.cluster_id AND x.id IS NOT NULL
           ORDER BY 1""",
        (collection_id, model),
    ).fetchall()
    changed = [r[0] for r in rows]
    centroids.recount_clusters(conn, changed)
    return changed


def delete_empty_clusters(conn: psycopg.Connection, collection_id: int, model: str) -> int:
    """Drop clusters with no faces, except verified, named or hidden ones: a person's decision is
    never lost silently."""
    cur = conn.execute(
        """DELETE FROM cluster c WHERE c.collection_id = %s AND c.embedding_model = %s
               AND NOT c.verified AND c.person_id IS NULL AND NOT c.hidden
               AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.cluster_id = c.id)""",
        (collection_id, model),
    )
    return cur.rowcount


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
