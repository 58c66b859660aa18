"""weekly end to end on a bootstrapped library: user decisions survive, a rerun changes nothing,
and it runs safely beside incremental assignment and a second maintenance run."""

from __future__ import annotations

import threading

from photodb import maintenance
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces
from tests.clustering.conftest import assert_clusters_exact, insert
from tests.clustering.test_lock_order import Worker, holding, wait_for_lock_waiters

#: Changes that report work looked at, not work done (a rerun still counts them).
SEEN = {"clusters", "tables_analyzed", "refused_linkage", "refused_rules"}  # looked at, not changed


def done(result: maintenance.TaskResult) -> dict[str, int]:
    """What a task changed (beyond what it only looked at)."""
    return {k: v for k, v in result.changes.items() if k not in SEEN and v}


def test_weekly_keeps_user_decisions_and_a_second_run_changes_nothing(db, faces):
    ids = insert(db, faces.embeddings[:450])
    bootstrap(db)
    with db.connection() as conn:
        verified, named = [
            r[0] for r in conn.execute("SELECT id FROM cluster ORDER BY face_count DESC, id LIMIT 2").fetchall()
        ]
        conn.execute(
            "UPDATE cluster SET verified = true, verified_at = now(), verified_by = 'user' WHERE id = %s", (verified,)
        )
        person = conn.execute(
            "INSERT INTO person (collection_id, first_name, created_by) VALUES (1, 'Grace', 'user') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "UPDATE cluster SET person_id = %s, person_linked_by = 'user', person_linked_at = now() WHERE id = %s",
            (person, named),
        )
        manual = conn.execute("SELECT id FROM person_detection WHERE cluster_id = %s LIMIT 1", (verified,)).fetchone()[
            0
        ]
        conn.execute("UPDATE person_detection SET cluster_status = 'manual' WHERE id = %s", (manual,))
        members_before = {
            r[0] for r in conn.execute("SELECT id FROM person_detection WHERE cluster_id = %s", (verified,))
        }
        conn.execute(
            """UPDATE person_detection SET unassigned_since = now() - interval '60 days'
               WHERE cluster_status = 'unassigned'"""
        )
    first = maintenance.run_tasks(db, maintenance.WEEKLY, None, maintenance.Options())
    assert [r.task for r in first] == [t.name for t in maintenance.WEEKLY]
    assert all(r.error is None for r in first)
    with db.connection() as conn:
        row = conn.execute("SELECT verified, verified_by FROM cluster WHERE id = %s", (verified,)).fetchone()
        members_after = {
            r[0] for r in conn.execute("SELECT id FROM person_detection WHERE cluster_id = %s", (verified,))
        }
        status = conn.execute(
            "SELECT cluster_status, cluster_id FROM person_detection WHERE id = %s", (manual,)
        ).fetchone()
        link = conn.execute(
            "SELECT person_id, person_linked_by FROM cluster WHERE person_id = %s", (person,)
        ).fetchall()
        pool = conn.execute(
            "SELECT count(*) FROM person_detection WHERE cluster_id IS NULL AND cluster_status = 'unassigned'"
        ).fetchone()[0]
    assert row == (True, "user") and members_before <= members_after
    assert status == ("manual", verified)
    assert link == [(person, "user")]
    assert pool == 0  # every old unassigned face is a singleton cluster now
    assert_clusters_exact(db)
    # the spec's order merges similar clusters before the pool's faces become singletons: the
    # next run may merge those singletons (and nothing else); the run after it does nothing
    second = maintenance.run_tasks(db, maintenance.WEEKLY, None, maintenance.Options())
    assert {r.task for r in second if done(r)} <= {"merge-similar"}
    third = maintenance.run_tasks(db, maintenance.WEEKLY, None, maintenance.Options())
    assert [(r.task, done(r)) for r in third if done(r)] == []
    assert ids


def test_weekly_beside_incremental_assignment_and_a_second_weekly(db, faces, database_url):
    insert(db, faces.embeddings[:450])
    bootstrap(db)
    new = insert(db, faces.embeddings[450:])
    start = threading.Barrier(3)

    def weekly() -> list[maintenance.TaskResult]:
        start.wait()
        return maintenance.run_tasks(db, maintenance.WEEKLY, None, maintenance.Options())

    def assign() -> None:
        start.wait()
        assign_new_faces(db, new, force=True)

    # all three wait on the model lock held exclusively (as a bootstrap would), then go at once
    with holding(database_url, "SELECT clustering_model_lock(1, 'arcface', false)", ()):
        workers = [Worker(weekly), Worker(weekly), Worker(assign)]
        for worker in workers:
            worker.start()
        wait_for_lock_waiters(database_url, 3)
    runs = [workers[0].finish(), workers[1].finish()]
    workers[2].finish()
    for results in runs:
        assert [r.error for r in results] == [None] * len(results)
    assert_clusters_exact(db)
    with db.connection() as conn:
        waiting = conn.execute(
            """SELECT count(*) FROM person_detection
               WHERE id = ANY(%s) AND cluster_id IS NULL AND cluster_status IS NULL""",
            (new,),
        ).fetchone()[0]
        same_photo = conn.execute(
            """SELECT count(*) FROM (SELECT 1 FROM person_detection WHERE cluster_id IS NOT NULL
                                    GROUP BY cluster_id, photo_id HAVING count(*) > 1) x"""
        ).fetchone()[0]
    assert waiting == 0 and same_photo == 0
    assert maintenance.health(db, None).figures["empty_clusters"] == 0
