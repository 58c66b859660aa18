"""People after indexing (people.refresh): bootstrap when stale, association of what changed, one
process at a time without anybody waiting, nothing asked for left undone."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from photodb.clustering.incremental import assign_new_faces
from photodb.clustering.synthetic import make_faces
from photodb.database import people_refresh as refresh_db
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database
from photodb.people.association_plan import find_pairs
from photodb.people.refresh import needs_refresh, refresh_people


def _persons(db: Database) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM person").fetchone()
    assert row is not None
    return int(row[0])


def _state(db: Database) -> refresh_db.RefreshState:
    with db.connection() as conn:
        return refresh_db.state(conn, 1)


@pytest.fixture
def faces(db: Database) -> np.ndarray:
    """Faces of 12 people in collection 1, with no clustering run yet (as after a first index)."""
    made = make_faces(200, 12, noise_share=0.05, lookalike_share=0.0, seed=11)
    with db.connection() as conn:
        face_db.insert_faces(conn, 1, made.embeddings, "arcface")
    return made.embeddings


def test_a_library_without_a_run_is_clustered_and_its_clusters_become_persons(db: Database, faces) -> None:
    assert needs_refresh(db, 1)
    report = refresh_people(db, 1, by="test")
    assert report.ran and report.bootstrapped == ["arcface"]
    assert report.persons >= 10 and _persons(db) == report.persons
    assert report.named == 0
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM person_detection WHERE cluster_id IS NULL").fetchone()
    assert row is not None and report.unsorted_faces == row[0]
    state = _state(db)
    assert state.refreshed == state.requested == 1
    assert not needs_refresh(db, 1)


def test_new_faces_after_a_fresh_run_are_associated_without_a_new_bootstrap(db: Database, faces) -> None:
    refresh_people(db, 1, by="test")
    with db.connection() as conn:
        run = conn.execute("SELECT id FROM hdbscan_run WHERE is_active").fetchone()
        # three faces of a new person, close together and far from everyone, in a cluster of their own
        rng = np.random.default_rng(5)
        centre = rng.normal(size=512)
        centre /= np.linalg.norm(centre)
        new = centre + rng.normal(scale=0.01, size=(3, 512))
        new /= np.linalg.norm(new, axis=1, keepdims=True)
        ids = face_db.insert_faces(conn, 1, new.astype(np.float32), "arcface")
        conn.execute(
            """WITH c AS (INSERT INTO cluster (collection_id, embedding_model, face_count, centroid_sum, centroid)
                          VALUES (1, 'arcface', 3, %s, %s) RETURNING id)
               UPDATE person_detection SET cluster_id = (SELECT id FROM c), cluster_status = 'auto'
               WHERE id = ANY(%s)""",
            (new.sum(axis=0).tolist(), (new.sum(axis=0) / np.linalg.norm(new.sum(axis=0))).tolist(), ids),
        )
        conn.commit()
    before = _persons(db)
    assert needs_refresh(db, 1)
    report = refresh_people(db, 1, by="test")
    assert report.ran and report.bootstrapped == []  # 3 of 203 faces: not stale
    assert report.clusters_considered == 1
    assert report.persons_created == 1 and _persons(db) == before + 1
    with db.connection() as conn:
        assert conn.execute("SELECT id FROM hdbscan_run WHERE is_active").fetchone() == run


def test_a_refresh_another_process_holds_is_left_to_it_and_nothing_waits(db: Database, faces) -> None:
    with db.connection() as holder, holder.transaction():
        assert refresh_db.try_lock(holder, 1)
        report = refresh_people(db, 1, by="test")
        assert not report.ran and report.persons == 0 and _persons(db) == 0
    state = _state(db)
    assert state.requested == 1 and state.refreshed == 0
    assert needs_refresh(db, 1)  # asked for and not done: the next run does it
    assert refresh_people(db, 1, by="test").ran
    assert not needs_refresh(db, 1)


def test_a_request_made_while_the_holder_works_is_done_before_it_leaves(db: Database, faces) -> None:
    asked = []

    def progress(message: str) -> None:
        if not asked:  # another process finishes its stages and asks while this one works
            asked.append(message)
            thread = threading.Thread(target=lambda: refresh_people(db, 1, by="other"))
            thread.start()
            thread.join()

    report = refresh_people(db, 1, by="test", progress=progress)
    assert asked and report.ran
    state = _state(db)
    assert state.requested == 2 and state.refreshed == 2
    assert not needs_refresh(db, 1)


def test_scoped_pairs_are_exactly_the_full_pairs_that_touch_the_focus() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(40, 16))
    vectors = np.repeat(base, 3, axis=0) + rng.normal(scale=0.3, size=(120, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1000, 1120, dtype=np.int64)
    full = find_pairs(ids, vectors, 0.2)
    assert len(full) > 50
    focus = {int(i) for i in rng.choice(ids, size=17, replace=False)}
    scoped = find_pairs(ids, vectors, 0.2, focus)
    assert scoped == [p for p in full if p.a in focus or p.b in focus]


def test_an_assigned_face_marks_its_cluster_for_the_next_refresh(db: Database, faces) -> None:
    refresh_people(db, 1, by="test")
    with db.connection() as conn:
        ids = face_db.insert_faces(conn, 1, faces[:1], "arcface")
        conn.commit()
    assign_new_faces(db, ids)
    with db.connection() as conn:
        cluster = conn.execute("SELECT cluster_id FROM person_detection WHERE id = %s", (ids[0],)).fetchone()
        assert cluster is not None and cluster[0] is not None
        assert refresh_db.clusters_of_faces_after(conn, 1, _state(db).detection_watermark) == [cluster[0]]
    report = refresh_people(db, 1, by="test")
    assert report.ran and report.clusters_considered == 1 and report.persons_created == 0
