"""Faces nobody is yet are visible at once (`people list --unsorted`), and bodies are never faces."""

from __future__ import annotations

from photodb.database.connection import Database
from photodb.people.association import auto_associate
from tests.people.conftest import Cli, Library, ok_json


def _body_only(db: Database) -> int:
    with db.connection() as conn:
        row = conn.execute(
            """INSERT INTO person_detection (photo_id, body_bbox_x, body_bbox_y, body_bbox_width, body_bbox_height,
                                             body_confidence)
               SELECT min(id), 0, 0, 40, 90, 0.9 FROM photo RETURNING id"""
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_unsorted_lists_every_face_in_no_cluster_and_no_body(db: Database, library: Library, cli: Cli) -> None:
    body = _body_only(db)
    with db.connection() as conn:
        expected = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM person_detection WHERE cluster_id IS NULL AND face_bbox_x IS NOT NULL"
            ).fetchall()
        }
    assert expected  # the generated library has noise faces
    listed = ok_json(cli("people", "list", "--unsorted", "--limit", "0", "--json"))
    assert {f["id"] for f in listed["faces"]} == expected
    assert listed["faces_total"] == len(expected) and body not in {f["id"] for f in listed["faces"]}
    page = ok_json(cli("people", "list", "--unsorted", "--limit", "2", "--json"))
    assert len(page["faces"]) == 2 and page["faces_total"] == len(expected)


def test_an_unsorted_face_suggests_the_person_it_came_from(db: Database, library: Library, cli: Cli) -> None:
    auto_associate(db, 1)
    cluster, faces = next(iter(library.clusters(db).items()))
    with db.connection() as conn:
        person = conn.execute("SELECT person_id FROM cluster WHERE id = %s", (cluster,)).fetchone()[0]
        conn.execute(
            "UPDATE person_detection SET cluster_id = NULL, cluster_status = 'unassigned' WHERE id = %s", (faces[0],)
        )
    assert person is not None
    listed = ok_json(cli("people", "list", "--unsorted", "--limit", "0", "--json"))
    face = next(f for f in listed["faces"] if f["id"] == faces[0])
    assert face["nearest_person"]["person_id"] == person
    text = cli("people", "list", "--unsorted", "--limit", "0")
    assert f"`photodb people move {faces[0]} --person {person}`" in text.stdout


def test_a_body_is_not_shown_as_a_face(db: Database, library: Library, cli: Cli) -> None:
    body = _body_only(db)
    result = cli("people", "show", "--face", body)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: detection {body} is a body without a face, not a face"
