"""The page opens only for its owner (the token `photodb web` prints, then its cookie), refuses a
foreign Host on every response, serves only face and photo thumbnails, shows only messages it
signed, and answers bad input with a 400 and its message, never a 500."""

from __future__ import annotations

import re
import stat

import pytest
from starlette.testclient import TestClient

from photodb.web import security
from photodb.web.app import WebContext, create_app
from photodb.web.thumbnails import cache_dir
from tests.web.conftest import ORIGIN
from tests.web.test_http import post, scalar, token_of


@pytest.fixture
def stranger(web_context: WebContext) -> TestClient:
    """Another local user's client: the same server, but never given the printed address."""
    return TestClient(create_app(web_context), base_url=ORIGIN)


def test_the_printed_token_sets_a_strict_httponly_cookie_and_leads_to_the_clean_address(stranger, web_context):
    for page in (
        "/",
        "/review",
        "/static/style.css",
        "/person/1",
        "/person/1/timeline",
        "/unnamed",
        "/unnamed/after/1",
        "/unsorted",
        "/static/select.js",
        "/face/1.jpg",
        "/no-such-page",
    ):
        refused = stranger.get(page)
        assert refused.status_code == 403, page
        assert "photodb web" in refused.text and "?token=" in refused.text and web_context.token not in refused.text
    assert stranger.get(f"/?token={security.new_token()}").status_code == 403

    opened = stranger.get(f"/search?year=1999&token={web_context.token}", follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == "/search?year=1999"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"{security.COOKIE}={web_context.token};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    for page in ("/", "/review", "/static/style.css", "/search?year=1999"):
        assert stranger.get(page).status_code == 200, page


def test_without_the_cookie_no_face_is_shown_and_no_change_is_made(stranger, web_context, world, db):
    face = world.faces["ada"][0]
    assert stranger.get(f"/face/{face}.jpg").status_code == 403
    scraped = post(stranger, "name-person", web_context.token, person_id=world.ada_person, name="Mallory")
    assert scraped.status_code == 403  # the form token alone (scraped from a page) is not enough
    assert scalar(db, "SELECT first_name FROM person WHERE id = %s", world.ada_person) is None
    by_address = stranger.post(
        f"/action/name-person?token={web_context.token}",
        data={"token": web_context.token, "person_id": str(world.ada_person), "name": "Mallory"},
        headers={"origin": ORIGIN},
        follow_redirects=False,
    )
    assert by_address.status_code == 403  # a POST never logs in
    assert scalar(db, "SELECT first_name FROM person WHERE id = %s", world.ada_person) is None


@pytest.mark.parametrize(
    ("page", "status"),
    [("/person/999999", 404), ("/no-such-page", 404), ("/split?cluster=x", 400), ("/search?year=abc", 400), ("/", 200)],
)
def test_a_foreign_host_is_refused_on_every_response(client, page, status):
    assert client.get(page).status_code == status
    refused = client.get(page, headers={"host": "evil.example"})
    assert refused.status_code == 403 and "evil.example" in refused.text
    assert "no person" not in refused.text and "must be" not in refused.text


def test_only_face_and_photo_thumbnails_exist(client, world):
    face = world.faces["ada"][0]
    assert client.get(f"/face/{face}.jpg").status_code == 200
    assert client.get(f"/evil/{face}.jpg").status_code == 404
    assert client.get("/face/99999999999999999999.jpg").status_code == 404


def test_only_a_message_the_server_signed_is_shown(client, world):
    page = client.get("/", params={"message": "PhotoDB: your library is lost, call 555-0100"}).text
    assert "555-0100" not in page and 'id="message"' not in page
    token = token_of(client)
    done = post(client, "verify", token, cluster_id=world.clusters["cyd"], verified=1, next="/")
    assert done.status_code == 303
    shown = client.get(done.headers["location"]).text
    assert re.search(r'id="message">cluster \d+ verified<', shown)
    forged = done.headers["location"].replace("verified", "deleted")
    assert 'id="message"' not in client.get(forged).text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"year": "99999999999999999999"}, "year must be between 1800 and 2200"),
        ({"year": "0"}, "year must be between 1800 and 2200"),
        ({"year": "10000"}, "year must be between 1800 and 2200"),
        ({"year": "\uff11\uff19\uff19\uff19"}, "year must be a number"),  # full-width digits
        ({"year": "²"}, "year must be a number"),
        ({"person": "Bob\x00"}, "NUL byte"),
        ({"place": "Par\x00is"}, "NUL byte"),
        ({"words": "\x00"}, "NUL byte"),
        ({"from": "9999-12-31"}, "is not between 1800 and 2200"),
        ({"to": "9999-12-31"}, "is not between 1800 and 2200"),
    ],
)
def test_bad_search_input_is_a_400_with_its_message(client, world, params, message):
    response = client.get("/search", params=params)
    assert response.status_code == 400 and message in response.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"person_id": "²", "name": "A"}, "person_id must be a number"),
        ({"person_id": "\uff11", "name": "A"}, "person_id must be a number"),  # full-width 1
        ({"person_id": "99999999999999999999", "name": "A"}, "person_id must be between"),
        ({"person_id": "{ada}", "name": "Ada\x00"}, "NUL byte"),
        ({"person_id": "{ada}", "name": "Ada", "next": "/\x00"}, "NUL byte"),
    ],
)
def test_bad_form_input_is_a_400_with_its_message_and_writes_nothing(client, world, db, fields, message):
    token = token_of(client)
    data = {name: value.replace("{ada}", str(world.ada_person)) for name, value in fields.items()}
    response = post(client, "name-person", token, **data)
    assert response.status_code == 400 and message in response.text
    assert scalar(db, "SELECT first_name FROM person WHERE id = %s", world.ada_person) is None


@pytest.mark.parametrize(
    "page", ["/?x=%00", "/split?cluster=%C2%B2", "/split?cluster=%00", "/person/99999999999999999999"]
)
def test_other_bad_addresses_are_a_400_or_404_never_a_500(client, world, page):
    assert client.get(page).status_code in (400, 404)


def test_face_and_photo_thumbnails_are_the_owners_only(client, world, db, settings):
    face = world.faces["ada"][0]
    photo = scalar(db, "SELECT photo_id FROM person_detection WHERE id = %s", face)
    assert client.get(f"/face/{face}.jpg").status_code == 200
    assert client.get(f"/photo/{photo}.jpg").status_code == 200
    cache = cache_dir(settings.photodb_home)
    for folder in (cache, cache.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    made = sorted(path.name for path in cache.iterdir())
    assert made == sorted([f"{face}.jpg", f"photo-{photo}.jpg"])
    assert all(stat.S_IMODE((cache / name).stat().st_mode) == 0o600 for name in made)
