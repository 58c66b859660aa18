"""Dates from faces on the page (a birth date set through `photodb people set-birthdate`'s service,
ages from people.dates, estimated capture dates marked as estimates) and hidden persons kept out
of the search page and the photo page."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.web.test_http import post, scalar, token_of

MOMENT = re.compile(
    r'src="/face/(\d+)\.jpg".*?class="date( estimate)?">([^<]*)</span> <span class="age">([^<]*)<', re.S
)


def date_faces(db, captured: dict[int, str]) -> None:
    with db.connection() as conn:
        for face, when in captured.items():
            conn.execute(
                "INSERT INTO metadata (photo_id, captured_at) SELECT photo_id, %s FROM person_detection WHERE id = %s",
                (when, face),
            )


def test_a_birth_date_set_on_the_page_gives_the_ages_and_dates_an_undated_photo(client, world, db):
    ada = world.ada_person
    first, second, undated = world.faces["ada"][3], world.faces["ada"][0], world.faces["ada"][1]
    date_faces(db, {first: "1990-06-01 12:00", second: "2001-03-04 08:00"})
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET age_estimate = 31.6 WHERE id = %s", (undated,))
        conn.execute("UPDATE person SET estimated_birth_year = 1980 WHERE id = %s", (ada,))
    token = token_of(client, f"/person/{ada}")

    response = post(client, "set-birthdate", token, person_id=ada, birth_date="1985-09-01", next=f"/person/{ada}")
    assert response.status_code == 303 and response.headers["location"].startswith(f"/person/{ada}?message=")
    assert scalar(db, "SELECT birth_date FROM person WHERE id = %s", ada) == date(1985, 9, 1)
    assert scalar(db, "SELECT birth_date_by FROM person WHERE id = %s", ada) == "user"
    estimated = scalar(
        db,
        "SELECT estimated_year FROM photo_date_estimate e JOIN person_detection d USING (photo_id) WHERE d.id = %s",
        undated,
    )
    assert estimated == pytest.approx(1985 + 243 / 365 + 31.6, abs=0.01)  # birth + the face's age

    assert "born 1985-09-01" in client.get(response.headers["location"]).text
    page = client.get(f"/person/{ada}/timeline").text
    assert "born 1985-09-01" in page and 'value="1985-09-01"' in page
    moments = [(face, bool(mark), when, age) for face, mark, when, age in MOMENT.findall(page)]
    assert moments[:3] == [
        (str(first), False, "1990-06-01", "age 4"),  # from the birth date, not 1990 - 1980
        (str(second), False, "2001-03-04", "age 15"),
        (str(undated), True, "about 2017 ± 5 years (estimated from faces)", "age 31"),  # sd 0.15 * 31.6
    ]

    cleared = post(client, "set-birthdate", token, person_id=ada, clear=1, next=f"/person/{ada}")
    assert cleared.status_code == 303
    assert scalar(db, "SELECT birth_date FROM person WHERE id = %s", ada) is None
    page = client.get(f"/person/{ada}/timeline").text
    assert (str(first), "", "1990-06-01", "age 10") in MOMENT.findall(page)  # the estimated birth year again
    assert "born about 1980" in page


def test_a_bad_birth_date_is_one_line_and_writes_nothing(client, world, db):
    token = token_of(client, f"/person/{world.ada_person}")
    for bad in ("1985-13-01", "2999-01-01", ""):
        response = post(client, "set-birthdate", token, person_id=world.ada_person, birth_date=bad)
        assert response.status_code == 400
    assert scalar(db, "SELECT birth_date FROM person WHERE id = %s", world.ada_person) is None
    refused = post(client, "set-birthdate", "wrong-token", person_id=world.ada_person, birth_date="1985-09-01")
    assert refused.status_code == 403
    assert scalar(db, "SELECT birth_date FROM person WHERE id = %s", world.ada_person) is None


def test_an_estimated_date_is_marked_on_the_search_and_photo_pages(client, world, db):
    face = world.faces["bob"][2]
    photo = scalar(db, "SELECT photo_id FROM person_detection WHERE id = %s", face)
    with db.connection() as conn:
        conn.execute(
            """INSERT INTO photo_date_estimate (photo_id, estimated_year, stddev_years, persons)
               VALUES (%s, 1994.4, 3.2, '[]')""",
            (photo,),
        )
    results = client.get("/search", params={"person": "Bob", "year": "1994"}).text
    assert re.findall(r'id="result-(\d+)"', results) == [str(photo)]
    assert re.search(r'class="estimate"[^>]*>about 1994 \(est\.\)<', results)
    page = client.get(f"/photo/{photo}").text
    assert '<span class="estimate">about 1994 ± 3 years (estimated from faces)</span>' in page


def test_a_hidden_person_is_not_named_on_the_search_and_photo_pages(client, world, db):
    face = world.faces["bob"][0]
    photo = scalar(db, "SELECT photo_id FROM person_detection WHERE id = %s", face)
    date_faces(db, {face: "1999-05-01 10:00"})
    assert post(client, "hide-person", token_of(client), person_id=world.bob_person).status_code == 303

    refused = client.get("/search", params={"person": "Bob"}).text
    assert "&#39;Bob&#39; is hidden" in refused and 'id="result-count"' not in refused
    found = client.get("/search", params={"year": "1999"}).text
    assert re.findall(r'id="result-(\d+)"', found) == [str(photo)]  # the photo is still found
    assert "Bob" not in found.split('id="result-count"')[1]
    page = client.get(f"/photo/{photo}").text
    assert f'id="face-{face}"' in page and "Bob" not in page and f'href="/person/{world.bob_person}"' not in page
