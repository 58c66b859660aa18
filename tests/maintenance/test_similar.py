"""merge-similar: close centroids of one model merge; verified clusters, cannot-links, shared
photos, persons and other models keep clusters apart; a rerun finds nothing."""

from __future__ import annotations

from photodb import maintenance
from photodb.maintenance import Options, run_task
from photodb.maintenance.similar import MERGE_SIMILAR_BY
from tests.clustering.conftest import assert_clusters_exact
from tests.maintenance.conftest import Library, cluster_of, link, run, same_photo, snapshot


def split(lib: Library, n: int = 5, **kwargs) -> tuple[list[int], list[int], int, int]:
    """One identity's faces in two clusters."""
    centre = lib.centre()
    first, second = lib.faces(centre, n), lib.faces(centre, n)
    return first, second, lib.cluster(first, **kwargs), lib.cluster(second)


def person(db, name: str | None, by: str = "user") -> int:
    with db.connection() as conn:
        return conn.execute(
            """INSERT INTO person (collection_id, first_name, auto_created, created_by)
               VALUES (1, %s, %s, %s) RETURNING id""",
            (name, name is None, by),
        ).fetchone()[0]


def link_person(db, cluster: int, person_id: int, by: str = "user") -> None:
    with db.connection() as conn:
        conn.execute(
            "UPDATE cluster SET person_id = %s, person_linked_by = %s, person_linked_at = now() WHERE id = %s",
            (person_id, by, cluster),
        )


def test_a_split_identity_merges_and_look_alikes_and_strangers_do_not(db):
    lib = Library(db)
    first, second, a, b = split(lib)
    look = lib.centre()
    twin = lib.centre(like=look, cosine=0.45)  # a look-alike: centres at cosine distance 0.55
    look_cluster, twin_cluster = lib.cluster(lib.faces(look, 6)), lib.cluster(lib.faces(twin, 6))
    stranger = lib.identity(5)[2]
    changes = run(db, maintenance.MERGE_SIMILAR)
    # the look-alikes' centroids are within reach (0.62), their faces are not (~0.7 apart)
    assert changes == {
        "groups": 1,
        "clusters_merged_away": 1,
        "faces_moved": 5,
        "deferred": 0,
        "refused_linkage": 1,
        "refused_rules": 0,
    }
    assert set(cluster_of(db, first + second).values()) == {a}  # the larger, then the lower id, stays
    with db.connection() as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM cluster ORDER BY id")] == [
            a,
            look_cluster,
            twin_cluster,
            stranger,
        ]
    assert_clusters_exact(db)
    after = snapshot(db)
    assert run(db, maintenance.MERGE_SIMILAR)["groups"] == 0
    assert snapshot(db) == after
    # a looser threshold (cosine distance 0.85) takes the look-alikes too
    assert run(db, maintenance.MERGE_SIMILAR, Options(similarity_threshold=0.85))["clusters_merged_away"] == 1
    with db.connection() as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM cluster ORDER BY id")] == [a, look_cluster, stranger]
    assert b not in {row[0] for row in snapshot(db)["clusters"]}


def test_cannot_links_shared_photos_verified_pairs_persons_and_models_keep_clusters_apart(db):
    lib = Library(db)
    _, _, p1, p2 = split(lib)
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO cluster_cannot_link (cluster_id_1, cluster_id_2, created_by) VALUES (%s, %s, 'user')",
            (p1, p2),
        )
    q_first, q_second, _, _ = split(lib)
    link(db, "cannot_link", q_first[0], q_second[0])
    centre = lib.centre()
    s_first, s_second = lib.faces(centre, 4), lib.faces(centre, 4)
    same_photo(db, s_first[0], s_second[0])
    lib.cluster(s_first)
    lib.cluster(s_second)
    split(lib, verified=True)  # one verified: the only pair that merges (into the verified one)
    centre = lib.centre()
    lib.cluster(lib.faces(centre, 4), verified=True)
    lib.cluster(lib.faces(centre, 4), verified=True)
    _, _, y1, y2 = split(lib)
    link_person(db, y1, person(db, "Ada"))
    link_person(db, y2, person(db, "Grace"))
    centre = lib.centre()
    lib.cluster(lib.faces(centre, 5))
    lib.cluster(lib.faces(centre, 5, model="sface"), model="sface")  # the same face, another model
    hidden = split(lib)[2:]
    with db.connection() as conn:
        conn.execute("UPDATE cluster SET hidden = true WHERE id = ANY(%s)", (list(hidden),))
    before = snapshot(db)
    changes = run(db, maintenance.MERGE_SIMILAR)
    assert changes["groups"] == 1  # only the pair with one verified cluster
    after = snapshot(db)
    gone = {row[0] for row in before["clusters"]} - {row[0] for row in after["clusters"]}
    assert len(gone) == 1
    with db.connection() as conn:
        kept = conn.execute("SELECT verified, face_count FROM cluster WHERE verified AND face_count = 10").fetchall()
    assert kept == [(True, 10)]  # the verified cluster stayed and took the other's faces


def test_the_merged_cluster_keeps_a_person_link_and_who_made_it(db):
    lib = Library(db)
    first, second, a, b = split(lib)
    ada = person(db, "Ada")
    link_person(db, b, ada)  # the smaller-id cluster has no person: the linked one stays
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO cluster_cannot_link (cluster_id_1, cluster_id_2, created_by) VALUES (%s, %s, 'user')",
            (a, lib.identity(3)[2]),
        )
    assert run(db, maintenance.MERGE_SIMILAR)["clusters_merged_away"] == 1
    with db.connection() as conn:
        row = conn.execute("SELECT id, person_id, person_linked_by FROM cluster WHERE person_id IS NOT NULL").fetchone()
        moved = conn.execute("SELECT cluster_id_1, cluster_id_2, created_by FROM cluster_cannot_link").fetchall()
    assert row == (b, ada, "user")
    assert len(moved) == 1 and b in moved[0][:2] and moved[0][2] == "user"  # the loser's cannot-link carried over
    assert set(cluster_of(db, first + second).values()) == {b}
    assert MERGE_SIMILAR_BY.startswith("auto:")


def test_a_rejected_review_candidate_stays_rejected_for_the_merged_cluster(db):
    lib = Library(db)
    _, _, a, b = split(lib)
    face = lib.faces(lib.centre(), 1)[0]
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET cluster_status = 'pending' WHERE id = %s", (face,))
        conn.execute(
            """INSERT INTO face_match_candidate (detection_id, cluster_id, similarity, status, reviewed_by)
               VALUES (%s, %s, 0.6, 'pending', NULL), (%s, %s, 0.5, 'rejected', 'user')""",
            (face, a, face, b),
        )
    assert run(db, maintenance.MERGE_SIMILAR)["clusters_merged_away"] == 1
    with db.connection() as conn:
        rows = conn.execute("SELECT cluster_id, status, reviewed_by FROM face_match_candidate").fetchall()
    assert rows == [(a, "rejected", "user")]


def test_refused_candidates_are_notes_with_their_reason_and_the_task_stays_ok(db):
    lib = Library(db)
    look = lib.centre()
    twin = lib.centre(like=look, cosine=0.45)  # centroids within reach, faces not
    look_cluster, twin_cluster = lib.cluster(lib.faces(look, 6)), lib.cluster(lib.faces(twin, 6))
    centre = lib.centre()
    first = lib.cluster(lib.faces(centre, 4), verified=True)
    second = lib.cluster(lib.faces(centre, 4), verified=True)
    result = run_task(db, maintenance.MERGE_SIMILAR, [1], Options())
    assert result.ok and result.changes["groups"] == 0
    assert (result.changes["refused_linkage"], result.changes["refused_rules"]) == (1, 1)
    linkage, verified = sorted(result.notes)  # the look-alikes' clusters have the lower ids
    assert verified == f"clusters {{{first}}} and {{{second}}} not merged: both verified"
    assert linkage.startswith(f"clusters {{{look_cluster}}} and {{{twin_cluster}}} not merged: ")
    assert linkage.endswith("% of their face pairs within 0.62 (needs 80%)")
    assert result.as_dict()["notes"] == result.notes
