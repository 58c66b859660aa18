"""Incremental assignment after a restart (tier 1 rebuilt from the stored run) and under concurrency."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import uuid

import numpy as np
import psycopg
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces, load_run_model
from photodb.clustering.synthetic import make_faces
from photodb.database.connection import Database
from tests.clustering.conftest import assert_clusters_exact, clusters_of, insert
from tests.conftest import TEMPLATE_DB

WORKER = textwrap.dedent(
    """
    import json, sys
    from photodb.config import Settings
    from photodb.database.connection import Database
    from photodb.clustering.incremental import assign_new_faces
    db = Database(Settings(_env_file=None, database_url=sys.argv[1], photodb_home=sys.argv[2]))
    report = assign_new_faces(db, json.loads(sys.argv[3]), force=True)
    print(json.dumps(dict(report.outcomes)))
    db.close()
    """
)


def run_worker(settings, ids: list[int]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, settings.database_url.get_secret_value(), str(settings.photodb_home), str(ids)],
        stdout=subprocess.PIPE,
        text=True,
    )


def check_consistent(db) -> None:
    assert_clusters_exact(db)


def home_clusters(faces, ids, got) -> dict[int, int]:
    votes: dict[int, dict[int, int]] = {}
    for det, ident in zip(ids, faces.identities, strict=False):
        if got[det] is not None:
            votes.setdefault(int(ident), {}).setdefault(got[det], 0)
            votes[int(ident)][got[det]] += 1
    return {ident: max(v, key=v.get) for ident, v in votes.items()}


def test_assignment_in_a_new_process_uses_the_stored_clusterer(db, settings, faces):
    base, new = faces.embeddings[:600], faces.embeddings[600:]
    base_ids = insert(db, base)
    bootstrap(db)
    home = home_clusters(faces, base_ids, clusters_of(db, base_ids))
    new_ids = insert(db, new)
    done = run_worker(settings, new_ids)
    out, _ = done.communicate(timeout=120)
    assert done.returncode == 0 and "tier1" in out
    got = clusters_of(db, new_ids)
    truth = faces.identities[600:]
    real = [(d, int(t)) for d, t in zip(new_ids, truth, strict=True) if t >= 0 and int(t) in home]
    right = sum(got[d] == home[t] for d, t in real)
    assert right >= 0.85 * len(real)
    check_consistent(db)


def test_threads_and_processes_assign_concurrently_without_lost_updates(db, settings, faces):
    bootstrap_ids = insert(db, faces.embeddings[:400])
    bootstrap(db)
    new_ids = insert(db, faces.embeddings[400:])
    # every worker is given every face: each face must still be assigned exactly once
    procs = [run_worker(settings, new_ids[::-1]), run_worker(settings, new_ids)]
    threads = [
        threading.Thread(target=assign_new_faces, args=(db, new_ids[k::3]), kwargs={"force": True}) for k in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.communicate(timeout=180)
        assert p.returncode == 0
    check_consistent(db)
    with db.connection() as conn:
        total = conn.execute("SELECT sum(face_count) FROM cluster").fetchone()[0]
        clustered = conn.execute("SELECT count(*) FROM person_detection WHERE cluster_id IS NOT NULL").fetchone()[0]
    assert total == clustered
    assert clustered > len(bootstrap_ids)


def test_epsilon_ball_and_review_candidates(db, faces):
    ids = insert(db, faces.embeddings[:600])
    bootstrap(db)
    with db.connection() as conn:
        a, b = conn.execute("SELECT id, centroid FROM cluster ORDER BY face_count DESC LIMIT 2").fetchall()
        conn.execute("UPDATE cluster SET lambda_birth = NULL")  # every cluster uses CLUSTERING_THRESHOLD
    between = np.asarray(a[1].to_numpy()) + np.asarray(b[1].to_numpy())
    between /= np.linalg.norm(between)
    close_to_a = np.asarray(a[1].to_numpy(), np.float32)
    new = insert(db, np.vstack([between, close_to_a]).astype(np.float32))
    # without tier 1 (an empty label map) the epsilon balls decide
    with db.connection() as conn:
        conn.execute("UPDATE hdbscan_run SET label_to_cluster_id = '{}'")
    from photodb.clustering import incremental

    incremental._models.clear()
    report = assign_new_faces(db, new, force=True)
    assert report.cluster_of[new[1]] == a[0]
    with db.connection() as conn:
        status = conn.execute("SELECT cluster_status FROM person_detection WHERE id = %s", (new[0],)).fetchone()[0]
        candidates = conn.execute(
            "SELECT count(*) FROM face_match_candidate WHERE detection_id = %s AND status = 'pending'", (new[0],)
        ).fetchone()[0]
    # the midpoint of two identities lies inside both balls (cosine distance < 0.45) by the same margin
    assert between @ close_to_a / np.linalg.norm(close_to_a) > 0.55
    assert status == "pending" and candidates == 2
    assert len(ids) == 600


def test_runs_of_two_databases_are_never_confused(db, settings, admin_url, faces):
    insert(db, faces.embeddings[:400])
    (first,) = bootstrap(db)
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    other = Database(settings.model_copy(update={"database_url": SecretStr(make_conninfo(admin_url, dbname=name))}))
    try:
        insert(other, make_faces(200, 10, seed=5).embeddings)
        (second,) = bootstrap(other)
        assert first.run_id == second.run_id  # ids restart in every database
        mine, theirs = load_run_model(db, first.run_id), load_run_model(other, second.run_id)
        with other.connection() as conn:
            stored = conn.execute("SELECT label_to_cluster_id FROM hdbscan_run WHERE is_active").fetchone()[0]
        assert theirs is not None and mine is not None
        assert theirs.label_to_cluster == {int(k): v for k, v in stored.items()} != mine.label_to_cluster
    finally:
        other.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
