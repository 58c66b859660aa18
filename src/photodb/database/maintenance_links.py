"""SQL of maintenance's constraint work (photodb.maintenance.links and .similar): must-links,
what keeps two clusters apart, merging clusters, and the constraint-violation report. The split from
maintenance_repository is along that seam; the same rules apply (functions taking a connection,
the caller follows the lock order).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from photodb.database.clustering import centroids


def must_links(conn: psycopg.Connection, collection_id: int) -> list[tuple[int, int]]:
    rows = conn.execute(
        """SELECT l.detection_id_1, l.detection_id_2 FROM must_link l
           JOIN person_detection d ON d.id = l.detection_id_1 JOIN photo p ON p.id = d.photo_id
           WHERE p.collection_id = %s ORDER BY 1, 2""",
        (collection_id,),
    ).fetchall()
    return [(a, b) for a, b in rows]


def cannot_links(conn: psycopg.Connection, collection_id: int) -> set[tuple[int, int]]:
    rows = conn.execute(
        """SELECT l.detection_id_1, l.detection_id_2 FROM cannot_link l
           JOIN person_detection d ON d.id = l.detection_id_1 JOIN photo p ON p.id = d.photo_id
           WHERE p.collection_id = %s""",
        (collection_id,),
    ).fetchall()
    return {(a, b) for a, b in rows}


def insert_must_links(conn: psycopg.Connection, pairs: Sequence[tuple[int, int]], *, by: str) -> int:
    """Store must-links (each pair in canonical order, smaller id first); existing ones are kept."""
    if not pairs:
        return 0
    return conn.execute(
        """INSERT INTO must_link (detection_id_1, detection_id_2, created_by)
           SELECT a, b, %s FROM unnest(%s::bigint[], %s::bigint[]) AS u(a, b)
           ON CONFLICT (detection_id_1, detection_id_2) DO NOTHING""",
        (by, [a for a, _ in pairs], [b for _, b in pairs]),
    ).rowcount


def cluster_of_faces(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """(cluster, embedding model) of those of these faces that are in a cluster."""
    rows = conn.execute(
        """SELECT d.id, d.cluster_id, fe.embedding_model FROM person_detection d
           JOIN face_embedding fe ON fe.person_detection_id = d.id
           WHERE d.id = ANY(%s) AND d.cluster_id IS NOT NULL""",
        (list(detection_ids),),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def waiting_faces(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, str]:
    """The embedding model of those of these faces that wait in the unassigned pool (no cluster,
    status 'unassigned': not placed or taken out by hand, not pending a review)."""
    rows = conn.execute(
        """SELECT d.id, fe.embedding_model FROM person_detection d
           JOIN face_embedding fe ON fe.person_detection_id = d.id
           WHERE d.id = ANY(%s) AND d.cluster_id IS NULL AND d.cluster_status = 'unassigned'""",
        (list(detection_ids),),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def join_cluster(conn: psycopg.Connection, detection_id: int, cluster_id: int) -> None:
    """A waiting face (locked) joins a cluster (locked) as automatic work; the caller recounts it.
    A must-linked face is never held back by the quality gate, so its reason is cleared."""
    conn.execute(
        """UPDATE person_detection SET cluster_id = %s, cluster_status = 'auto', cluster_confidence = NULL,
               unassigned_since = NULL, quality_issue = NULL
           WHERE id = %s""",
        (cluster_id, detection_id),
    )


def blocked_cluster_pairs(conn: psycopg.Connection, collection_id: int) -> set[tuple[int, int]]:
    """Cluster pairs (smaller id first) that may never become one cluster: a cluster cannot-link,
    a cannot-link between their faces, or faces of one photo (different people) in both."""
    rows = conn.execute(
        """SELECT cl.cluster_id_1, cl.cluster_id_2 FROM cluster_cannot_link cl
           JOIN cluster c ON c.id = cl.cluster_id_1 WHERE c.collection_id = %(c)s
           UNION
           SELECT least(d1.cluster_id, d2.cluster_id), greatest(d1.cluster_id, d2.cluster_id)
           FROM cannot_link l
           JOIN person_detection d1 ON d1.id = l.detection_id_1
           JOIN person_detection d2 ON d2.id = l.detection_id_2
           JOIN photo p ON p.id = d1.photo_id
           WHERE p.collection_id = %(c)s AND d1.cluster_id <> d2.cluster_id
           UNION
           SELECT a.cluster_id, b.cluster_id
           FROM person_detection a
           JOIN person_detection b ON b.photo_id = a.photo_id AND b.cluster_id > a.cluster_id
           JOIN photo p ON p.id = a.photo_id
           WHERE p.collection_id = %(c)s""",
        {"c": collection_id},
    ).fetchall()
    return {(a, b) for a, b in rows}


def person_blocks(conn: psycopg.Connection, collection_id: int) -> set[tuple[int, int]]:
    """(cluster, person) pairs a person said are not the same (cluster_person_cannot_link)."""
    rows = conn.execute(
        """SELECT x.cluster_id, x.person_id FROM cluster_person_cannot_link x
           JOIN cluster c ON c.id = x.cluster_id WHERE c.collection_id = %s""",
        (collection_id,),
    ).fetchall()
    return {(a, b) for a, b in rows}


def lock_members(conn: psycopg.Connection, cluster_ids: Sequence[int], detection_ids: Sequence[int] = ()) -> list[int]:
    """Step 3 for whole clusters and some faces: their detection rows, in id order."""
    rows = conn.execute(
        "SELECT id FROM person_detection WHERE cluster_id = ANY(%s) OR id = ANY(%s) ORDER BY id FOR UPDATE",
        (list(cluster_ids), list(detection_ids)),
    ).fetchall()
    return [r[0] for r in rows]


def clusters_with_new_members(conn: psycopg.Connection, cluster_ids: Sequence[int], locked: Sequence[int]) -> set[int]:
    """Clusters (already locked) that gained a face between locking their faces and locking them."""
    rows = conn.execute(
        "SELECT DISTINCT cluster_id FROM person_detection WHERE cluster_id = ANY(%s) AND id <> ALL(%s)",
        (list(cluster_ids), list(locked)),
    ).fetchall()
    return {r[0] for r in rows}


def group_conflict(conn: psycopg.Connection, cluster_ids: Sequence[int]) -> str | None:
    """Why these (locked) clusters may not become one, read now; None when they may."""
    row = conn.execute(
        """SELECT
             (SELECT count(*) FROM cluster WHERE id = ANY(%(g)s)),
             (SELECT count(DISTINCT embedding_model) FROM cluster WHERE id = ANY(%(g)s)),
             (SELECT count(*) FROM cluster WHERE id = ANY(%(g)s) AND verified),
             (SELECT count(DISTINCT person_id) FROM cluster WHERE id = ANY(%(g)s)),
             EXISTS (SELECT 1 FROM cluster_cannot_link
                     WHERE cluster_id_1 = ANY(%(g)s) AND cluster_id_2 = ANY(%(g)s)),
             EXISTS (SELECT 1 FROM cannot_link l
                     JOIN person_detection a ON a.id = l.detection_id_1
                     JOIN person_detection b ON b.id = l.detection_id_2
                     WHERE a.cluster_id = ANY(%(g)s) AND b.cluster_id = ANY(%(g)s)),
             EXISTS (SELECT 1 FROM person_detection a
                     JOIN person_detection b ON b.photo_id = a.photo_id AND b.cluster_id > a.cluster_id
                     WHERE a.cluster_id = ANY(%(g)s) AND b.cluster_id = ANY(%(g)s)),
             EXISTS (SELECT 1 FROM cluster_person_cannot_link x JOIN cluster c ON c.person_id = x.person_id
                     WHERE c.id = ANY(%(g)s) AND x.cluster_id = ANY(%(g)s))""",
        {"g": list(cluster_ids)},
    ).fetchone()
    assert row is not None
    existing, models, verified, persons, cluster_block, face_block, same_photo, person_block = row
    reasons = [
        (existing < len(set(cluster_ids)), "a cluster is gone"),
        (models > 1, "different embedding models"),
        (verified > 1, "two verified clusters"),
        (persons > 1, "linked to different persons"),
        (cluster_block, "a cluster cannot-link"),
        (face_block, "a cannot-link between their faces"),
        (same_photo, "faces of one photo in both"),
        (person_block, "a cluster is cannot-linked to the person"),
    ]
    found = [why for bad, why in reasons if bad]
    return "; ".join(found) if found else None


def merge_clusters(conn: psycopg.Connection, target: int, losers: Sequence[int], *, by: str) -> int:
    """Move every face of `losers` into `target` and delete them (all locked; the caller checked
    group_conflict and picked the target: a verified cluster is never a loser). The target takes
    a loser's person link when it has none (with who made it), their cannot-links (cluster and
    person) and their review candidates (a rejection wins: "this face is not that cluster" stays
    said of the merged one); its count and sum are recounted from the members.
    Returns the faces moved."""
    losers = [c for c in losers if c != target]
    if not losers:
        return 0
    moved = conn.execute(
        "UPDATE person_detection SET cluster_id = %s WHERE cluster_id = ANY(%s)", (target, losers)
    ).rowcount
    conn.execute(
        """UPDATE cluster t SET person_id = l.person_id, person_linked_by = l.person_linked_by,
               person_linked_at = l.person_linked_at
           FROM (SELECT person_id, person_linked_by, person_linked_at FROM cluster
                 WHERE id = ANY(%s) AND person_id IS NOT NULL ORDER BY id LIMIT 1) l
           WHERE t.id = %s AND t.person_id IS NULL""",
        (losers, target),
    )
    conn.execute(
        """UPDATE cluster t SET medoid_detection_id = l.medoid_detection_id,
               representative_detection_id = coalesce(t.representative_detection_id, l.medoid_detection_id)
           FROM (SELECT medoid_detection_id FROM cluster WHERE id = ANY(%s) AND medoid_detection_id IS NOT NULL
                 ORDER BY face_count DESC, id LIMIT 1) l
           WHERE t.id = %s AND t.medoid_detection_id IS NULL""",
        (losers, target),
    )
    conn.execute(
        """INSERT INTO cluster_cannot_link (cluster_id_1, cluster_id_2, created_by)
           SELECT least(%(t)s, x.other), greatest(%(t)s, x.other), x.created_by
           FROM (SELECT CASE WHEN cluster_id_1 = ANY(%(l)s) THEN cluster_id_2 ELSE cluster_id_1 END AS other,
                        created_by
                 FROM cluster_cannot_link WHERE cluster_id_1 = ANY(%(l)s) OR cluster_id_2 = ANY(%(l)s)) x
           WHERE x.other <> %(t)s AND x.other <> ALL(%(l)s)
           ON CONFLICT (cluster_id_1, cluster_id_2) DO NOTHING""",
        {"t": target, "l": losers},
    )
    conn.execute(
        """INSERT INTO cluster_person_cannot_link (cluster_id, person_id, created_by)
           SELECT %s, person_id, created_by FROM cluster_person_cannot_link WHERE cluster_id = ANY(%s)
           ON CONFLICT (cluster_id, person_id) DO NOTHING""",
        (target, losers),
    )
    conn.execute(
        """INSERT INTO face_match_candidate (detection_id, cluster_id, similarity, status, created_at,
                                             reviewed_by, reviewed_at)
           SELECT DISTINCT ON (detection_id) detection_id, %s, similarity, status, created_at, reviewed_by, reviewed_at
           FROM face_match_candidate WHERE cluster_id = ANY(%s)
           ORDER BY detection_id, status = 'rejected' DESC, similarity DESC
           ON CONFLICT (detection_id, cluster_id) DO UPDATE
               SET status = EXCLUDED.status, reviewed_by = EXCLUDED.reviewed_by, reviewed_at = EXCLUDED.reviewed_at
               WHERE EXCLUDED.status = 'rejected'""",
        (target, losers),
    )
    conn.execute("DELETE FROM cluster WHERE id = ANY(%s)", (losers,))
    centroids.recount_clusters(conn, [target])
    conn.execute("UPDATE cluster SET updated_at = now() WHERE id = %s", (target,))
    return moved


def constraint_violations(conn: psycopg.Connection, collection_id: int | None) -> dict[str, list[str]]:
    """What breaks a constraint now, one line each: cannot-linked faces in one cluster, faces of
    one photo in one cluster, must-linked faces in two clusters."""
    scope = {"c": collection_id}
    cannot = conn.execute(
        """SELECT l.detection_id_1, l.detection_id_2, a.cluster_id FROM cannot_link l
           JOIN person_detection a ON a.id = l.detection_id_1
           JOIN person_detection b ON b.id = l.detection_id_2
           JOIN photo p ON p.id = a.photo_id
           WHERE a.cluster_id = b.cluster_id AND (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
           ORDER BY 3, 1, 2""",
        scope,
    ).fetchall()
    photo = conn.execute(
        """SELECT d.cluster_id, d.photo_id, array_agg(d.id ORDER BY d.id) FROM person_detection d
           JOIN photo p ON p.id = d.photo_id
           WHERE d.cluster_id IS NOT NULL AND (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
           GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2""",
        scope,
    ).fetchall()
    split = conn.execute(
        """SELECT l.detection_id_1, a.cluster_id, l.detection_id_2, b.cluster_id FROM must_link l
           JOIN person_detection a ON a.id = l.detection_id_1
           JOIN person_detection b ON b.id = l.detection_id_2
           JOIN photo p ON p.id = a.photo_id
           WHERE a.cluster_id <> b.cluster_id AND (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
           ORDER BY 1, 3""",
        scope,
    ).fetchall()
    return {
        "cannot_link_in_one_cluster": [
            f"faces {a} and {b} are cannot-linked but both in cluster {c}" for a, b, c in cannot
        ],
        "same_photo_in_one_cluster": [
            f"faces {', '.join(map(str, ids))} of photo {p} are all in cluster {c}" for c, p, ids in photo
        ],
        "must_link_split": [
            f"faces {a} (cluster {ca}) and {b} (cluster {cb}) are must-linked but in two clusters"
            for a, ca, b, cb in split
        ],
    }
