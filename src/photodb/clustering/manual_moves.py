"""Manual moves of one face between clusters: the face leaves its cluster (deleted if that empties
it), joins another or none, and is pinned ('manual') so that no later assignment moves it back.

Locks follow database.clustering.locks: the model (shared), the detection, then both clusters in id
order, so that two moves in opposite directions never deadlock. Sums and counts follow through
database.clustering.centroids, so every cluster stays exact.
"""

from __future__ import annotations

import psycopg

from photodb.database.clustering import centroids as centroid_db
from photodb.database.clustering import faces as face_db
from photodb.database.clustering import locks as lock_db
from photodb.database.clustering import manual as manual_db
from photodb.database.connection import Database


def move_face(db: Database, detection_id: int, cluster_id: int | None) -> None:
    """Move one face in a transaction of its own (`cluster_id` None: out of every cluster)."""
    with db.connection() as conn:
        info = face_db.face_models(conn, [detection_id]).get(detection_id)
    if info is None:
        raise LookupError(f"detection {detection_id} has no face embedding")
    with db.connection() as conn, conn.transaction():
        move_face_in(conn, detection_id, cluster_id, collection_id=info[0], model=info[1])


def move_face_in(
    conn: psycopg.Connection, detection_id: int, cluster_id: int | None, *, collection_id: int, model: str
) -> int | None:
    """move_face inside the caller's transaction, which has taken no clustering lock yet (the
    caller may go on with later steps of the lock order). Returns the cluster the face left."""
    lock_db.lock_model(conn, collection_id, model, shared=True)
    return move_locked_face(conn, detection_id, cluster_id)


def move_locked_face(conn: psycopg.Connection, detection_id: int, cluster_id: int | None) -> int | None:
    """The move itself, in the caller's transaction once it holds the face's model lock (shared), so
    that a command can compose it with its own writes; returns the cluster the face left."""
    face = manual_db.lock_face(conn, detection_id)
    if face is None:
        raise LookupError(f"detection {detection_id} was deleted (a detection rerun)")
    old = face.cluster_id
    live = lock_db.lock_clusters(conn, [c for c in (old, cluster_id) if c is not None])
    if cluster_id is not None and cluster_id not in live:
        raise LookupError(f"cluster {cluster_id} does not exist")
    if old != cluster_id:
        if old is not None:
            centroid_db.subtract_detections(conn, [detection_id])
        if cluster_id is not None:
            centroid_db.add_detection(conn, detection_id, cluster_id)
    manual_db.set_detection_cluster(conn, detection_id, cluster_id, "manual")
    if old is not None and old != cluster_id:
        manual_db.delete_cluster_if_empty(conn, old)
    return old
