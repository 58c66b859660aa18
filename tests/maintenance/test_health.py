"""health: the spec's figures on a database whose answer is known, and the problems it names."""

from __future__ import annotations

from photodb import maintenance
from photodb.maintenance.health import SPEC_KEYS
from tests.maintenance.conftest import Library, link


def known_library(db) -> dict[str, list[int] | int]:
    lib = Library(db)
    a_faces = lib.faces(lib.centre(), 4)
    a = lib.cluster(a_faces)
    b = lib.cluster(lib.faces(lib.centre(), 6), verified=True)
    c = lib.cluster(lib.faces(lib.centre(), 2))
    pool = lib.faces(lib.centre(), 2)
    pending = lib.faces(lib.centre(), 1)
    lib.faces(lib.centre(), 1)  # detected, never assigned
    with db.connection() as conn:
        conn.execute("UPDATE cluster SET medoid_detection_id = NULL WHERE id = %s", (c,))
        empty = conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model) VALUES (1, 'arcface') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "UPDATE person_detection SET cluster_status = 'unassigned', unassigned_since = now() WHERE id = ANY(%s)",
            (pool,),
        )
        conn.execute("UPDATE person_detection SET cluster_status = 'pending' WHERE id = %s", (pending[0],))
        conn.execute(
            """INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
               VALUES (%s, %s, 0.7), (%s, %s, 0.69)""",
            (pending[0], a, pending[0], b),
        )
        conn.execute(
            """INSERT INTO person (collection_id, first_name, auto_created, created_by)
               VALUES (1, 'Unknown', true, 'auto:associate'), (1, 'Ada', false, 'user'),
                      (1, 'Unknown', false, NULL), (1, 'Unknown', false, 'user')"""
        )
    link(db, "must_link", pool[0], pool[1])
    link(db, "cannot_link", a_faces[0], a_faces[1])
    return {"a": a, "c": c, "empty": empty, "a_faces": a_faces}


def test_health_figures_on_a_known_database(db):
    known = known_library(db)
    report = maintenance.health(db, None)
    assert list(report.figures)[: len(SPEC_KEYS)] == list(SPEC_KEYS)
    assert {k: report.figures[k] for k in SPEC_KEYS} == {
        "total_clusters": 4,
        "empty_clusters": 1,
        "clusters_without_centroids": 0,
        "clusters_without_medoids": 1,
        "avg_cluster_size": 4.0,
        "min_cluster_size": 2,
        "max_cluster_size": 6,
        "total_faces": 16,
        "unclustered_faces": 4,
        "must_link_count": 1,
        "cannot_link_count": 1,
        "verified_clusters": 1,
        "unassigned_pool_size": 2,
    }
    assert report.figures["faces_per_model"] == {"arcface": 16}
    assert report.figures["pending_review_candidates"] == 2
    # the automatic 'Unknown' and a placeholder nobody recorded naming; a user may call someone "Unknown"
    assert report.figures["persons_without_name"] == 2
    assert report.figures["constraint_violations"] == {
        "cannot_link_in_one_cluster": 1,
        "same_photo_in_one_cluster": 0,
        "must_link_split": 0,
    }
    a_faces = known["a_faces"]
    assert report.problems == [
        "clusters without faces: 1 (cleanup-empty deletes them)",
        "clusters with faces but no medoid: 1 (update-medoids)",
        f"cannot-linked faces in one cluster: 1, e.g. faces {a_faces[0]} and {a_faces[1]} are cannot-linked "
        f"but both in cluster {known['a']}",
    ]
    assert not report.ok


def test_weekly_leaves_a_healthy_database_and_scoping_to_another_collection_sees_nothing(db):
    known = known_library(db)
    with db.connection() as conn:
        conn.execute("DELETE FROM cannot_link")
        other = conn.execute("INSERT INTO collection (name) VALUES ('other') RETURNING id").fetchone()[0]
    results = maintenance.run_tasks(db, maintenance.WEEKLY, 1, maintenance.Options())
    assert all(r.ok for r in results), [r.as_dict() for r in results if not r.ok]
    report = maintenance.health(db, 1)
    assert report.ok, report.problems
    assert report.figures["empty_clusters"] == 0 and report.figures["clusters_without_medoids"] == 0
    assert report.figures["total_clusters"] == 3
    assert known["empty"]
    empty = maintenance.health(db, other)
    assert empty.figures["total_faces"] == 0 and empty.figures["total_clusters"] == 0 and empty.ok
