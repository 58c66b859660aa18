"""`photodb people review`: faces incremental assignment sent to review (close to two clusters)
are accepted into one (as 'manual') or rejected (never proposed there again), by id or one by one."""

from __future__ import annotations

import json

import numpy as np
import pytest

import photodb.cli_people_review as cli
from photodb.cli_people_review import review_command
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces
from photodb.people.review import ReviewError, accept, list_pending, reject
from tests.clustering.conftest import assert_clusters_exact
from tests.people.identities import identity, make_person, run, snapshot, store


@pytest.fixture
def undecided(db):
    """Ada and Bob clustered by a bootstrap, and a new face right between them: pending review."""
    rng = np.random.default_rng(8)
    ada_faces, bob_faces = identity(rng, 8, spread=0.2), identity(rng, 8, spread=0.2)
    ada, bob = store(db, ada_faces), store(db, bob_faces)
    bootstrap(db, min_cluster_size=3, min_samples=2)
    between = ada_faces.mean(0) + bob_faces.mean(0)
    (face,) = store(db, (between / np.linalg.norm(between))[None, :])
    with db.connection() as conn:  # tier 1 off (as for a run whose state cannot be read): tier 2 decides
        conn.execute("UPDATE hdbscan_run SET clusterer_state = NULL")
    report = assign_new_faces(db, [face], force=True)
    assert report.outcomes == {"pending": 1}
    with db.connection() as conn:
        clusters = dict(
            conn.execute(
                "SELECT id, cluster_id FROM person_detection WHERE id = ANY(%s)", ([ada[0], bob[0]],)
            ).fetchall()
        )
    return face, clusters[ada[0]], clusters[bob[0]], ada, bob


def candidates(db, face):
    with db.connection() as conn:
        return {
            r[0]: r[1:]
            for r in conn.execute(
                """SELECT cluster_id, status, reviewed_by, reviewed_at IS NOT NULL FROM face_match_candidate
                   WHERE detection_id = %s""",
                (face,),
            ).fetchall()
        }


def face_row(db, face):
    with db.connection() as conn:
        return conn.execute("SELECT cluster_id, cluster_status FROM person_detection WHERE id = %s", (face,)).fetchone()


def candidate_id(db, face, cluster):
    with db.connection() as conn:
        row = conn.execute(
            "SELECT candidate_id FROM face_match_candidate WHERE detection_id = %s AND cluster_id = %s", (face, cluster)
        ).fetchone()
    return row[0]


def test_list_shows_the_pending_faces_with_ids_paths_and_persons(db, undecided, tmp_path, database_url):
    face, ada_cluster, bob_cluster, _, _ = undecided
    person = make_person(db, "Ada")
    with db.connection() as conn:
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (person, ada_cluster))
    listed = run(review_command, tmp_path, database_url, "--list", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["cluster_id"] for r in rows} == {ada_cluster, bob_cluster} and {r["detection_id"] for r in rows} == {face}
    ada_row = next(r for r in rows if r["cluster_id"] == ada_cluster)
    assert ada_row["person_id"] == person and ada_row["person_name"] == "Ada" and ada_row["path"].endswith(".jpg")
    assert 0 < ada_row["similarity"] <= 1 and ada_row["status"] == "pending"
    text = run(review_command, tmp_path, database_url, "--list")
    assert f"face {face}" in text.stdout and "person" in text.stdout and "2 pending" in text.stdout


def test_an_automatic_placeholder_person_is_listed_without_a_name(db, undecided, tmp_path, database_url):
    _, ada_cluster, _, _, _ = undecided
    with db.connection() as conn:
        placeholder = conn.execute(
            """INSERT INTO person (collection_id, first_name, auto_created, created_by)
               VALUES (1, 'Unknown', true, 'auto:associate') RETURNING id"""
        ).fetchone()[0]
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (placeholder, ada_cluster))
    rows = json.loads(run(review_command, tmp_path, database_url, "--list", "--json").stdout)
    ada_row = next(r for r in rows if r["cluster_id"] == ada_cluster)
    assert ada_row["person_id"] == placeholder and ada_row["person_name"] is None
    assert f"person {placeholder} (no name)" in run(review_command, tmp_path, database_url, "--list").stdout


def test_accept_moves_the_face_in_as_manual_and_rejects_the_other(db, undecided, tmp_path, database_url):
    face, ada_cluster, bob_cluster, _, _ = undecided
    person = make_person(db, "Bob")
    with db.connection() as conn:  # the face's gender counts for Bob's person at once, not at the next weekly
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (person, bob_cluster))
        conn.execute("UPDATE person_detection SET gender = 'M', gender_confidence = 0.9 WHERE id = %s", (face,))
    chosen = candidate_id(db, face, bob_cluster)
    done = run(review_command, tmp_path, database_url, "--accept", str(chosen), "--json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["now_in_cluster"] == bob_cluster
    assert face_row(db, face) == (bob_cluster, "manual")
    assert candidates(db, face) == {bob_cluster: ("accepted", "user", True), ada_cluster: ("rejected", "user", True)}
    with db.connection() as conn:
        row = conn.execute(
            "SELECT gender, gender_confidence, age_gender_sample_count FROM person WHERE id = %s", (person,)
        ).fetchone()
    assert row[0] in ("M", "U") and 0.5 < row[1] < 1.0 and row[2] == 1  # one small face: not sure yet
    assert_clusters_exact(db)
    assert list_pending(db) == []
    bootstrap(db, min_cluster_size=3, min_samples=2)  # a manual face stays where the review put it
    assert face_row(db, face) == (bob_cluster, "manual")


def test_reject_blocks_that_cluster_and_the_last_rejection_reassigns(db, undecided, tmp_path, database_url):
    face, ada_cluster, bob_cluster, ada, _ = undecided
    first = reject(db, candidate_id(db, face, ada_cluster))
    assert first.cannot_links == len(ada) and first.reassigned is None  # Bob is still proposed
    assert face_row(db, face) == (None, "pending")
    with db.connection() as conn:
        blocked = conn.execute("SELECT count(*) FROM cannot_link WHERE created_by = 'user'").fetchone()[0]
    assert blocked == len(ada)
    last = run(review_command, tmp_path, database_url, "--reject", str(candidate_id(db, face, bob_cluster)), "--json")
    assert last.exit_code == 0, last.stderr
    result = json.loads(last.stdout)
    assert result["status"] == "rejected" and result["reassigned"] == "unassigned"
    assert face_row(db, face) == (None, "unassigned")  # neither cluster may take it any more
    assert candidates(db, face) == {ada_cluster: ("rejected", "user", True), bob_cluster: ("rejected", "user", True)}
    bootstrap(db, min_cluster_size=3, min_samples=2)  # the cannot-links hold in a re-bootstrap too
    assert face_row(db, face)[0] not in (ada_cluster, bob_cluster)


def test_one_by_one_at_a_terminal(db, undecided, tmp_path, database_url, monkeypatch):
    face, ada_cluster, bob_cluster, _, _ = undecided
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    first = candidate_id(db, face, ada_cluster)
    rows = list_pending(db)
    answers = "".join("a\n" if r.candidate_id == first else "s\n" for r in rows)
    done = run(review_command, tmp_path, database_url, stdin=answers)
    assert done.exit_code == 0, done.output
    assert f"candidate {first} accepted" in done.stdout and "1 accepted" in done.stdout
    assert face_row(db, face) == (ada_cluster, "manual")
    assert candidates(db, face)[bob_cluster][0] == "rejected"


def test_bad_input_is_one_line_exit_2_and_writes_nothing(db, undecided, tmp_path, database_url):
    face, ada_cluster, _, _, _ = undecided
    done = candidate_id(db, face, ada_cluster)
    accept(db, done)
    before = snapshot(db)
    cases = [
        (["--accept", "999999"], "no match candidate 999999"),
        (["--reject", "999999"], "no match candidate 999999"),
        (["--accept", str(done)], "already accepted"),
        (["--reject", str(done)], "already accepted"),
        (["--accept", "1", "--reject", "2"], "at most one"),
        ([], "needs a terminal"),
    ]
    for args, message in cases:
        result = run(review_command, tmp_path, database_url, *args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (args, result.stderr)
    with pytest.raises(ReviewError):
        reject(db, done)
    assert snapshot(db) == before
