"""Faces the detection stage holds are assigned in one statement each (issue 10, §4): they are not
read back, the quality gate is applied by the assignment function itself, and a run replaced
since this process last saw it is noticed under the model lock and read again (migration 0020)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg import pq

from photodb.clustering import incremental
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_held_faces, assign_new_faces
from photodb.database.clustering.assignment import FaceToAssign, faces_to_assign
from photodb.database.connection import Database
from tests.clustering.conftest import assert_clusters_exact, clusters_of, insert

#: In libpq's trace of what the client sent, one line per message: a statement is a simple query
#: or ends with a Sync (the pool's liveness check is an empty query, no statement).
ROUND_TRIP = re.compile(r'^F\t\d+\t(?:Query\t "[^"]|Sync$)', re.MULTILINE)


@pytest.fixture
def one_connection(db: Database) -> Iterator[Database]:
    """The same database through a pool of one connection, so that one trace sees every statement."""
    with Database(db.settings, pool_size=1, migrate=False) as single:
        yield single


@contextmanager
def statements_sent(db: Database, path: Path) -> Iterator[dict[str, str | int]]:
    """The statements the pool's one connection sends inside the block, from libpq's own trace:
    how many ("round trips") and the trace itself ("trace"; a statement's text is in it until
    psycopg has prepared the statement, after which it only binds its name)."""
    sent: dict[str, str | int] = {}
    with path.open("w") as trace:
        with db.connection() as conn:
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        yield sent
        with db.connection() as conn:
            conn.pgconn.untrace()
    sent["trace"] = path.read_text()
    sent["round trips"] = len(ROUND_TRIP.findall(sent["trace"]))


def held(db: Database, ids: list[int]) -> list[FaceToAssign]:
    """The faces as the detection stage hands them over: what it stored, nothing read back."""
    with db.connection() as conn:
        read = faces_to_assign(conn, ids)
    return [FaceToAssign(d, read[d].photo_id, 1, "arcface", read[d].embedding) for d in ids]


def test_held_faces_cost_one_statement_each_read_ones_one_more(db, one_connection, tmp_path, faces):
    insert(db, faces.embeddings[:500])
    bootstrap(db)
    incremental._active_runs.clear()
    ids = insert(db, faces.embeddings[500:520])
    warm, new = ids[:6], ids[6:]  # learns the active run; psycopg prepares the statement (once)
    read = assign_new_faces(one_connection, warm, force=True)
    assert read.outcomes.total() == len(warm) and "skipped" not in read.outcomes
    faces_in = held(db, new)
    with statements_sent(one_connection, tmp_path / "trace") as sent:
        report = assign_held_faces(one_connection, faces_in, force=True)
    assert sent["round trips"] == len(new) and "faces_to_assign" not in sent["trace"]  # nothing read back
    assert report.outcomes.total() == len(new) and report.outcomes["tier1"] > 0
    got = clusters_of(db, new)
    assert report.cluster_of == got

    others = insert(db, faces.embeddings[520:530])
    with statements_sent(one_connection, tmp_path / "trace-read") as sent:
        by_id = assign_new_faces(one_connection, others, force=True)
    assert sent["round trips"] == len(others) + 1 and "faces_to_assign(" in sent["trace"]  # the read back
    assert by_id.cluster_of == clusters_of(db, others)
    assert_clusters_exact(db)


def active_run(db: Database) -> int:
    with db.connection() as conn:
        return conn.execute("SELECT id FROM hdbscan_run WHERE is_active").fetchone()[0]


def test_a_run_replaced_since_is_noticed_and_the_faces_are_read_again(db, faces):
    insert(db, faces.embeddings[:500])
    bootstrap(db)
    incremental._active_runs.clear()
    assign_new_faces(db, insert(db, faces.embeddings[500:501]), force=True)
    assert set(incremental._active_runs.values()) == {active_run(db)}
    bootstrap(db)  # a new active run, which this process has not seen
    new = insert(db, faces.embeddings[501:510])
    report = assign_held_faces(db, held(db, new), force=True)
    assert "stale" not in report.outcomes and report.outcomes.total() == len(new)
    assert report.outcomes["tier1"] > 0  # placed by the new run's tree
    assert set(incremental._active_runs.values()) == {active_run(db)}
    assert_clusters_exact(db)


def test_the_assignment_function_applies_the_quality_gate_to_a_held_face(db, faces):
    insert(db, faces.embeddings[:500])
    bootstrap(db)
    incremental._active_runs.clear()
    sharp, blurred = insert(db, faces.embeddings[500:502])
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET face_sharpness = 1.0 WHERE id = %s", (blurred,))
    with Database(db.settings.model_copy(update={"cluster_min_sharpness": 20.0}), migrate=False) as gated:
        assert "gated" not in assign_new_faces(gated, [sharp], force=True).outcomes  # learns the run
        report = assign_held_faces(gated, held(db, [blurred]), force=True)
    assert report.outcomes == {"gated": 1} and report.cluster_of == {blurred: None}
    with db.connection() as conn:
        row = conn.execute("SELECT cluster_status, quality_issue FROM person_detection WHERE id = %s", (blurred,))
        assert row.fetchone() == ("unassigned", "blurry")


def test_tier1_of_held_faces_runs_before_a_connection_is_taken(db, one_connection, faces, monkeypatch):
    """Tier 1 is computed before the checkout, so that the statement follows the pool's check at
    once: with a pool of one, the connection is still free while tier 1 places the faces."""
    insert(db, faces.embeddings[:500])
    bootstrap(db)
    incremental._active_runs.clear()
    assign_new_faces(one_connection, insert(db, faces.embeddings[500:501]), force=True)  # learns the run
    free_during_tier1: list[bool] = []
    predict = incremental._predict_tier1

    def watched(*args, **kwargs):
        free_during_tier1.append(one_connection.pool.get_stats()["pool_available"] == 1)
        return predict(*args, **kwargs)

    monkeypatch.setattr(incremental, "_predict_tier1", watched)
    new = insert(db, faces.embeddings[501:505])
    report = assign_held_faces(one_connection, held(db, new), force=True)
    assert free_during_tier1 == [True]  # one batch, while no connection was held
    assert report.outcomes["tier1"] > 0 and report.cluster_of == clusters_of(db, new)
