"""SQL of splitting a cluster or a person in two (photodb.people.split). Functions take a
connection so the caller composes one transaction in the lock order of
database.clustering.locks: model lock, detection rows, cluster rows, person rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg

from photodb.database.clustering.faces import array_of


@dataclass(frozen=True)
class Member:
    """A face of the cluster or person being split."""

    detection_id: int
    photo_id: int
    cluster_id: int | None
    embedding: np.ndarray
    path: str


def person_collection(conn: psycopg.Connection, person_id: int) -> int | None:
    row = conn.execute("SELECT collection_id FROM person WHERE id = %s", (person_id,)).fetchone()
    return row[0] if row else None


def person_models(conn: psycopg.Connection, person_id: int) -> list[str]:
    """The embedding models of a person's faces (through its clusters or linked directly)."""
    rows = conn.execute(
        """SELECT DISTINCT fe.embedding_model FROM person_detection d
           JOIN face_embedding fe ON fe.person_detection_id = d.id
           LEFT JOIN cluster c ON c.id = d.cluster_id
           WHERE c.person_id = %s OR (d.person_id = %s AND d.cluster_id IS NULL) ORDER BY 1""",
        (person_id, person_id),
    ).fetchall()
    return [r[0] for r in rows]


_MEMBERS = """
    SELECT d.id, d.photo_id, d.cluster_id, fe.embedding,
           CASE WHEN k.root_path IS NULL THEN p.filename ELSE rtrim(k.root_path, '/') || '/' || p.filename END
    FROM person_detection d
    JOIN face_embedding fe ON fe.person_detection_id = d.id
    JOIN photo p ON p.id = d.photo_id
    JOIN collection k ON k.id = p.collection_id
    LEFT JOIN cluster c ON c.id = d.cluster_id
    WHERE (%(cluster)s::bigint IS NOT NULL AND d.cluster_id = %(cluster)s)
       OR (%(person)s::bigint IS NOT NULL
           AND (c.person_id = %(person)s OR (d.person_id = %(person)s AND d.cluster_id IS NULL)))
    ORDER BY d.id
"""


def members(
    conn: psycopg.Connection, *, cluster_id: int | None = None, person_id: int | None = None, lock: bool = False
) -> list[Member]:
    """The faces of a cluster, or of a person (its clusters' faces and faces linked to it without a
    cluster), in id order; with `lock`, their detection rows FOR UPDATE (step 3 of the lock order)."""
    query = _MEMBERS + (" FOR UPDATE OF d" if lock else "")
    with conn.cursor(binary=True) as cur:
        cur.execute(query, {"cluster": cluster_id, "person": person_id})
        return [Member(r[0], r[1], r[2], array_of(r[3]).astype(np.float32), r[4]) for r in cur]


def links_within(conn: psycopg.Connection, table: str, detection_ids: Sequence[int]) -> list[tuple[int, int]]:
    """must_link or cannot_link pairs whose both faces are among these."""
    if table not in ("must_link", "cannot_link"):
        raise ValueError(table)
    rows = conn.execute(
        f"""SELECT detection_id_1, detection_id_2 FROM {table}
            WHERE detection_id_1 = ANY(%s) AND detection_id_2 = ANY(%s)""",  # noqa: S608 (a fixed table name)
        (list(detection_ids), list(detection_ids)),
    ).fetchall()
    return [(a, b) for a, b in rows]


def insert_cluster(conn: psycopg.Connection, collection_id: int, model: str, person_id: int | None, by: str) -> int:
    """An empty cluster (its faces, sums and medoid follow); linked to `person_id` when given."""
    row = conn.execute(
        """INSERT INTO cluster (collection_id, embedding_model, person_id, person_linked_by, person_linked_at)
           VALUES (%s, %s, %s, CASE WHEN %s::bigint IS NULL THEN NULL ELSE %s END,
                   CASE WHEN %s::bigint IS NULL THEN NULL ELSE now() END)
           RETURNING id""",
        (collection_id, model, person_id, person_id, by, person_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def place_faces(conn: psycopg.Connection, detection_ids: Sequence[int], cluster_id: int) -> None:
    """Put faces (locked) in a cluster by hand: 'manual', so a re-bootstrap keeps them there."""
    conn.execute(
        """UPDATE person_detection SET cluster_id = %s, cluster_status = 'manual', cluster_confidence = NULL,
               quality_issue = NULL, unassigned_since = NULL
           WHERE id = ANY(%s)""",
        (cluster_id, list(detection_ids)),
    )


def pin_faces(conn: psycopg.Connection, detection_ids: Sequence[int]) -> None:
    """Faces that stay where they are, now as a person's decision ('manual')."""
    conn.execute(
        "UPDATE person_detection SET cluster_status = 'manual', cluster_confidence = NULL WHERE id = ANY(%s)",
        (list(detection_ids),),
    )


def relink_faces(conn: psycopg.Connection, detection_ids: Sequence[int], person_id: int) -> None:
    """Faces linked to a person without a cluster go to another person."""
    conn.execute("UPDATE person_detection SET person_id = %s WHERE id = ANY(%s)", (person_id, list(detection_ids)))


def set_medoids(conn: psycopg.Connection, medoids: dict[int, int]) -> None:
    """Each cluster's medoid (and representative, when it no longer belongs to the cluster)."""
    for cluster_id, detection_id in sorted(medoids.items()):
        conn.execute(
            """UPDATE cluster c SET medoid_detection_id = %s, face_count_at_last_medoid = c.face_count,
                   representative_detection_id = CASE
                       WHEN EXISTS (SELECT 1 FROM person_detection d
                                    WHERE d.id = c.representative_detection_id AND d.cluster_id = c.id)
                       THEN c.representative_detection_id ELSE %s END
               WHERE c.id = %s""",
            (detection_id, detection_id, cluster_id),
        )


def add_cluster_cannot_links(conn: psycopg.Connection, pairs: Sequence[tuple[int, int]], by: str) -> int:
    if not pairs:
        return 0
    first = [min(p) for p in pairs]
    second = [max(p) for p in pairs]
    cur = conn.execute(
        """INSERT INTO cluster_cannot_link (cluster_id_1, cluster_id_2, created_by)
           SELECT a, b, %s FROM unnest(%s::bigint[], %s::bigint[]) AS u(a, b) WHERE a <> b
           ON CONFLICT (cluster_id_1, cluster_id_2) DO NOTHING""",
        (by, first, second),
    )
    return cur.rowcount


def add_cluster_person_cannot_links(conn: psycopg.Connection, pairs: Sequence[tuple[int, int]], by: str) -> int:
    """(cluster, person) pairs: that cluster is never linked to that person by automatic work."""
    if not pairs:
        return 0
    cur = conn.execute(
        """INSERT INTO cluster_person_cannot_link (cluster_id, person_id, created_by)
           SELECT c, p, %s FROM unnest(%s::bigint[], %s::bigint[]) AS u(c, p)
           ON CONFLICT (cluster_id, person_id) DO NOTHING""",
        (by, [c for c, _ in pairs], [p for _, p in pairs]),
    )
    return cur.rowcount
