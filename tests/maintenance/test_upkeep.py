"""The per-cluster tasks: each changes what it should, nothing else, and nothing on a rerun."""

from __future__ import annotations

from datetime import timedelta

from photodb import maintenance
from photodb.database import maintenance_repository as repo
from photodb.maintenance import Options
from photodb.maintenance.upkeep import SINGLETON_BY
from tests.clustering.conftest import assert_clusters_exact
from tests.maintenance.conftest import Library, run, snapshot


def test_recompute_centroids_repairs_a_wrong_sum_and_count_and_nothing_else(db):
    lib = Library(db)
    _, _, broken = lib.identity(6)
    for _ in range(3):
        lib.identity(5)
    before = snapshot(db)
    with db.connection() as conn:
        conn.execute(
            """UPDATE cluster SET face_count = 9, centroid_sum = centroid_sum + centroid_sum, centroid = NULL
               WHERE id = %s""",
            (broken,),
        )
    assert run(db, maintenance.RECOMPUTE_CENTROIDS) == {"clusters": 4, "corrected": 1}
    assert_clusters_exact(db)
    after = snapshot(db)
    assert after["faces"] == before["faces"]
    unchanged = [row for row in after["clusters"] if row[0] != broken]
    assert unchanged == [row for row in before["clusters"] if row[0] != broken]  # the others were not written
    assert run(db, maintenance.RECOMPUTE_CENTROIDS)["corrected"] == 0
    assert snapshot(db) == after


def test_cleanup_empty_keeps_verified_and_person_linked_clusters(db):
    lib = Library(db)
    _, _, keep = lib.identity(4)
    with db.connection() as conn:
        person = conn.execute(
            "INSERT INTO person (collection_id, first_name, created_by) VALUES (1, 'Grace', 'user') RETURNING id"
        ).fetchone()[0]
        empty = [
            conn.execute(
                "INSERT INTO cluster (collection_id, embedding_model, verified, verified_at, person_id) "
                "VALUES (1, 'arcface', %s, CASE WHEN %s THEN now() END, %s) RETURNING id",
                (verified, verified, person_id),
            ).fetchone()[0]
            for verified, person_id in ((False, None), (False, None), (True, None), (False, person))
        ]
    assert run(db, maintenance.CLEANUP_EMPTY) == {"deleted": 2}
    with db.connection() as conn:
        left = [r[0] for r in conn.execute("SELECT id FROM cluster ORDER BY id").fetchall()]
    assert left == [keep, empty[2], empty[3]]
    assert run(db, maintenance.CLEANUP_EMPTY) == {"deleted": 0}


def test_update_stats_recounts_a_wrong_count_and_repairs_a_medoid_that_left(db):
    lib = Library(db)
    _, _, miscounted = lib.identity(6)
    _, others, lost_medoid = lib.identity(6)
    _, _, fine = lib.identity(5)
    with db.connection() as conn:
        conn.execute("UPDATE cluster SET face_count = 2 WHERE id = %s", (miscounted,))
        medoid = conn.execute("SELECT medoid_detection_id FROM cluster WHERE id = %s", (lost_medoid,)).fetchone()[0]
    lone = lib.cluster([medoid])  # the medoid moved away without the cluster being told
    with db.connection() as conn:
        conn.execute("UPDATE cluster SET face_count = 5 WHERE id = %s", (lost_medoid,))  # (as a move would)
        fine_before = conn.execute("SELECT * FROM cluster WHERE id = %s", (fine,)).fetchone()
    changes = run(db, maintenance.UPDATE_STATS)
    assert changes == {"tables_analyzed": 3, "recounted": 1, "medoids_repaired": 1}
    with db.connection() as conn:
        count = conn.execute("SELECT face_count FROM cluster WHERE id = %s", (miscounted,)).fetchone()[0]
        new_medoid = conn.execute(
            "SELECT medoid_detection_id, representative_detection_id FROM cluster WHERE id = %s", (lost_medoid,)
        ).fetchone()
        assert conn.execute("SELECT * FROM cluster WHERE id = %s", (fine,)).fetchone() == fine_before
    assert count == 6
    assert new_medoid[0] in others and new_medoid[0] != medoid and new_medoid[1] == new_medoid[0]
    assert lone
    assert run(db, maintenance.UPDATE_STATS) == {"tables_analyzed": 3, "recounted": 0, "medoids_repaired": 0}


def test_update_medoids_only_where_the_count_moved_a_fifth_and_picks_the_face_nearest_the_sum(db):
    lib = Library(db)
    centre = lib.centre()
    grown_faces = lib.faces(centre, 10)
    grown = lib.cluster(grown_faces[:5])
    steady = lib.cluster(lib.faces(lib.centre(), 10))
    with db.connection() as conn:
        # 5 -> 10 faces since the last medoid: due; the other cluster: 10 -> 11 is a tenth, not due
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = ANY(%s)", (grown, grown_faces[5:]))
        repo.recount(conn, [grown])
        conn.execute("UPDATE cluster SET face_count_at_last_medoid = 10, face_count = 11 WHERE id = %s", (steady,))
        steady_row = conn.execute("SELECT medoid_detection_id FROM cluster WHERE id = %s", (steady,)).fetchone()
    assert run(db, maintenance.UPDATE_MEDOIDS)["recomputed"] == 1
    with db.connection() as conn:
        medoid, at = conn.execute(
            "SELECT medoid_detection_id, face_count_at_last_medoid FROM cluster WHERE id = %s", (grown,)
        ).fetchone()
        vectors = {
            d: e.to_numpy()
            for d, e in conn.execute(
                "SELECT person_detection_id, embedding FROM face_embedding WHERE person_detection_id = ANY(%s)",
                (grown_faces,),
            ).fetchall()
        }
        assert conn.execute("SELECT medoid_detection_id FROM cluster WHERE id = %s", (steady,)).fetchone() == steady_row
    summed = {d: sum(1 - v @ w for w in vectors.values()) for d, v in vectors.items()}  # summed cosine distances
    assert medoid == min(summed, key=summed.get) and at == 10
    assert run(db, maintenance.UPDATE_MEDOIDS) == {"recomputed": 0, "changed": 0}


def test_cleanup_unassigned_makes_singletons_of_old_pool_faces_only(db):
    lib = Library(db)
    old = lib.faces(lib.centre(), 3)
    young = lib.faces(lib.centre(), 2)
    manual = lib.faces(lib.centre(), 1)
    pending = lib.faces(lib.centre(), 1)
    with db.connection() as conn:
        conn.execute(
            "UPDATE person_detection SET cluster_status = 'unassigned', unassigned_since = now() - interval '40 days' "
            "WHERE id = ANY(%s)",
            (old,),
        )
        conn.execute(
            "UPDATE person_detection SET cluster_status = 'unassigned', unassigned_since = now() - interval '3 days' "
            "WHERE id = ANY(%s)",
            (young,),
        )
        conn.execute("UPDATE person_detection SET cluster_status = 'manual' WHERE id = ANY(%s)", (manual,))
        conn.execute("UPDATE person_detection SET cluster_status = 'pending' WHERE id = ANY(%s)", (pending,))
        assert repo.old_unassigned_faces(conn, 1, timedelta(days=30)) == old
    assert run(db, maintenance.CLEANUP_UNASSIGNED) == {"singletons": 3}
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT d.id, c.face_count, c.medoid_detection_id, c.created_by, d.cluster_status, d.unassigned_since
               FROM person_detection d JOIN cluster c ON c.id = d.cluster_id ORDER BY d.id"""
        ).fetchall()
        statuses = dict(conn.execute("SELECT id, cluster_status FROM person_detection").fetchall())
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [(d, 1, d, SINGLETON_BY, "auto", None) for d in old]
    assert_clusters_exact(db)
    assert statuses[manual[0]] == "manual" and statuses[pending[0]] == "pending"
    assert all(statuses[d] == "unassigned" for d in young)
    assert run(db, maintenance.CLEANUP_UNASSIGNED) == {"singletons": 0}
    assert run(db, maintenance.CLEANUP_UNASSIGNED, Options(unassigned_older_than=timedelta(0))) == {"singletons": 2}


def test_old_unassigned_faces_is_scoped_to_its_collection(db):
    lib = Library(db)
    faces = lib.faces(lib.centre(), 2)
    with db.connection() as conn:
        other = conn.execute("INSERT INTO collection (name) VALUES ('other') RETURNING id").fetchone()[0]
        conn.execute("UPDATE person_detection SET cluster_status = 'unassigned' WHERE id = ANY(%s)", (faces,))
        assert repo.old_unassigned_faces(conn, other, timedelta(0)) == []
        assert repo.old_unassigned_faces(conn, None, timedelta(0)) == faces
