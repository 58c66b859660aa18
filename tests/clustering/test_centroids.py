"""Centroids as an exact running sum: adding, removing and recounting agree (issue 10, §4)."""

from __future__ import annotations

import numpy as np

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces
from photodb.clustering.manual_moves import move_face
from photodb.database.clustering import centroids
from photodb.database.detection_repository import DetectionRepository
from tests.clustering.conftest import assert_clusters_exact, clusters_of, insert


def photo_of(db, detection_id: int) -> int:
    with db.connection() as conn:
        return conn.execute("SELECT photo_id FROM person_detection WHERE id = %s", (detection_id,)).fetchone()[0]


def test_many_adds_moves_and_removals_leave_every_cluster_equal_to_a_recount(db, faces):
    base = insert(db, faces.embeddings[:450])
    bootstrap(db)
    assert_clusters_exact(db)  # what the bootstrap wrote
    new = insert(db, faces.embeddings[450:])
    assign_new_faces(db, new, force=True)
    got = clusters_of(db, base + new)
    clustered = [d for d in base + new if got[d] is not None]
    targets = sorted({got[d] for d in clustered})
    rng = np.random.default_rng(3)
    for k, det in enumerate(rng.choice(clustered, size=60, replace=False)):
        move_face(db, int(det), None if k % 4 == 0 else int(targets[k % len(targets)]))
    repo = DetectionRepository(db)
    for det in rng.choice(clustered, size=40, replace=False):
        repo.replace_detections(photo_of(db, int(det)), [], "test", "1")  # a rerun that finds no face
    assert_clusters_exact(db)


def test_a_detection_rerun_subtracts_its_faces_instead_of_re_averaging_the_cluster(db, faces):
    ids = insert(db, faces.embeddings[:300])
    bootstrap(db)
    got = clusters_of(db, ids)
    det = next(d for d in ids if got[d] is not None)
    cluster = got[det]
    marker = np.zeros(512, np.float32)
    marker[0] = 7.0  # a recount would drop it: the subtraction keeps it
    with db.connection() as conn:
        before = conn.execute("SELECT centroid_sum FROM cluster WHERE id = %s", (cluster,)).fetchone()[0].to_numpy()
        conn.execute("UPDATE cluster SET centroid_sum = %s WHERE id = %s", (before + marker, cluster))
        removed = (
            conn.execute("SELECT embedding FROM face_embedding WHERE person_detection_id = %s", (det,))
            .fetchone()[0]
            .to_numpy()
        )
    DetectionRepository(db).replace_detections(photo_of(db, det), [], "test", "1")
    with db.connection() as conn:
        after = conn.execute("SELECT centroid_sum FROM cluster WHERE id = %s", (cluster,)).fetchone()[0].to_numpy()
    assert np.allclose(after, before + marker - removed, atol=1e-4)


def test_the_indexed_centroid_is_rewritten_only_when_it_moves_beyond_the_tolerance(db):
    rng = np.random.default_rng(1)
    direction = rng.normal(size=512)
    direction /= np.linalg.norm(direction)
    noise = rng.normal(size=(2001, 512)) * 0.02
    vectors = (direction + noise) / np.linalg.norm(direction + noise, axis=1, keepdims=True)
    ids = insert(db, vectors.astype(np.float32))
    with db.connection() as conn:
        big, small = (
            conn.execute(
                "INSERT INTO cluster (collection_id, embedding_model) VALUES (1, 'arcface') RETURNING id"
            ).fetchone()[0]
            for _ in range(2)
        )
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = ANY(%s)", (big, ids[:1999]))
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = %s", (small, ids[1999]))
        centroids.recount_clusters(conn, [big, small])
        stored = dict(conn.execute("SELECT id, centroid::text FROM cluster").fetchall())
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = %s", (big, ids[2000]))
        centroids.add_detection(conn, ids[2000], big)  # one face more among 2,000 barely moves it
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = %s", (small, ids[2000]))
        centroids.add_detection(conn, ids[2000], small)
        # (the face is counted twice on purpose: only the centroid writes are under test here)
        after = dict(conn.execute("SELECT id, centroid::text FROM cluster").fetchall())
    assert after[big] == stored[big]
    assert after[small] != stored[small]


def test_adding_faces_that_leave_the_centroid_in_place_writes_no_index_entry(db):
    """The sum changes on every assignment; the update stays HOT (no HNSW entry) while the indexed
    centroid does not move beyond the tolerance."""
    rng = np.random.default_rng(2)
    direction = rng.normal(size=512)
    vectors = direction + rng.normal(size=(1020, 512)) * 0.02
    ids = insert(db, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32))
    with db.connection() as conn:
        cluster = conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model) VALUES (1, 'arcface') RETURNING id"
        ).fetchone()[0]
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = ANY(%s)", (cluster, ids[:1000]))
        centroids.recount_clusters(conn, [cluster])
    with db.connection() as conn:

        def hot_updates() -> tuple[int, int]:
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.commit()
            row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'cluster'")
            counts = row.fetchone()
            conn.commit()
            return counts

        before = hot_updates()
        for det in ids[1000:]:
            conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = %s", (cluster, det))
            centroids.add_detection(conn, det, cluster)
            conn.commit()
        after = hot_updates()
    assert after[0] - before[0] == 20
    assert after[1] - before[1] == 20
    assert_clusters_exact(db)
