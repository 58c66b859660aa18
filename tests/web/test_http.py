"""The page's HTTP rules with Starlette's TestClient against a real database: pages render with
real thumbnails, every POST needs the session token and a same-site Origin, and each action
changes the database through the `photodb people` services."""

from __future__ import annotations

import re

from PIL import Image
from starlette.testclient import TestClient

from photodb.database.clustering.centroids import recount_clusters
from photodb.database.connection import Database
from photodb.ml.clip import create_clip_model
from photodb.web import security
from photodb.web.app import WebContext
from photodb.web.thumbnails import cache_dir
from tests.tiny_clip import tiny_clip  # noqa: F401  (session fixture)
from tests.web.conftest import ORIGIN, opened


def token_of(client: TestClient, page: str = "/") -> str:
    response = client.get(page)
    assert response.status_code == 200
    match = re.search(r'name="token" value="([^"]+)"', response.text)
    assert match and client.cookies.get(security.COOKIE) == match.group(1)
    return match.group(1)


def post(client: TestClient, action: str, token: str | None, **fields: object) -> object:
    data = {k: str(v) for k, v in fields.items()} | ({"token": token} if token is not None else {})
    return client.post(f"/action/{action}", data=data, headers={"origin": ORIGIN}, follow_redirects=False)


def scalar(db: Database, query: str, *params: object) -> object:
    with db.connection() as conn:
        row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def test_people_page_lists_persons_and_clusters_with_cropped_cached_thumbnails(client, world, settings):
    page = client.get("/").text
    assert f"Unknown #{world.ada_person}" in page and "Bob" in page
    assert f'id="cluster-{world.clusters["cyd"]}"' in page and "6 faces" in page
    face = world.faces["ada"][0]
    assert f'src="/face/{face}.jpg"' in page
    thumbnail = client.get(f"/face/{face}.jpg")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    cached = cache_dir(settings.photodb_home) / f"{face}.jpg"
    assert cached.is_file()
    with Image.open(cached) as image:  # the box with its margin (60x70 + 20%), not the whole 160x120 photo
        assert image.size == (84, 98)
        red, green, _blue = image.getpixel((42, 30))
        assert red > 150 and green < 100  # ada's face colour above the eyes
    assert client.get("/face/999999.jpg").status_code == 404


def test_a_post_without_the_token_or_with_a_wrong_one_is_refused_and_writes_nothing(client, world, db):
    token_of(client)
    for token in (None, "wrong"):
        response = post(client, "name-person", token, person_id=world.ada_person, name="Mallory")
        assert response.status_code == 403 and "token" in response.text
    client.cookies.clear()  # the form field alone (a page that copied it) is not enough either
    token = security.new_token()
    assert post(client, "name-person", token, person_id=world.ada_person, name="Mallory").status_code == 403
    assert scalar(db, "SELECT first_name FROM person WHERE id = %s", world.ada_person) is None


def test_a_foreign_origin_or_host_is_refused_even_with_the_token(client, world, db):
    token = token_of(client)
    data = {"token": token, "person_id": str(world.ada_person), "name": "Mallory"}
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}):
        response = client.post("/action/name-person", data=data, headers=headers, follow_redirects=False)
        assert response.status_code == 403, headers
    rebound = client.post(
        "/action/name-person", data=data, headers={"host": "evil.example:8765", "origin": "http://evil.example:8765"}
    )
    assert rebound.status_code == 403
    assert client.get("/", headers={"host": "evil.example"}).status_code == 403
    assert scalar(db, "SELECT first_name FROM person WHERE id = %s", world.ada_person) is None


def test_each_action_changes_the_database_through_the_people_services(client, world, db):
    token = token_of(client)
    named = post(client, "name-person", token, person_id=world.ada_person, name="Ada Lovelace", next="/")
    assert named.status_code == 303 and named.headers["location"].startswith("/?message=")
    assert scalar(db, "SELECT first_name || ' ' || last_name FROM person WHERE id = %s", world.ada_person) == (
        "Ada Lovelace"
    )
    assert "Ada Lovelace" in client.get(named.headers["location"]).text

    cyd = world.clusters["cyd"]
    assert post(client, "verify", token, cluster_id=cyd, verified=1).status_code == 303
    assert scalar(db, "SELECT verified_by FROM cluster WHERE id = %s", cyd) == "user"
    assert post(client, "name-cluster", token, cluster_id=cyd, name="Cyd").status_code == 303
    cyd_person = scalar(db, "SELECT person_id FROM cluster WHERE id = %s", cyd)
    assert scalar(db, "SELECT first_name FROM person WHERE id = %s", cyd_person) == "Cyd"

    rejected = world.faces["bob"][1]
    assert post(client, "not-this-person", token, face_id=rejected).status_code == 303
    assert scalar(db, "SELECT cluster_id FROM person_detection WHERE id = %s", rejected) != world.clusters["bob"]
    assert (
        scalar(db, "SELECT count(*) FROM cannot_link WHERE %s IN (detection_id_1, detection_id_2)", rejected)
        == len(world.faces["bob"]) - 1
    )

    assert post(client, "merge", token, keep_id=world.ada_person, other_id=world.bob_person).status_code == 303
    assert scalar(db, "SELECT count(*) FROM person WHERE id = %s", world.bob_person) == 0
    assert scalar(db, "SELECT person_id FROM cluster WHERE id = %s", world.clusters["bob"]) == world.ada_person

    assert post(client, "hide-person", token, person_id=cyd_person).status_code == 303
    assert scalar(db, "SELECT hidden FROM person WHERE id = %s", cyd_person) is True
    assert "Cyd" not in client.get("/").text


def test_a_refused_change_is_one_line_and_writes_nothing(client, world, db):
    token = token_of(client)
    same = post(client, "merge", token, keep_id=world.ada_person, other_id=world.ada_person)
    assert same.status_code == 400 and "into itself" in same.text
    missing = post(client, "name-person", token, person_id=999999, name="Nobody")
    assert missing.status_code == 400 and "999999" in missing.text
    assert post(client, "name-person", token, person_id="x", name="A").status_code == 400
    assert post(client, "drop-tables", token).status_code == 400
    assert scalar(db, "SELECT count(*) FROM person") == 2


def test_review_page_shows_pending_pairs_and_accept_and_reject_decide_them(client, world, db):
    page = client.get("/review").text
    candidates = dict(
        (int(cluster), int(cid))
        for cid, cluster in re.findall(r'id="candidate-(\d+)".*?cluster (\d+)', page, flags=re.S)
    )
    assert set(candidates) == {world.clusters["ada"], world.clusters["bob"]}
    assert f'src="/face/{world.pending_face}.jpg"' in page
    token = token_of(client, "/review")
    rejected = post(client, "reject", token, candidate_id=candidates[world.clusters["bob"]], next="/review")
    assert rejected.status_code == 303 and rejected.headers["location"].startswith("/review?")
    accepted = post(client, "accept", token, candidate_id=candidates[world.clusters["ada"]], next="/review")
    assert accepted.status_code == 303
    assert (
        scalar(db, "SELECT cluster_id FROM person_detection WHERE id = %s", world.pending_face)
        == (world.clusters["ada"])
    )
    statuses = scalar(
        db, "SELECT array_agg(status ORDER BY cluster_id) FROM face_match_candidate WHERE detection_id = %s",
        world.pending_face,
    )  # fmt: skip
    assert sorted(statuses) == ["accepted", "rejected"]
    assert "Nothing to review" in client.get("/review").text
    again = post(client, "accept", token, candidate_id=candidates[world.clusters["ada"]])
    assert again.status_code == 400 and "already" in again.text


def test_redirects_stay_on_this_server(client, world):
    token = token_of(client)
    response = post(client, "verify", token, cluster_id=world.clusters["cyd"], next="http://evil.example/x")
    assert response.headers["location"].startswith("/?")


def test_timeline_lists_a_persons_photos_by_date_with_the_age_from_the_birth_year(client, world, db):
    first, second, undated = world.faces["ada"][3], world.faces["ada"][0], world.faces["ada"][1]
    with db.connection() as conn:
        for face, when in ((first, "1990-06-01 12:00"), (second, "2001-03-04 08:00")):
            conn.execute(
                "INSERT INTO metadata (photo_id, captured_at) SELECT photo_id, %s FROM person_detection WHERE id = %s",
                (when, face),
            )
        conn.execute("UPDATE person_detection SET age_estimate = 31.6 WHERE id = %s", (undated,))
        conn.execute("UPDATE person SET estimated_birth_year = 1980 WHERE id = %s", (world.ada_person,))
    page = client.get(f"/person/{world.ada_person}/timeline").text
    moments = re.findall(r'src="/face/(\d+)\.jpg".*?class="date">([^<]*)</span> <span class="age">([^<]*)<', page, re.S)
    assert moments[:2] == [(str(first), "1990-06-01", "age 10"), (str(second), "2001-03-04", "age 21")]
    assert (str(undated), "undated", "looks 32") in moments and len(moments) == len(world.faces["ada"])
    assert client.get("/person/999999/timeline").status_code == 404
    assert client.get("/person/999999").status_code == 404


def test_quality_page_puts_the_widest_cluster_and_its_farthest_face_first(client, world, db):
    stranger = world.faces["cyd"][0]
    with db.connection() as conn:  # one face of ada's cluster is really cyd's: ada's cluster widens
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = %s", (world.clusters["ada"], stranger))
        recount_clusters(conn, list(world.clusters.values()))
    page = client.get("/quality").text
    order = [int(c) for c in re.findall(r'id="spread-(\d+)"', page)]
    assert order[0] == world.clusters["ada"] and set(order) == set(world.clusters.values())
    first_card = page.split(f'id="spread-{world.clusters["ada"]}"')[1].split("</article>")[0]
    distances = [float(d) for d in re.findall(r'data-distance="([0-9.]+)"', first_card)]
    assert re.search(r'id="face-(\d+)"', first_card).group(1) == str(stranger)
    assert distances == sorted(distances, reverse=True)


def test_search_page_runs_photodb_search_with_the_form_filters(client, world, db):
    with db.connection() as conn:
        for face, when in ((world.faces["bob"][0], "1999-05-01 10:00"), (world.faces["bob"][1], "2004-05-01 10:00")):
            conn.execute(
                "INSERT INTO metadata (photo_id, captured_at) SELECT photo_id, %s FROM person_detection WHERE id = %s",
                (when, face),
            )
    photo = scalar(db, "SELECT photo_id FROM person_detection WHERE id = %s", world.faces["bob"][0])
    page = client.get("/search", params={"person": "Bob", "year": "1999"}).text
    assert re.findall(r'id="result-(\d+)"', page) == [str(photo)] and "1999-05-01" in page
    assert 'value="Bob"' in page
    thumbnail = client.get(f"/photo/{photo}.jpg")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert len(re.findall(r'id="result-\d+"', client.get("/search", params={"person": "Bob"}).text)) == 6
    unknown = client.get("/search", params={"person": "Nobody"}).text
    assert "no person named" in unknown and 'id="result-count"' not in unknown
    assert "year must be a number" in client.get("/search", params={"year": "abc"}).text
    assert 'id="result-count"' not in client.get("/search").text


def test_photo_page_shows_its_faces_tags_description_place_and_camera(client, world, db):
    face = world.faces["bob"][0]
    photo = scalar(db, "SELECT photo_id FROM person_detection WHERE id = %s", face)
    with db.connection() as conn:
        conn.execute(
            """INSERT INTO metadata (photo_id, captured_at, camera_make, camera_model)
               VALUES (%s, '2003-07-14 09:30', 'Canon', 'EOS 300D')""",
            (photo,),
        )
        conn.execute(
            """INSERT INTO photo_place (photo_id, latitude, longitude, country_code, country, region, city,
                   distance_km, source)
               VALUES (%s, 48.85, 2.35, 'FR', 'France', 'Île-de-France', 'Paris', 1, 'test')""",
            (photo,),
        )
        conn.execute(
            "INSERT INTO llm_analysis (photo_id, model_name, description) VALUES (%s, 'test', 'A man <b>waves</b>')",
            (photo,),
        )
        conn.execute(
            """INSERT INTO photo_tag (photo_id, category, label, confidence, model_name)
               VALUES (%s, 'setting', 'city street', 0.8, 'test')""",
            (photo,),
        )
    page = client.get(f"/photo/{photo}").text
    assert "Canon EOS 300D" in page and "Paris, Île-de-France, France" in page and "2003-07-14" in page
    assert "A man &lt;b&gt;waves&lt;/b&gt;" in page  # the description is escaped, never markup
    assert "setting: city street" in page
    assert f'id="face-{face}"' in page and f'<a href="/person/{world.bob_person}">Bob</a>' in page
    assert client.get("/photo/999999").status_code == 404


def test_split_page_shows_two_halves_and_the_picked_half_keeps_the_cluster(client, world, db):
    ada_cluster = world.clusters["ada"]
    with db.connection() as conn:  # cyd's faces wrongly in ada's cluster
        conn.execute(
            "UPDATE person_detection SET cluster_id = %s WHERE id = ANY(%s)", (ada_cluster, world.faces["cyd"])
        )
        conn.execute("DELETE FROM cluster WHERE id = %s", (world.clusters["cyd"],))
        recount_clusters(conn, [ada_cluster])
    page = client.get("/split", params={"cluster": ada_cluster}).text
    halves = [set(map(int, re.findall(r'src="/face/(\d+)\.jpg"', part))) for part in page.split('id="half-')[1:]]
    assert len(halves) == 2 and all(halves)
    ada_half = next(n for n, faces in enumerate(halves, 1) if faces <= set(world.faces["ada"]))
    key = re.search(r'name="halves" value="([^"]+)"', page).group(1)
    token = token_of(client, f"/split?cluster={ada_cluster}")
    stale = post(client, "split", token, kind="cluster", target_id=ada_cluster, keep=ada_half, halves="1|2")
    assert stale.status_code == 400 and "changed" in stale.text
    done = post(client, "split", token, kind="cluster", target_id=ada_cluster, keep=ada_half, halves=key)
    assert done.status_code == 303
    with db.connection() as conn:
        placed = dict(
            conn.execute(
                "SELECT id, cluster_id FROM person_detection WHERE id = ANY(%s)",
                (world.faces["ada"] + world.faces["cyd"],),
            ).fetchall()
        )
    assert {placed[f] for f in world.faces["ada"]} == {ada_cluster}
    assert len({placed[f] for f in world.faces["cyd"]}) == 1 and placed[world.faces["cyd"][0]] != ada_cluster
    assert scalar(db, "SELECT person_id FROM cluster WHERE id = %s", ada_cluster) == world.ada_person
    assert client.get("/split", params={"cluster": "x"}).status_code == 400


def test_text_search_uses_the_servers_one_clip_encoder(db, settings, world, tiny_clip):  # noqa: F811
    """The page keeps one CLIP model for the server's life: the first text search loads it, the
    next ones reuse it (no model load per request)."""
    clip_settings = settings.model_copy(update=tiny_clip.settings_overrides())
    encoder = create_clip_model(clip_settings)
    context = WebContext(
        db,
        clip_settings,
        clip_settings.images_dir,
        cache_dir(clip_settings.photodb_home),
        None,
        security.new_token(),
        encoder,
    )
    client = opened(context)
    assert not encoder._loaded
    for _ in range(2):
        page = client.get("/search", params={"text": "a red circle"})
        assert page.status_code == 200 and "text search needs" not in page.text
    assert encoder._loaded
