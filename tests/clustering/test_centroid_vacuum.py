"""Centroid churn: the cluster table and its TOAST table are vacuumed after a few hundred dead
versions, and the embedded server's autovacuum looks every 10 s (migration 0015, embedded.py); the
indexed centroid is rewritten only when it moves past the tolerance (2e-2 since migration 0026)."""

from __future__ import annotations

import numpy as np
import pytest

from photodb.database.clustering import assignment
from photodb.database.clustering.centroids import tolerance
from photodb.database.embedded import SERVER_SETTINGS, shared_buffers
from tests.clustering.conftest import assert_clusters_exact
from tests.clustering.test_assign_function import cluster_updates, make_cluster, options


def reloptions(conn, relation: str) -> dict[str, str]:
    row = conn.execute(
        """SELECT c.reloptions, t.reloptions FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
           WHERE c.oid = %s::regclass""",
        (relation,),
    ).fetchone()
    table, toast = (dict(option.split("=", 1) for option in options or ()) for options in row)
    return table | {f"toast.{name}": value for name, value in toast.items()}


def test_the_cluster_table_and_its_toast_are_vacuumed_after_a_few_hundred_dead_versions(db):
    with db.connection() as conn:
        options = reloptions(conn, "cluster")
    assert options["autovacuum_vacuum_threshold"] == "200"
    assert options["toast.autovacuum_vacuum_threshold"] == "400"  # a moved centroid is two TOAST chunks
    assert options["autovacuum_vacuum_scale_factor"] == options["toast.autovacuum_vacuum_scale_factor"] == "0.0"
    assert options["autovacuum_vacuum_cost_delay"] == options["toast.autovacuum_vacuum_cost_delay"] == "0"
    assert options["fillfactor"] == "70"  # room on the page for the HOT version of a still centroid


def test_the_embedded_server_runs_autovacuum_every_ten_seconds(db):
    """The tests' server is the embedded one, started with SERVER_SETTINGS."""
    with db.connection() as conn:
        naptime = conn.execute("SELECT setting::int, unit FROM pg_settings WHERE name = 'autovacuum_naptime'")
        assert naptime.fetchone() == (10, "s")
        assert conn.execute("SHOW autovacuum").fetchone() == ("on",)
    assert SERVER_SETTINGS["autovacuum_naptime"] == "10s"


def test_the_embedded_server_caches_a_16th_of_memory_from_128_mb_to_1_gb(db):
    with db.connection() as conn:
        assert conn.execute("SHOW shared_buffers").fetchone() == (shared_buffers().replace("1024MB", "1GB"),)
    assert 128 <= int(shared_buffers().removesuffix("MB")) <= 1024


@pytest.mark.parametrize("moved, rewritten", [(1.5e-2, False), (3e-2, True)])
def test_a_centroid_is_rewritten_only_past_the_tolerance_of_migration_0026(db, moved, rewritten):
    """A face that moves its cluster's normalised sum by a cosine distance between the old
    tolerance (1e-3) and the new one (2e-2) leaves the indexed centroid alone: the assignment is one
    HOT update, no new HNSW entry (before 0026 it rewrote the centroid). Past 2e-2 it is rewritten."""
    rng = np.random.default_rng(8)
    direction = rng.normal(size=512)
    members = direction + rng.normal(size=(3, 512)) * 0.04  # few: one face moves their sum far enough
    members /= np.linalg.norm(members, axis=1, keepdims=True)
    total = members.sum(axis=0)
    centre = total / np.linalg.norm(total)
    aside = rng.normal(size=512)
    aside -= aside @ centre * centre
    aside /= np.linalg.norm(aside)

    def move(angle: float) -> float:
        """The cosine distance the normalised sum moves by when a face at `angle` to it joins."""
        after = total + np.cos(angle) * centre + np.sin(angle) * aside
        return float(1 - centre @ after / np.linalg.norm(after))

    low, high = 0.0, np.pi / 2  # the angle that moves it by `moved`
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if move(middle) < moved else (low, middle)
    face = np.cos(low) * centre + np.sin(low) * aside
    assert move(low) == pytest.approx(moved, rel=1e-3)
    cluster, ids = make_cluster(db, np.vstack([members, face]))
    with db.connection() as conn:
        assert tolerance(conn) == pytest.approx(2e-2)
        (new,) = assignment.faces_to_assign(conn, [ids[-1]]).values()
        centroid = conn.execute("SELECT centroid::text FROM cluster WHERE id = %s", (cluster,)).fetchone()[0]
    with db.autocommit() as conn:
        before = cluster_updates(conn)
        done = assignment.assign_face(conn, new, run_id=new.run_id, cluster_id=cluster, confidence=0.9, **options(db))
        after = cluster_updates(conn)
        still = conn.execute("SELECT centroid::text FROM cluster WHERE id = %s", (cluster,)).fetchone()[0]
    assert done.cluster_id == cluster
    # one update, HOT unless it rewrites the centroid
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0 if rewritten else 1)
    assert (still != centroid) == rewritten
    assert_clusters_exact(db)
