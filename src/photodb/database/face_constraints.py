"""SQL of face-level decisions: the faces a command names, must-links and cannot-links between them.

Pairs are stored canonically (detection_id_1 < detection_id_2). A must-link set is the transitive
closure of must_link rows (what the bootstrap's union-find joins), so a cannot-link contradicts a
must-link when it falls anywhere inside one set, not only on the same pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg

LinkTable = Literal["must_link", "cannot_link"]


@dataclass(frozen=True)
class FaceInfo:
    id: int
    collection_id: int
    embedding_model: str | None  # None: a detection without a face embedding (a body alone)
    photo_id: int
    cluster_id: int | None
    person_id: int | None  # the face's own person (a face placed by hand without a cluster)
    status: str | None


def get_faces(conn: psycopg.Connection, detection_ids: Sequence[int], *, lock: bool = False) -> dict[int, FaceInfo]:
    """These detections; with `lock`, FOR UPDATE in id order (step 3 of the lock order)."""
    rows = conn.execute(
        f"""SELECT d.id, p.collection_id, fe.embedding_model, d.photo_id, d.cluster_id, d.person_id,
                   d.cluster_status
            FROM person_detection d JOIN photo p ON p.id = d.photo_id
            LEFT JOIN face_embedding fe ON fe.person_detection_id = d.id
            WHERE d.id = ANY(%s) ORDER BY d.id{" FOR UPDATE OF d" if lock else ""}""",  # noqa: S608
        (sorted(set(detection_ids)),),
    ).fetchall()
    return {r[0]: FaceInfo(*r) for r in rows}


def lock_faces_with_clusters(conn: psycopg.Connection, detection_id: int, cluster_ids: Sequence[int]) -> None:
    """Step 3 for "not this person": the face and every face of these clusters, in id order."""
    conn.execute(
        """SELECT id FROM person_detection WHERE id = %s OR cluster_id = ANY(%s)
           ORDER BY id FOR UPDATE""",
        (detection_id, list(cluster_ids)),
    ).fetchall()


def must_link_set(conn: psycopg.Connection, detection_id: int) -> set[int]:
    """Every face must-linked to this one, directly or through others (itself included)."""
    rows = conn.execute(
        """WITH RECURSIVE linked(id) AS (
               SELECT %s::bigint
               UNION
               SELECT CASE WHEN l.detection_id_1 = linked.id THEN l.detection_id_2 ELSE l.detection_id_1 END
               FROM linked JOIN must_link l ON linked.id IN (l.detection_id_1, l.detection_id_2))
           SELECT id FROM linked""",
        (detection_id,),
    ).fetchall()
    return {r[0] for r in rows}


def cannot_links_between(conn: psycopg.Connection, first: set[int], second: set[int]) -> list[tuple[int, int]]:
    """The cannot-link pairs with one face in each set."""
    rows = conn.execute(
        """SELECT detection_id_1, detection_id_2 FROM cannot_link
           WHERE (detection_id_1 = ANY(%(a)s) AND detection_id_2 = ANY(%(b)s))
              OR (detection_id_1 = ANY(%(b)s) AND detection_id_2 = ANY(%(a)s))
           ORDER BY 1, 2""",
        {"a": sorted(first), "b": sorted(second)},
    ).fetchall()
    return [(a, b) for a, b in rows]


def add_link(conn: psycopg.Connection, table: LinkTable, first: int, second: int, *, by: str) -> bool:
    """Store one pair (canonical order); False when it was already there."""
    if table not in ("must_link", "cannot_link"):
        raise ValueError(table)
    a, b = min(first, second), max(first, second)
    cur = conn.execute(
        f"""INSERT INTO {table} (detection_id_1, detection_id_2, created_by) VALUES (%s, %s, %s)
            ON CONFLICT (detection_id_1, detection_id_2) DO NOTHING""",  # noqa: S608
        (a, b, by),
    )
    return cur.rowcount > 0


def cannot_link_to_clusters(conn: psycopg.Connection, detection_id: int, cluster_ids: Sequence[int], *, by: str) -> int:
    """Cannot-link one face with every other face of these clusters; returns the new rows."""
    cur = conn.execute(
        """INSERT INTO cannot_link (detection_id_1, detection_id_2, created_by)
           SELECT least(%(f)s, d.id), greatest(%(f)s, d.id), %(by)s FROM person_detection d
           WHERE d.cluster_id = ANY(%(c)s) AND d.id <> %(f)s
           ON CONFLICT (detection_id_1, detection_id_2) DO NOTHING""",
        {"f": detection_id, "c": list(cluster_ids), "by": by},
    )
    return cur.rowcount


def faces_in_clusters(conn: psycopg.Connection, detection_ids: set[int], cluster_ids: Sequence[int]) -> list[int]:
    """Those of these faces that sit in these clusters."""
    rows = conn.execute(
        "SELECT id FROM person_detection WHERE id = ANY(%s) AND cluster_id = ANY(%s) ORDER BY id",
        (sorted(detection_ids), list(cluster_ids)),
    ).fetchall()
    return [r[0] for r in rows]


def face_links(conn: psycopg.Connection, detection_id: int) -> dict[str, list[int]]:
    """The faces this one is must-linked and cannot-linked with (directly)."""
    out: dict[str, list[int]] = {}
    for table in ("must_link", "cannot_link"):
        rows = conn.execute(
            f"""SELECT CASE WHEN detection_id_1 = %(f)s THEN detection_id_2 ELSE detection_id_1 END AS other
                FROM {table} WHERE detection_id_1 = %(f)s OR detection_id_2 = %(f)s ORDER BY 1""",  # noqa: S608
            {"f": detection_id},
        ).fetchall()
        out[table] = [r[0] for r in rows]
    return out
