"""Tasks that keep each cluster's own figures right: centroids, counts, medoids, empty clusters,
and the unassigned pool turned into singleton clusters."""

from __future__ import annotations

import psycopg

from photodb.config import Settings
from photodb.database import maintenance_repository as repo
from photodb.maintenance.tasks import Options, Outcome, lock_collection_models

SINGLETON_BY = "auto:cleanup-unassigned"


def recompute_centroids(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Every cluster's face_count and centroid_sum from its members again, and its centroid by the
    one centroid rule. The cluster rows are locked first (in id order): nobody joins or leaves a
    cluster without its lock, so the members read next are the members."""
    lock_collection_models(conn, collection_id)
    clusters = repo.lock_collection_clusters(conn, collection_id)
    return Outcome({"clusters": clusters, "corrected": repo.recompute_centroids(conn, collection_id)})


def cleanup_empty(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Delete clusters without faces, never a verified one or one linked to a person."""
    lock_collection_models(conn, collection_id)
    doomed = repo.empty_cluster_ids(conn, collection_id, lock=True)
    return Outcome({"deleted": repo.delete_empty_clusters(conn, doomed)})


def update_stats(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Fresh planner statistics; clusters whose face_count is wrong are recounted, and those whose
    medoid or representative is missing or no longer one of their faces get a new one."""
    analyzed = repo.analyze_tables(conn)
    lock_collection_models(conn, collection_id)
    miscounted = repo.miscounted_cluster_ids(conn, collection_id)
    broken = repo.broken_medoid_cluster_ids(conn, collection_id)
    locked = set(repo.lock_clusters(conn, [*miscounted, *broken]))
    recounted = repo.recount(conn, miscounted)
    # a recount may have filled one, or a face left while unlocked: only locked clusters are written
    broken = [c for c in repo.broken_medoid_cluster_ids(conn, collection_id) if c in locked]
    return Outcome(
        {"tables_analyzed": analyzed, "recounted": recounted, "medoids_repaired": repo.set_medoids(conn, broken)}
    )


def update_medoids(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """The medoid of each cluster that has none, or whose face_count moved by at least
    options.medoid_change_share (20 %) of face_count_at_last_medoid (and by one face or more)."""
    lock_collection_models(conn, collection_id)
    due = repo.stale_medoid_cluster_ids(conn, collection_id, options.medoid_change_share)
    repo.lock_clusters(conn, due)
    changed = repo.set_medoids(conn, due)
    return Outcome({"recomputed": len(due), "changed": changed})


def cleanup_unassigned(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """A singleton cluster for each face unassigned for longer than options.unassigned_older_than
    (UNASSIGNED_SINGLETON_DAYS), so that later faces of that person can join it."""
    lock_collection_models(conn, collection_id)
    faces = repo.old_unassigned_faces(conn, collection_id, options.unassigned_older_than)
    repo.lock_detections(conn, faces)
    return Outcome({"singletons": repo.make_singletons(conn, faces, by=SINGLETON_BY)})
