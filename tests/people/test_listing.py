"""`photodb people list` and `show` against a fresh count of the same faces, made here in Python from
the rows themselves: faces sharing a photo, a person with two clusters that share a photo, a face
placed on a person without a cluster, a stale medoid, a hidden cluster, pages of any size."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from photodb.database.connection import Database
from photodb.people import views
from tests.people.conftest import Library

#: Put a face (the second id) on the photo of another (the first id).
SAME_PHOTO = """UPDATE person_detection SET photo_id = (SELECT photo_id FROM person_detection WHERE id = %s)
                WHERE id = %s"""


def _arrange(db: Database, library: Library) -> dict[str, Any]:
    """Give the generated library the cases a listing can get wrong; returns what was made."""
    clusters = list(library.clusters(db).items())
    (first, first_faces), (second, second_faces), (third, third_faces) = clusters[:3]
    stale = clusters[3][0]
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET age_estimate = 3 + (id * 7) % 60")
        # two faces of `first` on one photo: more faces than photos
        conn.execute(SAME_PHOTO, (first_faces[0], first_faces[1]))
        person = conn.execute(
            """INSERT INTO person (collection_id, first_name, created_by) VALUES (1, 'Ada', 'user') RETURNING id"""
        ).fetchone()[0]
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = ANY(%s)", (person, [first, second]))
        # a photo holding a face of each of the person's clusters, and a face of the person without one
        conn.execute(SAME_PHOTO, (first_faces[2], second_faces[0]))
        own = third_faces[-1]
        conn.execute(
            """UPDATE person_detection SET cluster_id = NULL, cluster_status = 'manual', person_id = %s,
                      photo_id = (SELECT photo_id FROM person_detection WHERE id = %s) WHERE id = %s""",
            (person, first_faces[3], own),
        )
        conn.execute("UPDATE cluster SET face_count = face_count - 1 WHERE id = %s", (third,))
        # a medoid that has since left its cluster: the sample must still be one of the cluster's photos
        conn.execute("UPDATE cluster SET medoid_detection_id = %s WHERE id = %s", (first_faces[-1], stale))
        conn.execute("UPDATE cluster SET hidden = true, hidden_by = 'user', hidden_at = now() WHERE id = %s", (third,))
    return {"person": person, "own": own, "first": first, "stale": stale, "hidden": third}


def _fresh(db: Database) -> dict[str, Any]:
    """Per cluster and per person: faces, photos, age range and photo paths, counted in Python."""
    with db.connection() as conn:
        faces = conn.execute(
            """SELECT d.id, d.photo_id, d.cluster_id, coalesce(c.person_id, d.person_id), d.age_estimate,
                      CASE WHEN k.root_path IS NULL THEN p.filename ELSE k.root_path || '/' || p.filename END
               FROM person_detection d JOIN photo p ON p.id = d.photo_id JOIN collection k ON k.id = p.collection_id
               LEFT JOIN cluster c ON c.id = d.cluster_id"""
        ).fetchall()
    groups: dict[tuple[str, int], list[tuple[Any, ...]]] = defaultdict(list)
    for face in faces:
        if face[2] is not None:
            groups["cluster", face[2]].append(face)
        if face[3] is not None:
            groups["person", face[3]].append(face)
    return {
        key: {
            "faces": len(rows),
            "photos": len({r[1] for r in rows}),
            "age_range": [round(min(r[4] for r in rows)), round(max(r[4] for r in rows))],
            "paths": {r[5] for r in rows},
        }
        for key, rows in groups.items()
    }


def _check(row: dict[str, Any], expected: dict[str, Any]) -> None:
    assert (row["faces"], row["photos"], row["age_range"]) == (
        expected["faces"],
        expected["photos"],
        expected["age_range"],
    ), row
    for path in row.get("sample_paths", [row.get("sample_path")]):
        assert path in expected["paths"], row


def test_listings_match_a_fresh_count_of_the_faces(db: Database, library: Library) -> None:
    made = _arrange(db, library)
    fresh = _fresh(db)
    listed = views.list_people(db, 1, with_clusters=True, limit=None)
    persons = {p["id"]: p for p in listed["persons"]}
    clusters = {c["id"]: c for c in listed["clusters"]}
    assert made["hidden"] not in clusters and made["stale"] in clusters
    assert set(clusters) == {k for kind, k in fresh if kind == "cluster"} - {made["hidden"]}
    assert set(persons) == {k for kind, k in fresh if kind == "person"} == {made["person"]}
    for cluster_id, row in clusters.items():
        _check(row, fresh["cluster", cluster_id])
    ada = persons[made["person"]]
    _check(ada, fresh["person", made["person"]])
    assert ada["faces"] > ada["photos"] and ada["clusters"] == 2
    assert clusters[made["first"]]["faces"] == clusters[made["first"]]["photos"] + 1
    # pages are the first rows of the whole listing, in the same order
    page = views.list_people(db, 1, with_clusters=True, limit=3)
    assert page["clusters"] == listed["clusters"][:3] and page["persons"] == listed["persons"][:3]
    assert page["clusters_total"] == len(clusters)
    # show: one person and one cluster give the same figures as the listing
    shown = views.show_person(db, made["person"])
    _check(shown, fresh["person", made["person"]])
    assert shown["faces_without_cluster"] == [made["own"]]
    for cluster_id in (made["stale"], made["hidden"]):
        _check(views.show_cluster(db, cluster_id), fresh["cluster", cluster_id])


def test_a_stale_medoid_never_gives_a_cluster_another_clusters_photo(db: Database, library: Library) -> None:
    made = _arrange(db, library)
    own_paths = _fresh(db)["cluster", made["stale"]]["paths"]
    listed = views.list_people(db, 1, with_clusters=True, limit=None)["clusters"]
    (row,) = [c for c in listed if c["id"] == made["stale"]]
    assert row["sample_path"] in own_paths
    assert views.show_cluster(db, made["stale"])["sample_path"] in own_paths
