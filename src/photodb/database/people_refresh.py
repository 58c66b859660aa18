"""The people-refresh record of a collection (migration 0031) and its lock.

The lock is a transaction-scoped advisory lock taken with try (nobody waits for it), so it works
through PgBouncer in transaction mode and is gone when its holder's connection is. It is taken
before, and held around, every lock of clustering (database.clustering.locks): an outer step 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

#: Second half of the advisory key (collection id, this): no embedding model is named so.
LOCK_NAME = "photodb:people-refresh"


@dataclass(frozen=True)
class RefreshState:
    requested: int
    refreshed: int
    detection_watermark: int


def request(conn: psycopg.Connection, collection_id: int) -> int:
    """Ask for a refresh (its own short transaction: nobody holds this row for long); the new count."""
    row = conn.execute(
        """INSERT INTO people_refresh (collection_id, requested) VALUES (%s, 1)
           ON CONFLICT (collection_id) DO UPDATE SET requested = people_refresh.requested + 1
           RETURNING requested""",
        (collection_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def try_lock(conn: psycopg.Connection, collection_id: int) -> bool:
    """The refresh lock of one collection for the caller's transaction, or False when another holds it."""
    row = conn.execute(
        "SELECT pg_try_advisory_xact_lock(%s::integer, hashtext(%s))", (collection_id, LOCK_NAME)
    ).fetchone()
    assert row is not None
    return bool(row[0])


def state(conn: psycopg.Connection, collection_id: int, *, for_update: bool = False) -> RefreshState:
    """The record (zeros before the first request); `for_update` holds its row until commit, so
    a request made meanwhile waits and is seen by the holder's next look, or finds the lock free."""
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        f"SELECT requested, refreshed, detection_watermark FROM people_refresh WHERE collection_id = %s{lock}",  # noqa: S608 (a fixed clause)
        (collection_id,),
    ).fetchone()
    return RefreshState(*row) if row is not None else RefreshState(0, 0, 0)


def mark_refreshed(conn: psycopg.Connection, collection_id: int, *, requested: int, watermark: int, by: str) -> None:
    conn.execute(
        """INSERT INTO people_refresh (collection_id, requested, refreshed, detection_watermark, refreshed_at,
                                       refreshed_by)
           VALUES (%(c)s, %(r)s, %(r)s, %(w)s, now(), %(by)s)
           ON CONFLICT (collection_id) DO UPDATE
           SET refreshed = %(r)s, detection_watermark = %(w)s, refreshed_at = now(), refreshed_by = %(by)s""",
        {"c": collection_id, "r": requested, "w": watermark, "by": by},
    )


def latest_face(conn: psycopg.Connection, collection_id: int) -> int:
    """The highest id of a detection with a face embedding in the collection (0: none): a backward
    walk of face_embedding's key that stops at the first face of the collection."""
    row = conn.execute(
        """SELECT fe.person_detection_id FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s
           ORDER BY fe.person_detection_id DESC LIMIT 1""",
        (collection_id,),
    ).fetchone()
    return int(row[0]) if row is not None else 0


def clusters_of_faces_after(conn: psycopg.Connection, collection_id: int, detection_id: int) -> list[int]:
    """Clusters holding a face detected after `detection_id`: the ones that changed since."""
    rows = conn.execute(
        """SELECT DISTINCT pd.cluster_id FROM person_detection pd
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s AND pd.id > %s AND pd.cluster_id IS NOT NULL
           ORDER BY 1""",
        (collection_id, detection_id),
    ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class PeopleCounts:
    persons: int
    named: int
    unsorted_faces: int


def people_counts(conn: psycopg.Connection, collection_id: int) -> PeopleCounts:
    """Visible persons (named ones apart) and faces in no cluster, as the run summary tells them."""
    row = conn.execute(
        """SELECT (SELECT count(*) FROM person p
                   WHERE p.collection_id = %(c)s AND NOT p.hidden
                     AND EXISTS (SELECT 1 FROM cluster c WHERE c.person_id = p.id AND c.face_count > 0)),
                  (SELECT count(*) FROM person p
                   WHERE p.collection_id = %(c)s AND NOT p.hidden AND p.named),
                  (SELECT count(*) FROM face_embedding fe
                   JOIN person_detection pd ON pd.id = fe.person_detection_id
                   JOIN photo ph ON ph.id = pd.photo_id
                   WHERE ph.collection_id = %(c)s AND pd.cluster_id IS NULL AND pd.face_bbox_x IS NOT NULL)""",
        {"c": collection_id},
    ).fetchone()
    assert row is not None
    return PeopleCounts(*row)
