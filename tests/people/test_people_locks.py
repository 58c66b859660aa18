"""People commands follow the one lock order (database.clustering.locks): the model lock shared,
detections, clusters, then persons. Interleavings are forced by a holder transaction, not timed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from photodb.database.clustering import locks
from photodb.people import face_decisions, identity
from tests.clustering.conftest import assert_clusters_exact
from tests.clustering.test_lock_order import Worker, holding, wait_for_lock_waiters
from tests.people.conftest import snapshot

Command = Callable[[Any, dict[str, int]], object]

COMMANDS: dict[str, Command] = {
    "name --cluster": lambda db, t: identity.name_cluster(db, t["C2"], "Ada Lovelace", by="user"),
    "link": lambda db, t: identity.link_cluster(db, t["C2"], t["P"], by="user"),
    "unlink": lambda db, t: identity.unlink_cluster(db, t["C"], by="user"),
    "verify": lambda db, t: identity.verify_cluster(db, t["C"], by="user"),
    "hide --cluster": lambda db, t: identity.hide_cluster(db, t["C"], by="user"),
    "merge": lambda db, t: identity.merge_persons(db, t["P"], t["P2"], by="user"),
    "move --cluster": lambda db, t: face_decisions.move_face(db, t["face"], cluster_id=t["C2"], by="user"),
    "not": lambda db, t: face_decisions.reject_face(db, t["face"], by="user"),
    "must-link": lambda db, t: face_decisions.link_faces(db, "must", t["face"], t["other"], by="user"),
}


@pytest.fixture
def targets(db, library) -> dict[str, int]:
    clusters = library.clusters(db)
    first, second, third = list(clusters)[:3]
    person = identity.name_cluster(db, first, "Grace Hopper", by="user")["person_id"]
    other = identity.name_cluster(db, third, "G. Hopper", by="user")["person_id"]
    return {
        "C": first,
        "C2": second,
        "P": person,
        "P2": other,
        "face": clusters[first][0],
        "other": clusters[second][0],
    }


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_change_waits_for_a_bootstrap_writing_its_run(db, database_url, targets, name):
    before = snapshot(db)
    worker = Worker(lambda: COMMANDS[name](db, targets))
    with holding(database_url, locks.model_lock_sql(shared=False), (1, "arcface")):  # as a bootstrap's write
        worker.start()
        wait_for_lock_waiters(database_url, 1, worker.is_alive)
        assert snapshot(db) == before  # nothing changed under the bootstrap
    worker.finish()
    assert snapshot(db) != before
    assert_clusters_exact(db)


def test_a_link_locks_the_cluster_before_the_person(db, database_url, targets):
    worker = Worker(lambda: identity.link_cluster(db, targets["C2"], targets["P"], by="user"))
    with holding(database_url, "SELECT 1 FROM person WHERE id = %s FOR UPDATE", (targets["P"],)):
        worker.start()
        wait_for_lock_waiters(database_url, 1, worker.is_alive)
        with psycopg.connect(database_url) as probe, pytest.raises(psycopg.errors.LockNotAvailable):
            probe.execute("SELECT 1 FROM cluster WHERE id = %s FOR UPDATE NOWAIT", (targets["C2"],))
    assert worker.finish()["changed"]


def test_not_this_person_locks_the_faces_before_the_clusters(db, database_url, targets):
    worker = Worker(lambda: face_decisions.reject_face(db, targets["face"], by="user"))
    with holding(database_url, "SELECT 1 FROM cluster WHERE id = %s FOR UPDATE", (targets["C"],)):
        worker.start()
        wait_for_lock_waiters(database_url, 1, worker.is_alive)
        with psycopg.connect(database_url) as probe, pytest.raises(psycopg.errors.LockNotAvailable):
            probe.execute("SELECT 1 FROM person_detection WHERE id = %s FOR UPDATE NOWAIT", (targets["face"],))
    assert worker.finish()["rejected_cluster_id"] == targets["C"]
    assert_clusters_exact(db)
