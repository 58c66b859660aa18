"""The one lock order (database.clustering.locks) under real concurrent transactions (issue 10, §3).

Each interleaving is forced, not timed: a holder transaction keeps a lock, the threads under test
start and are seen waiting on it in pg_stat_activity, then the holder lets go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import NEIGHBOURS, assign_new_faces
from photodb.clustering.manual_moves import move_face
from photodb.database.clustering import assignment, locks
from photodb.database.detection_repository import DetectionRepository
from tests.clustering.conftest import assert_clusters_exact, clusters_of, insert


class Worker(threading.Thread):
    """Runs `target` and keeps its exception for the test to raise."""

    def __init__(self, target: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work, self.error, self.result = target, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as error:  # handed to the test thread
            self.error = error

    def finish(self) -> Any:
        self.join(timeout=120)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def wait_for_lock_waiters(url: str, count: int, what: Callable[[], bool] | None = None) -> None:
    """Until `count` backends of this database wait on a lock (the condition, not a duration)."""
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            waiting = conn.execute(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'"""
            ).fetchone()[0]
            if waiting >= count:
                return
            assert time.monotonic() < deadline, f"{waiting} of {count} expected lock waiters"
            assert what is None or what(), "a worker finished instead of waiting for the lock"
            conn.execute("SELECT pg_sleep(0.01)")


@contextmanager
def holding(url: str, sql: str, params: tuple[Any, ...]) -> Iterator[psycopg.Connection]:
    """A transaction that holds the locks `sql` takes until the block ends."""
    with psycopg.connect(url) as conn:
        conn.execute(sql, params)
        yield conn
        conn.commit()


def photo_of(db, detection_id: int) -> int:
    with db.connection() as conn:
        return conn.execute("SELECT photo_id FROM person_detection WHERE id = %s", (detection_id,)).fetchone()[0]


def same_photo(db, keep: int, move: int) -> None:
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET photo_id = %s WHERE id = %s", (photo_of(db, keep), move))


@pytest.fixture
def clustered(db, faces) -> tuple[list[int], dict[int, int | None]]:
    ids = insert(db, faces.embeddings[:400])
    bootstrap(db)
    return ids, clusters_of(db, ids)


def test_a_detection_rerun_waits_for_a_bootstrap_writing_its_run(db, database_url, clustered):
    ids, got = clustered
    det = next(d for d in ids if got[d] is not None)
    rerun = Worker(lambda: DetectionRepository(db).replace_detections(photo_of(db, det), [], "t", "1"))
    with holding(database_url, locks.model_lock_sql(shared=False), (1, "arcface")):  # as a bootstrap's write
        rerun.start()
        wait_for_lock_waiters(database_url, 1, rerun.is_alive)
        assert clusters_of(db, [det]) == {det: got[det]}  # nothing deleted under the bootstrap
    rerun.finish()
    assert clusters_of(db, [det]) == {}
    assert_clusters_exact(db)


def test_a_detection_rerun_locks_its_detections_before_their_clusters(db, database_url, clustered):
    ids, got = clustered
    det = next(d for d in ids if got[d] is not None)
    rerun = Worker(lambda: DetectionRepository(db).replace_detections(photo_of(db, det), [], "t", "1"))
    with holding(database_url, "SELECT 1 FROM cluster WHERE id = %s FOR UPDATE", (got[det],)):
        rerun.start()
        wait_for_lock_waiters(database_url, 1, rerun.is_alive)
        with psycopg.connect(database_url) as probe, pytest.raises(psycopg.errors.LockNotAvailable):
            probe.execute("SELECT 1 FROM person_detection WHERE id = %s FOR UPDATE NOWAIT", (det,))
    rerun.finish()
    assert_clusters_exact(db)


def test_a_rerun_and_an_assignment_of_a_face_of_the_same_photo_do_not_deadlock(db, database_url, faces, clustered):
    ids, got = clustered
    det = next(d for d in ids if got[d] is not None)
    (new,) = insert(db, faces.embeddings[ids.index(det)][None, :])  # the same person again
    same_photo(db, det, new)  # a face of the photo being rerun, still waiting for its cluster
    with db.connection() as conn:
        face = assignment.faces_to_assign(conn, [new])[new]
    options = {"threshold": 0.45, "margin": 0.03, "neighbours": NEIGHBOURS, "ef_search": 40}

    def assign() -> assignment.Assignment:
        with db.autocommit() as conn:
            return assignment.assign_face(
                conn, face, run_id=face.run_id, cluster_id=got[det], confidence=0.9, **options
            )

    rerun = Worker(lambda: DetectionRepository(db).replace_detections(photo_of(db, det), [], "t", "1"))
    joiner = Worker(assign)
    with holding(database_url, "SELECT 1 FROM cluster WHERE id = %s FOR UPDATE", (got[det],)):
        rerun.start()
        wait_for_lock_waiters(database_url, 1, rerun.is_alive)
        joiner.start()
        wait_for_lock_waiters(database_url, 2, joiner.is_alive)
    rerun.finish()
    assert not joiner.finish().found  # the rerun deleted the face first
    assert clusters_of(db, [det, new]) == {}
    assert_clusters_exact(db)


def test_two_manual_moves_in_opposite_directions_do_not_deadlock(db, database_url, clustered):
    ids, got = clustered
    first = next(d for d in ids if got[d] is not None)
    second = next(d for d in ids if got[d] is not None and got[d] != got[first])
    a, b = got[first], got[second]
    there, back = Worker(lambda: move_face(db, first, b)), Worker(lambda: move_face(db, second, a))
    # the second move holds its own cluster b and waits for a behind the first move
    with holding(database_url, "SELECT 1 FROM cluster WHERE id = %s FOR UPDATE", (a,)):
        there.start()
        wait_for_lock_waiters(database_url, 1, there.is_alive)
        back.start()
        wait_for_lock_waiters(database_url, 2, back.is_alive)
    there.finish()
    back.finish()
    assert clusters_of(db, [first, second]) == {first: b, second: a}
    assert_clusters_exact(db)


def test_a_bootstrap_keeps_what_changed_while_it_clustered(db, faces):
    """Faces deleted by a rerun, moved by hand or assigned while HDBSCAN ran: the run's write
    neither aborts on a vanished face nor overwrites a manual move, and every count and sum is exact."""
    ids = insert(db, faces.embeddings[:450])
    bootstrap(db)
    got = clusters_of(db, ids)
    by_identity: dict[int, list[int]] = {}
    for det, ident in zip(ids, faces.identities[:450], strict=True):
        by_identity.setdefault(int(ident), []).append(det)
    gone = max((members for ident, members in by_identity.items() if ident >= 0), key=len)  # a whole cluster
    manual = next(d for d in ids if got[d] is not None and d not in gone)
    elsewhere = next(c for c in sorted({c for c in got.values() if c is not None}) if c != got[manual])
    new: list[int] = []

    def meanwhile(message: str) -> None:
        if "writing" not in message:
            return
        repo = DetectionRepository(db)
        for det in gone:
            repo.replace_detections(photo_of(db, det), [], "t", "1")
        move_face(db, manual, elsewhere)
        new.extend(insert(db, faces.embeddings[450:480]))
        assign_new_faces(db, new, force=True)

    bootstrap(db, progress=meanwhile)
    assert new
    with db.connection() as conn:
        row = conn.execute("SELECT cluster_id, cluster_status FROM person_detection WHERE id = %s", (manual,))
        assert row.fetchone() == (elsewhere, "manual")
        assert conn.execute("SELECT count(*) FROM person_detection WHERE id = ANY(%s)", (gone,)).fetchone() == (0,)
    assert_clusters_exact(db)
