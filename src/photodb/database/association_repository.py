"""SQL of cluster auto-association (photodb.people.association): functions taking a connection, so
the caller reads, locks and writes one collection and embedding model in one transaction.

The caller follows the lock order of database.clustering.locks: the model lock (shared), cluster
rows, then person rows (database.people_repository.lock_persons).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from photodb.database.clustering.faces import array_of
from photodb.database.people_repository import UNKNOWN_NAME

#: A cluster that may get a person of its own (a "lone" cluster, one no other cluster joined):
#: enough faces, no person, and nothing a user said about it that means "leave it": not hidden,
#: never unlinked by a user (`people unlink` leaves person_linked_by set), and no
#: cluster_person_cannot_link (unlink, "not this person" of its last face, the new half of a split).
#: A cluster holding two faces of one photo (a constraint violation) is two people: no person.
_LONE_CLUSTER = """c.person_id IS NULL AND NOT c.hidden AND c.face_count >= %(min_faces)s
    AND (c.person_linked_by IS NULL OR c.person_linked_by LIKE 'auto:%%')
    AND NOT EXISTS (SELECT 1 FROM cluster_person_cannot_link r WHERE r.cluster_id = c.id)
    AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.cluster_id = c.id
                    GROUP BY d.photo_id HAVING count(*) > 1)"""


@dataclass(frozen=True)
class ClusterState:
    """What auto-association must know of a cluster before it links or moves it."""

    id: int
    embedding_model: str
    person_id: int | None
    person_linked_by: str | None
    verified: bool
    hidden: bool


@dataclass(frozen=True)
class PersonState:
    """A person as auto-association weighs it: whether it may be merged into another."""

    id: int
    named: bool  # a name a user gave
    hidden: bool
    cluster_count: int
    verified_clusters: int
    user_linked_clusters: int  # clusters a user linked to it (decisions auto-association keeps)


def cluster_models(conn: psycopg.Connection, collection_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT embedding_model FROM cluster WHERE collection_id = %s ORDER BY 1", (collection_id,)
    ).fetchall()
    return [r[0] for r in rows]


def collections_with_clusters(conn: psycopg.Connection, collection_id: int | None) -> list[int]:
    """Collections that have clusters (None: all of them; else just that one when it has)."""
    rows = conn.execute(
        "SELECT DISTINCT collection_id FROM cluster WHERE %(c)s::bigint IS NULL OR collection_id = %(c)s ORDER BY 1",
        {"c": collection_id},
    ).fetchall()
    return [r[0] for r in rows]


def centroids(conn: psycopg.Connection, collection_id: int, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, unit centroids) of the clusters that take part: not hidden, not empty, and not left
    without a person by a user's decision (a user unlinked it: it joins no person on its own)."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            """SELECT id, centroid_sum FROM cluster
               WHERE collection_id = %s AND embedding_model = %s AND NOT hidden
                 AND centroid_sum IS NOT NULL AND face_count > 0
                 AND NOT (person_id IS NULL AND person_linked_by IS NOT NULL AND person_linked_by NOT LIKE 'auto:%%')
               ORDER BY id""",
            (collection_id, model),
        )
        rows = cur.fetchall()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    vectors = np.zeros((len(rows), 512), np.float64)
    for index, (_, centroid) in enumerate(rows):
        vector = array_of(centroid)
        vectors[index, : vector.shape[0]] = vector
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids, vectors / np.where(norms > 0, norms, 1.0)


def knn_pairs_sql(conn: psycopg.Connection, collection_id: int, model: str, threshold: float, k: int) -> list[tuple]:
    """The same pairs through pgvector: each cluster's k nearest centroids (HNSW) within the
    threshold. Kept for the benchmark, which compares it with the numpy pass."""
    return conn.execute(
        """SELECT c.id, n.id, n.distance FROM cluster c
           CROSS JOIN LATERAL (
               SELECT o.id, c.centroid_sum <=> o.centroid_sum AS distance FROM cluster o
               WHERE o.collection_id = c.collection_id AND o.embedding_model = c.embedding_model
                 AND o.id <> c.id AND NOT o.hidden AND o.centroid IS NOT NULL
               ORDER BY c.centroid <=> o.centroid LIMIT %s) n
           WHERE c.collection_id = %s AND c.embedding_model = %s AND NOT c.hidden AND c.centroid IS NOT NULL
             AND c.id < n.id AND n.distance <= %s""",
        (k, collection_id, model, threshold),
    ).fetchall()


def person_ids_of(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> list[int]:
    rows = conn.execute(
        "SELECT DISTINCT person_id FROM cluster WHERE id = ANY(%s) AND person_id IS NOT NULL ORDER BY 1",
        (list(cluster_ids),),
    ).fetchall()
    return [r[0] for r in rows]


def cluster_states(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> dict[int, ClusterState]:
    rows = conn.execute(
        """SELECT id, embedding_model, person_id, person_linked_by, verified, hidden FROM cluster
           WHERE id = ANY(%s)""",
        (list(cluster_ids),),
    ).fetchall()
    return {r[0]: ClusterState(*r) for r in rows}


def person_states(conn: psycopg.Connection, person_ids: Sequence[int]) -> dict[int, PersonState]:
    rows = conn.execute(
        """SELECT p.id, p.named, p.hidden,
                  count(c.id), count(c.id) FILTER (WHERE c.verified),
                  count(c.id) FILTER (WHERE c.person_linked_by IS NOT NULL AND c.person_linked_by NOT LIKE 'auto:%%')
           FROM person p LEFT JOIN cluster c ON c.person_id = p.id
           WHERE p.id = ANY(%s) GROUP BY p.id""",
        (list(person_ids),),
    ).fetchall()
    return {r[0]: PersonState(*r) for r in rows}


def clusters_of_persons(conn: psycopg.Connection, person_ids: Sequence[int]) -> dict[int, set[int]]:
    """Every cluster of these persons (of any embedding model), by person."""
    found: dict[int, set[int]] = {p: set() for p in person_ids}
    for cluster_id, person_id in conn.execute(
        "SELECT id, person_id FROM cluster WHERE person_id = ANY(%s)", (list(person_ids),)
    ).fetchall():
        found[person_id].add(cluster_id)
    return found


def blocked_pairs(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> set[tuple[int, int]]:
    """(lower id, higher id) pairs of these clusters that must never share a person: a cluster
    cannot-link, a cannot-link between their faces, or faces of one photo (different people)."""
    ids = list(cluster_ids)
    rows = conn.execute(
        """SELECT cluster_id_1, cluster_id_2 FROM cluster_cannot_link
           WHERE cluster_id_1 = ANY(%(ids)s) AND cluster_id_2 = ANY(%(ids)s)
           UNION
           SELECT least(a.cluster_id, b.cluster_id), greatest(a.cluster_id, b.cluster_id)
           FROM cannot_link l
           JOIN person_detection a ON a.id = l.detection_id_1
           JOIN person_detection b ON b.id = l.detection_id_2
           WHERE a.cluster_id = ANY(%(ids)s) AND b.cluster_id = ANY(%(ids)s) AND a.cluster_id <> b.cluster_id
           UNION
           SELECT a.cluster_id, b.cluster_id
           FROM person_detection a
           JOIN person_detection b ON b.photo_id = a.photo_id AND b.cluster_id > a.cluster_id
           WHERE a.cluster_id = ANY(%(ids)s) AND b.cluster_id = ANY(%(ids)s)""",
        {"ids": ids},
    ).fetchall()
    return {(a, b) for a, b in rows}


def person_cannot_links(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> set[tuple[int, int]]:
    """(cluster, person) pairs a user said are not the same person."""
    rows = conn.execute(
        "SELECT cluster_id, person_id FROM cluster_person_cannot_link WHERE cluster_id = ANY(%s)",
        (list(cluster_ids),),
    ).fetchall()
    return {(c, p) for c, p in rows}


def lone_cluster_candidates(conn: psycopg.Connection, collection_id: int, model: str, min_faces: int) -> list[int]:
    """Clusters that may get a person of their own (_LONE_CLUSTER), read before the locks; the
    write checks again under them."""
    rows = conn.execute(
        f"""SELECT c.id FROM cluster c
            WHERE c.collection_id = %(collection)s AND c.embedding_model = %(model)s AND {_LONE_CLUSTER}
            ORDER BY c.id""",  # noqa: S608 (a fixed condition; values are parameters)
        {"collection": collection_id, "model": model, "min_faces": min_faces},
    ).fetchall()
    return [r[0] for r in rows]


def create_lone_persons(
    conn: psycopg.Connection, collection_id: int, cluster_ids: Sequence[int], min_faces: int, *, by: str
) -> list[tuple[int, int]]:
    """One new auto-created 'Unknown' person for each of these (locked) clusters still without
    one, in one statement: the persons are alike, so the k-th new id goes to the k-th cluster.
    Returns (cluster, person) pairs in cluster order."""
    if not cluster_ids:
        return []
    rows = conn.execute(
        f"""WITH lone AS (
                SELECT c.id, row_number() OVER (ORDER BY c.id) AS n FROM cluster c
                WHERE c.id = ANY(%(ids)s) AND c.collection_id = %(collection)s AND {_LONE_CLUSTER}),
            made AS (
                INSERT INTO person (collection_id, first_name, auto_created, created_by)
                SELECT %(collection)s, %(name)s, true, %(by)s FROM lone
                RETURNING id),
            numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM made)
            UPDATE cluster c SET person_id = numbered.id, person_linked_by = %(by)s, person_linked_at = now(),
                   updated_at = now()
            FROM lone JOIN numbered USING (n)
            WHERE c.id = lone.id
            RETURNING c.id, c.person_id""",  # noqa: S608 (a fixed condition; values are parameters)
        {"ids": list(cluster_ids), "collection": collection_id, "min_faces": min_faces, "name": UNKNOWN_NAME, "by": by},
    ).fetchall()
    return sorted((r[0], r[1]) for r in rows)
