"""Must-links closed by union-find, must-linked clusters merged, and the violation report."""

from __future__ import annotations

from photodb import maintenance
from photodb.maintenance import Options, run_task
from photodb.maintenance.links import MUST_LINK_BY, closure_pairs, must_link_components
from tests.clustering.conftest import assert_clusters_exact
from tests.maintenance.conftest import Library, cluster_of, link, run, same_photo, snapshot


def test_union_find_closes_chains_and_names_the_contradictions():
    components = must_link_components([(1, 2), (2, 3), (7, 8), (3, 4)])
    assert components == [[1, 2, 3, 4], [7, 8]]
    missing, contradictions = closure_pairs(components, {(1, 2), (2, 3), (3, 4), (7, 8)}, {(1, 4)})
    assert missing == [(1, 3), (2, 4)] and contradictions == [(1, 4)]


def test_must_links_across_three_clusters_are_closed_and_the_clusters_become_the_verified_one(db):
    lib = Library(db)
    centre = lib.centre()
    a_faces, b_faces, c_faces = (lib.faces(centre, n) for n in (4, 6, 3))
    a = lib.cluster(a_faces)
    b = lib.cluster(b_faces)
    c = lib.cluster(c_faces, verified=True)  # the smallest, but verified: it is the one that stays
    _, other_faces, other = lib.identity(4)
    link(db, "must_link", a_faces[0], b_faces[0])
    link(db, "must_link", b_faces[0], c_faces[0])
    before = snapshot(db)
    assert run(db, maintenance.PROPAGATE_MUST_LINKS) == {"added": 1, "contradictions": 0}
    with db.connection() as conn:
        added = conn.execute(
            "SELECT detection_id_1, detection_id_2 FROM must_link WHERE created_by = %s", (MUST_LINK_BY,)
        )
        assert added.fetchall() == [tuple(sorted((a_faces[0], c_faces[0])))]  # A~B, B~C -> A~C
    changes = run(db, maintenance.MERGE_MUST_LINKED)
    assert changes["clusters_merged_away"] == 2 and changes["faces_moved"] == 10 and changes["refused"] == 0
    got = cluster_of(db, a_faces + b_faces + c_faces + other_faces)
    assert {got[d] for d in a_faces + b_faces + c_faces} == {c}
    assert {got[d] for d in other_faces} == {other}
    assert_clusters_exact(db)
    with db.connection() as conn:
        assert conn.execute("SELECT id FROM cluster ORDER BY id").fetchall() == [(c,), (other,)]
        assert conn.execute("SELECT verified, face_count FROM cluster WHERE id = %s", (c,)).fetchone() == (True, 13)
    after = snapshot(db)
    statuses = {row[0]: row[2] for row in after["faces"]}
    assert statuses == {row[0]: row[2] for row in before["faces"]}  # statuses are kept
    assert run(db, maintenance.PROPAGATE_MUST_LINKS)["added"] == 0
    assert run(db, maintenance.MERGE_MUST_LINKED)["clusters_merged_away"] == 0
    assert snapshot(db) == after
    assert a and b


def test_a_must_link_closure_that_a_cannot_link_forbids_is_reported_not_stored(db):
    lib = Library(db)
    faces = lib.faces(lib.centre(), 3)
    link(db, "must_link", faces[0], faces[1])
    link(db, "must_link", faces[1], faces[2])
    link(db, "cannot_link", faces[0], faces[2])
    result = run_task(db, maintenance.PROPAGATE_MUST_LINKS, [1], Options())
    assert result.changes == {"added": 0, "contradictions": 1} and not result.ok
    assert result.problems == [f"faces {faces[0]} and {faces[2]} are must-linked (through others) but cannot-linked"]


def test_must_linked_clusters_that_share_a_photo_or_are_both_verified_are_refused_and_reported(db):
    lib = Library(db)
    centre = lib.centre()
    a_faces, b_faces = lib.faces(centre, 3), lib.faces(centre, 3)
    same_photo(db, a_faces[2], b_faces[2])  # two people of one photo: never one cluster
    a, b = lib.cluster(a_faces), lib.cluster(b_faces)
    v_faces, w_faces = lib.faces(centre, 2), lib.faces(centre, 2)
    v, w = lib.cluster(v_faces, verified=True), lib.cluster(w_faces, verified=True)
    link(db, "must_link", a_faces[0], b_faces[0])
    link(db, "must_link", v_faces[0], w_faces[0])
    before = snapshot(db)
    result = run_task(db, maintenance.MERGE_MUST_LINKED, [1], Options())
    assert result.error is None and result.changes["refused"] == 2 and result.changes["clusters_merged_away"] == 0
    assert result.problems == [
        f"clusters {a}, {b} not merged: faces of one photo in both",
        f"clusters {v}, {w} not merged: two verified clusters",
    ]
    assert snapshot(db) == before
    report = run_task(db, maintenance.CHECK_CONSTRAINTS, [1], Options())
    assert report.changes == {"cannot_link_in_one_cluster": 0, "same_photo_in_one_cluster": 0, "must_link_split": 2}


def test_check_constraints_reports_cannot_links_and_photos_inside_one_cluster_and_changes_nothing(db):
    lib = Library(db)
    _, faces, cluster = lib.identity(5)
    link(db, "cannot_link", faces[0], faces[1])
    same_photo(db, faces[2], faces[3])
    before = snapshot(db)
    result = run_task(db, maintenance.CHECK_CONSTRAINTS, [1], Options())
    assert result.changes == {"cannot_link_in_one_cluster": 1, "same_photo_in_one_cluster": 1, "must_link_split": 0}
    assert result.problems[0] == f"faces {faces[0]} and {faces[1]} are cannot-linked but both in cluster {cluster}"
    assert result.problems[1].startswith(f"faces {faces[2]}, {faces[3]} of photo ")
    assert not result.ok and snapshot(db) == before


def waiting(db, faces) -> None:
    """Faces in the unassigned pool (no cluster, status 'unassigned'), as the quality gate or a
    bootstrap's noise leaves them."""
    with db.connection() as conn:
        conn.execute(
            """UPDATE person_detection SET cluster_id = NULL, cluster_status = 'unassigned',
                   unassigned_since = now(), quality_issue = 'blurry' WHERE id = ANY(%s)""",
            (list(faces),),
        )


def test_a_waiting_face_must_linked_to_a_clustered_face_joins_its_cluster_unless_forbidden(db):
    """Four waiting faces are must-linked to a face of cluster A: one joins, one cannot-linked with
    a face of A and one on the photo of a face of A are refused and reported, and one taken out
    by hand ('manual') stays out. A face must-linked only to another waiting face has nowhere to go."""
    lib = Library(db)
    centre = lib.centre()
    a_faces = lib.faces(centre, 4)
    a = lib.cluster(a_faces)
    joins, blocked, same, by_hand, loner_1, loner_2 = lib.faces(centre, 6)
    waiting(db, [joins, blocked, same, loner_1, loner_2])
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET cluster_status = 'manual' WHERE id = %s", (by_hand,))
    same_photo(db, a_faces[1], same)
    link(db, "cannot_link", blocked, a_faces[2])
    for face in (joins, blocked, same, by_hand):
        link(db, "must_link", a_faces[0], face)
    link(db, "must_link", loner_1, loner_2)
    result = run_task(db, maintenance.MERGE_MUST_LINKED, [1], Options())
    assert result.error is None
    assert result.changes == {
        "clusters_merged_away": 0,
        "faces_moved": 0,
        "faces_joined": 1,
        "refused": 2,
        "deferred": 0,
    }
    assert result.problems == [
        f"face {blocked} not joined to cluster {a} of its must-linked faces: cannot-link with face {a_faces[2]}",
        f"face {same} not joined to cluster {a} of its must-linked faces: same photo with face {a_faces[1]}",
    ]
    got = cluster_of(db, [joins, blocked, same, by_hand, loner_1, loner_2])
    assert got == {joins: a, blocked: None, same: None, by_hand: None, loner_1: None, loner_2: None}
    with db.connection() as conn:
        row = conn.execute(
            "SELECT cluster_status, quality_issue, unassigned_since FROM person_detection WHERE id = %s", (joins,)
        ).fetchone()
    assert row == ("auto", None, None)
    assert_clusters_exact(db)  # the joined cluster is recounted exactly
    after = snapshot(db)
    assert run_task(db, maintenance.MERGE_MUST_LINKED, [1], Options()).changes["faces_joined"] == 0
    assert snapshot(db) == after


def test_a_waiting_face_joins_the_cluster_its_must_linked_clusters_were_merged_into(db):
    lib = Library(db)
    centre = lib.centre()
    a_faces, b_faces = lib.faces(centre, 3), lib.faces(centre, 5)
    a, b = lib.cluster(a_faces), lib.cluster(b_faces)
    (face,) = lib.faces(centre, 1)
    waiting(db, [face])
    link(db, "must_link", face, a_faces[0])
    link(db, "must_link", a_faces[1], b_faces[0])
    changes = run(db, maintenance.MERGE_MUST_LINKED)
    assert changes["clusters_merged_away"] == 1 and changes["faces_joined"] == 1
    assert cluster_of(db, [face]) == {face: b} and a != b
    assert_clusters_exact(db)
