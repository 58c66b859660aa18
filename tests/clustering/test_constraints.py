"""Constraints are honoured by bootstrap, and manual work survives a re-bootstrap."""

from __future__ import annotations

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.manual_moves import move_face
from tests.clustering.conftest import clusters_of, insert


def test_must_and_cannot_links_are_applied(db, faces):
    ids = insert(db, faces.embeddings)
    bootstrap(db)
    got = clusters_of(db, ids)
    other = next(i for i in ids if got[i] is not None and got[i] != got[ids[0]])
    first = next(i for i in ids if got[i] is not None)
    together = [i for i in ids if got[i] == got[first]]
    assert len(together) >= 3
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO must_link (detection_id_1, detection_id_2) VALUES (%s, %s)", tuple(sorted((first, other)))
        )
        conn.execute(
            "INSERT INTO cannot_link (detection_id_1, detection_id_2) VALUES (%s, %s)",
            tuple(sorted((together[1], together[2]))),
        )
    (report,) = bootstrap(db)
    got = clusters_of(db, ids)
    assert got[first] == got[other]
    assert got[together[1]] != got[together[2]] and got[together[1]] and got[together[2]]
    assert report.constrained_faces >= 1
    # the constraints split one identity, they do not scatter it: most of first's faces stay with it
    kept = [i for i in together if i not in (together[1], together[2])]
    assert sum(got[i] == got[first] for i in kept) > len(kept) / 2, [got[i] for i in kept]


def test_manual_work_and_named_clusters_survive_a_rebootstrap(db, faces):
    ids = insert(db, faces.embeddings)
    bootstrap(db)
    got = clusters_of(db, ids)
    named = got[next(i for i in ids if got[i] is not None)]
    outsider = next(i for i in ids if got[i] is not None and got[i] != named)
    with db.connection() as conn:
        person = conn.execute(
            "INSERT INTO person (collection_id, first_name) VALUES (1, 'Ada') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "UPDATE cluster SET person_id = %s, verified = true, verified_at = now() WHERE id = %s", (person, named)
        )
        members = {r[0] for r in conn.execute("SELECT id FROM person_detection WHERE cluster_id = %s", (named,))}
    move_face(db, outsider, named)  # a manual move into the named cluster
    move_face(db, ids[-1], None)  # a manual "not this person"
    for _ in range(2):
        (report,) = bootstrap(db, min_cluster_size=5, min_samples=3)
        got = clusters_of(db, ids)
        with db.connection() as conn:
            assert conn.execute("SELECT person_id, verified FROM cluster WHERE id = %s", (named,)).fetchone() == (
                person,
                True,
            )
            status = conn.execute("SELECT cluster_status FROM person_detection WHERE id = %s", (outsider,)).fetchone()[
                0
            ]
        assert got[outsider] == named and status == "manual"
        assert all(got[m] == named for m in members)
        assert got[ids[-1]] is None
        assert report.pinned_faces >= len(members) + 2


def test_empty_clusters_are_deleted_when_their_last_face_leaves(db, faces):
    ids = insert(db, faces.embeddings)
    bootstrap(db)
    got = clusters_of(db, ids)
    with db.connection() as conn:
        cid = conn.execute("SELECT id FROM cluster ORDER BY face_count, id LIMIT 1").fetchone()[0]
    members = [i for i in ids if got[i] == cid]
    for m in members:
        move_face(db, m, None)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM cluster WHERE id = %s", (cid,)).fetchone()[0] == 0
