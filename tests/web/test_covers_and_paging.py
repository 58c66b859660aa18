"""The cover face of a person (the sharpest frontal face unless the user chose one, through
people.covers as `photodb people cover`) and the people pages' paging and bad values."""

from __future__ import annotations

import json
import re

import pytest

from photodb.database import person_pages
from photodb.database.connection import Database
from photodb.people import covers, undo
from photodb.people.identity import PeopleError
from photodb.web import people_pages, security
from tests.cli import PHOTODB, cli_env, run_command
from tests.web.browsing import scalar

ORIGIN = "http://127.0.0.1:8765"
FRONTAL = [[20.0, 30.0], [40.0, 30.0], [30.0, 40.0], [22.0, 50.0], [38.0, 50.0]]
PROFILE = [[20.0, 30.0], [40.0, 30.0], [39.0, 40.0], [22.0, 50.0], [38.0, 50.0]]  # nose at one eye: turned


def describe(db: Database, face: int, sharpness: float, landmarks: list[list[float]] | None) -> None:
    with db.connection() as conn:
        conn.execute(
            "UPDATE person_detection SET face_sharpness = %s, face_landmarks = %s::jsonb WHERE id = %s",
            (sharpness, None if landmarks is None else json.dumps(landmarks), face),
        )


def cover_of(db: Database, person_id: int) -> int | None:
    with db.connection() as conn:
        return person_pages.person_covers(conn, [person_id]).get(person_id)


def test_the_cover_is_the_sharpest_frontal_face_until_the_user_chooses_one(db, world, database_url, tmp_path):
    ada = world.faces["ada"]
    describe(db, ada[1], 900.0, PROFILE)  # the sharpest, but turned away
    describe(db, ada[3], 400.0, FRONTAL)
    describe(db, ada[4], 300.0, FRONTAL)
    describe(db, ada[5], 950.0, None)  # sharpest of all, frontal unknown
    assert cover_of(db, world.ada_person) == ada[3]

    chosen = covers.set_cover(db, world.ada_person, ada[1], by="user")
    assert chosen["cover_face_id"] == ada[1] and cover_of(db, world.ada_person) == ada[1]
    with pytest.raises(PeopleError, match="not a face of person"):
        covers.set_cover(db, world.ada_person, world.faces["bob"][0], by="user")
    assert cover_of(db, world.ada_person) == ada[1]  # a refused choice changes nothing
    undo.undo(db, chosen["change_id"], by="user")  # a choice is a change of the undo log
    assert cover_of(db, world.ada_person) == ada[3]
    covers.set_cover(db, world.ada_person, ada[1], by="user")

    env = cli_env(tmp_path, database_url)
    refused = run_command([PHOTODB, "people", "cover", str(world.ada_person), str(world.faces["bob"][0])], env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "not a face of person" in refused.stderr
    back = run_command([PHOTODB, "people", "cover", str(world.ada_person)], env=env)
    assert back.returncode == 0, back.stderr
    assert "chosen automatically" in back.stdout and cover_of(db, world.ada_person) == ada[3]


def test_the_people_grid_is_paged_and_bad_page_values_are_400(client, db, world, monkeypatch):
    monkeypatch.setattr(people_pages, "PERSONS_PER_PAGE", 1)
    first, second = client.get("/"), client.get("/?page=2")
    assert first.status_code == second.status_code == 200
    assert f'id="person-{world.ada_person}"' in first.text and f'id="person-{world.bob_person}"' not in first.text
    assert f'id="person-{world.bob_person}"' in second.text and 'id="page-previous"' in second.text
    assert 'data-src="/unsorted"' in first.text and 'data-src="/unsorted"' not in second.text  # loaded after
    for bad in ("abc", "0", "-1"):
        response = client.get(f"/?page={bad}")
        assert response.status_code == 400 and "page must be" in response.text
    assert client.get(f"/person/{world.ada_person}?page=x").status_code == 400
    assert client.get("/person/999999").status_code == 404


def test_the_unsorted_face_is_offered_its_nearest_person_and_moved_there(client, db, world):
    client.get("/")
    page = client.get("/unsorted").text
    assert f'id="unsorted-{world.pending_face}"' in page and f'id="accept-suggestion-{world.pending_face}"' in page
    token = client.cookies.get(security.COOKIE)
    response = client.post(
        "/action/move-face",
        data={"token": token, "face_id": str(world.pending_face), "to_person_id": str(world.bob_person), "next": "/"},
        headers={"origin": ORIGIN},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert f'id="unsorted-{world.pending_face}"' not in client.get("/unsorted").text
    empty = client.post(
        "/action/faces-move",
        data={"token": token, "to_person_id": str(world.bob_person)},
        headers={"origin": ORIGIN},
        follow_redirects=False,
    )
    assert empty.status_code == 400 and "no face selected" in empty.text


def test_not_this_person_is_offered_only_for_faces_in_a_cluster(client, db, world):
    page = client.get(f"/photo/{_photo_of(db, world.pending_face)}").text
    assert f'id="not-{world.pending_face}"' not in page  # in no cluster: it would fail, so not offered
    assert f'id="name-face-{world.pending_face}"' in page and f'id="box-{world.pending_face}"' in page
    clustered = world.faces["ada"][0]
    page = client.get(f"/photo/{_photo_of(db, clustered)}").text
    assert f'id="not-{clustered}"' in page and f'id="name-face-{clustered}"' not in page


def _photo_of(db: Database, face: int) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT photo_id FROM person_detection WHERE id = %s", (face,)).fetchone()
    assert row is not None
    return int(row[0])


def test_the_timeline_is_paged(client, world, monkeypatch):
    from photodb.web import pages

    monkeypatch.setattr(pages, "TIMELINE_PHOTOS", 4)
    first = client.get(f"/person/{world.ada_person}/timeline").text
    second = client.get(f"/person/{world.ada_person}/timeline?page=2").text
    shown = [set(re.findall(r'id="photo-(\d+)"', page)) for page in (first, second)]
    assert len(shown[0]) == 4 and len(shown[1]) == 2 and not shown[0] & shown[1]
    assert 'id="page-next"' in first and client.get(f"/person/{world.ada_person}/timeline?page=x").status_code == 400


@pytest.mark.parametrize(
    ("action", "fields", "said"),
    [
        ("faces-move", {"face_x": "on", "to_person_id": "1"}, "face must be a number"),
        ("faces-move", {"face_1": "on", "to_person_id": "²"}, "to_person_id must be a number"),
        ("faces-not-this-person", {"face_99999999999999999999": "on"}, "face must be between"),
        ("move-face", {"suggested": "1:x"}, "to_person_id must be a number"),
        ("cover", {"person_id": "1", "cover_face": "1\x00"}, "NUL"),
    ],
)
def test_the_new_actions_answer_bad_fields_with_400(client, db, world, action, fields, said):
    before = scalar(db, "SELECT count(*) FROM people_change")
    response = client.post(
        f"/action/{action}",
        data={"token": client.cookies.get(security.COOKIE), "next": "/"} | fields,
        headers={"origin": ORIGIN},
        follow_redirects=False,
    )
    assert response.status_code == 400 and said in response.text
    assert scalar(db, "SELECT count(*) FROM people_change") == before


def test_a_page_number_past_the_last_allowed_is_400(client, world):
    response = client.get(f"/person/{world.ada_person}?page={people_pages.LAST_PAGE + 1}")
    assert response.status_code == 400 and "page must be between" in response.text
