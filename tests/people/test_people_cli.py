"""`photodb people`: every command round-trips (do it, read it back through show / list --json) and
survives a re-bootstrap (`photodb cluster`) followed by weekly maintenance, on generated faces in a real PostgreSQL."""

from __future__ import annotations

from photodb import maintenance
from photodb.clustering.bootstrap import bootstrap
from photodb.database import people_repository as people_db
from tests.people.conftest import ok_json


def bootstrap_and_weekly(db) -> None:
    """What later automatic work does to a library: a re-bootstrap, then weekly maintenance."""
    bootstrap(db)
    results = maintenance.run_tasks(db, maintenance.WEEKLY, None, maintenance.Options.from_settings(db.settings))
    assert all(r.error is None for r in results), [r.as_dict() for r in results]


def test_list_shows_persons_and_clusters_with_counts_ages_and_samples(db, library, cli):
    clusters = library.clusters(db)
    big = next(iter(clusters))
    with db.connection() as conn:  # ages, and an auto-created person ('Unknown #id') of the biggest cluster
        conn.execute("UPDATE person_detection SET age_estimate = 30 + id %% 7 WHERE cluster_id = %s", (big,))
        person = conn.execute(
            "INSERT INTO person (collection_id, first_name, auto_created) VALUES (1, 'Unknown', true) RETURNING id"
        ).fetchone()[0]
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (person, big))
    listed = ok_json(cli("people", "list", "--clusters", "--json"))
    (shown,) = listed["persons"]
    assert shown["id"] == person and shown["name"] == f"Unknown #{person}"
    assert shown["faces"] == len(clusters[big]) == shown["photos"] and shown["clusters"] == 1
    ages = [30 + f % 7 for f in clusters[big]]
    assert shown["age_range"] == [min(ages), max(ages)]
    assert shown["sample_path"].startswith("face-")
    by_id = {c["id"]: c for c in listed["clusters"]}
    assert set(by_id) == set(clusters)
    for cluster_id, faces in clusters.items():
        assert by_id[cluster_id]["faces"] == len(faces) == by_id[cluster_id]["photos"]
        assert by_id[cluster_id]["sample_path"]
    assert by_id[big]["person_id"] == person
    text = cli("people", "list", "--clusters")
    assert text.exit_code == 0 and f"person {person}: Unknown #{person}" in text.stdout
    page = ok_json(cli("people", "list", "--clusters", "--limit", 3, "--json"))
    assert [c["id"] for c in page["clusters"]] == list(clusters)[:3] and page["clusters_total"] == len(clusters)
    assert page["persons_total"] == 1
    assert ok_json(cli("people", "list", "--clusters", "--limit", 0, "--json")) == listed  # the every-row query
    assert "(3 of " in cli("people", "list", "--clusters", "--limit", 3).stdout
    with db.connection() as conn:  # ages at capture: dated photos and an estimated birth year
        conn.execute("UPDATE person SET estimated_birth_year = 1950 WHERE id = %s", (person,))
        conn.execute(
            """INSERT INTO metadata (photo_id, captured_at)
               SELECT photo_id, make_timestamp(1980 + (id %% 3)::int, 1, 1, 0, 0, 0) FROM person_detection
               WHERE cluster_id = %s""",
            (big,),
        )
    shown = ok_json(cli("people", "show", person, "--json"))
    assert shown["ages_at_capture"] == [30, 32] and shown["estimated_birth_year"] == 1950
    assert shown["age_range"] == [min(ages), max(ages)] and len(shown["photo_paths"]) == min(20, len(clusters[big]))


def test_a_person_is_named_when_someone_recorded_naming_them_not_by_the_word(db, library, cli):
    """An 'Unknown' placeholder nobody named (auto_created false, no created_by / named_by, as older
    code or an import leaves it) is unnamed; a user may name someone "Unknown" and it sticks."""
    first, second = list(library.clusters(db))[:2]
    with db.connection() as conn:
        placeholder = conn.execute(
            "INSERT INTO person (collection_id, first_name, auto_created) VALUES (1, 'Unknown', false) RETURNING id"
        ).fetchone()[0]
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (placeholder, first))
    named = ok_json(cli("people", "name", "--cluster", second, "Unknown", "--json"))["person_id"]
    by_id = {p["id"]: p for p in ok_json(cli("people", "list", "--json"))["persons"]}
    assert by_id[placeholder]["name"] == f"Unknown #{placeholder}"
    assert by_id[named]["name"] == "Unknown"
    with db.connection() as conn:
        rows = people_db.get_persons(conn, [placeholder, named])
    assert not rows[placeholder].named and rows[named].named
    merged = ok_json(cli("people", "merge", placeholder, named, "--json"))  # the name moves to the winner
    assert merged["name"] == "Unknown" and ok_json(cli("people", "show", placeholder, "--json"))["named_by"] == "user"


def test_name_a_cluster_then_rename_the_person_and_survive_a_rebootstrap(db, library, cli):
    cluster = next(iter(library.clusters(db)))
    made = ok_json(cli("people", "name", "--cluster", cluster, "Grace Hopper", "--json"))
    assert made["created"] and made["name"] == "Grace Hopper"
    person = made["person_id"]
    renamed = ok_json(cli("people", "rename", person, "Grace Brewster Hopper", "--by", "ada", "--json"))
    assert renamed.pop("change_id") is not None
    assert renamed == {
        "person_id": person,
        "name": "Grace Brewster Hopper",
        "created": False,
        "linked": False,
        "clusters": 1,
    }
    again = ok_json(cli("people", "name", "--cluster", cluster, "Grace Hopper", "--json"))
    assert again["person_id"] == person and not again["created"]  # the cluster's person is renamed

    before = ok_json(cli("people", "show", person, "--json"))
    assert before["first_name"] == "Grace" and before["last_name"] == "Hopper" and before["named_by"] == "user"
    assert [c["id"] for c in before["clusters"]] == [cluster] and before["created_by"] == "user"
    bootstrap_and_weekly(db)
    after = ok_json(cli("people", "show", person, "--json"))
    assert after["name"] == "Grace Hopper" and [c["id"] for c in after["clusters"]] == [cluster]
    assert after["faces"] == before["faces"]


def test_link_unlink_and_verify_round_trip_and_survive_a_rebootstrap(db, library, cli):
    first, second, third = list(library.clusters(db))[:3]
    person = ok_json(cli("people", "name", "--cluster", first, "Ada Lovelace", "--json"))["person_id"]
    linked = ok_json(cli("people", "link", second, person, "--by", "bob", "--json"))
    assert linked["changed"] and linked["previous_person_id"] is None
    ok_json(cli("people", "link", third, person, "--json"))
    unlinked = ok_json(cli("people", "unlink", third, "--json"))
    assert unlinked["previous_person_id"] == person
    verified = ok_json(cli("people", "verify", first, "--by", "carol", "--json"))
    assert verified.pop("change_id") is not None
    assert verified == {"cluster_id": first, "verified": True, "verified_by": "carol"}

    shown = ok_json(cli("people", "show", person, "--json"))
    assert {c["id"] for c in shown["clusters"]} == {first, second}
    by_id = {c["id"]: c for c in shown["clusters"]}
    assert by_id[second]["person_linked_by"] == "bob" and by_id[first]["verified_by"] == "carol"
    with db.connection() as conn:  # the unlink is remembered for automatic association
        assert conn.execute("SELECT cluster_id, person_id, created_by FROM cluster_person_cannot_link").fetchall() == [
            (third, person, "user")
        ]
    members = library.clusters(db)
    bootstrap_and_weekly(db)
    after = library.clusters(db)
    shown = ok_json(cli("people", "show", person, "--json"))
    assert {c["id"] for c in shown["clusters"]} == {first, second}
    assert after[first] == members[first] and after[second] == members[second]
    cluster = ok_json(cli("people", "show", "--cluster", first, "--faces", 0, "--json"))
    assert cluster["verified"] and [f["id"] for f in cluster["face_list"]] == members[first]
    # a user's link overrides their earlier "not this person" for that cluster
    if third in after:
        relinked = ok_json(cli("people", "link", third, person, "--json"))
        assert relinked["rejection_overridden"]


def test_hidden_clusters_and_persons_leave_listings_and_survive_a_rebootstrap(db, library, cli):
    clusters = library.clusters(db)
    small = min(clusters, key=lambda c: (len(clusters[c]), c))
    person = ok_json(cli("people", "name", "--cluster", next(iter(clusters)), "Alan Turing", "--json"))["person_id"]
    hidden = ok_json(cli("people", "hide", "--cluster", small, "--json"))
    assert hidden.pop("change_id") is not None and hidden == {"cluster_id": small, "hidden": True}
    assert ok_json(cli("people", "hide", "--person", person, "--json"))["hidden"]
    listed = ok_json(cli("people", "list", "--clusters", "--json"))
    assert listed["persons"] == [] and small not in {c["id"] for c in listed["clusters"]}
    everything = ok_json(cli("people", "list", "--clusters", "--all", "--json"))
    assert [p["id"] for p in everything["persons"]] == [person]
    assert {c["id"] for c in everything["clusters"]} == set(clusters)

    # a re-clustering that would no longer form this small cluster keeps it: hiding is a decision
    bootstrap(db, min_cluster_size=len(clusters[small]) + 1)
    kept = ok_json(cli("people", "show", "--cluster", small, "--faces", 0, "--json"))
    assert kept["hidden"] and [f["id"] for f in kept["face_list"]] == clusters[small]
    shown = ok_json(cli("people", "list", "--clusters", "--json"))
    assert small not in {c["id"] for c in shown["clusters"]}
    assert ok_json(cli("people", "hide", "--cluster", small, "--unhide", "--json"))["hidden"] is False
    assert small in {c["id"] for c in ok_json(cli("people", "list", "--clusters", "--json"))["clusters"]}


def test_merge_two_persons(db, library, cli):
    first, second = list(library.clusters(db))[:2]
    keep = ok_json(cli("people", "name", "--cluster", first, "Grace Hopper", "--json"))["person_id"]
    other = ok_json(cli("people", "name", "--cluster", second, "G. Hopper", "--json"))["person_id"]
    merged = ok_json(cli("people", "merge", keep, other, "--json"))
    assert merged["person_id"] == keep and merged["merged_person_id"] == other
    assert merged["clusters_moved"] == [second] and merged["name"] == "Grace Hopper"
    shown = ok_json(cli("people", "show", keep, "--json"))
    assert {c["id"] for c in shown["clusters"]} == {first, second}
    gone = cli("people", "show", other)
    assert gone.exit_code == 2 and gone.stderr.strip() == f"error: no person {other}"
    bootstrap_and_weekly(db)
    shown = ok_json(cli("people", "show", keep, "--json"))
    assert {c["id"] for c in shown["clusters"]} == {first, second}


def test_move_a_face_into_a_cluster_to_a_person_and_out(db, library, cli):
    clusters = library.clusters(db)
    first, second, third = list(clusters)[:3]
    face, loner, lost = clusters[first][0], clusters[first][1], clusters[third][0]
    moved = ok_json(cli("people", "move", face, "--cluster", second, "--by", "dan", "--json"))
    assert moved.pop("change_id") is not None
    assert moved == {"face_id": face, "from_cluster_id": first, "cluster_id": second, "person_id": None}
    person = ok_json(cli("people", "name", "--cluster", third, "Alan Turing", "--json"))["person_id"]
    to_person = ok_json(cli("people", "move", loner, "--person", person, "--json"))
    assert to_person["cluster_id"] == third
    ok_json(cli("people", "move", lost, "--unassign", "--json"))

    def placed(face_id: int) -> tuple:
        f = ok_json(cli("people", "show", "--face", face_id, "--json"))
        return f["cluster_id"], f["status"], f["person_id"]

    assert placed(face) == (second, "manual", None)
    assert placed(loner) == (third, "manual", person)
    assert placed(lost) == (None, "manual", None)
    assert ok_json(cli("people", "show", "--face", face, "--json"))["assigned_by"] == "dan"
    bootstrap_and_weekly(db)
    with db.connection() as conn:  # weekly gave the cluster the face was moved into a person of its own
        (lone, created_by), *_ = conn.execute(
            "SELECT p.id, p.created_by FROM cluster c JOIN person p ON p.id = c.person_id WHERE c.id = %s", (second,)
        ).fetchall()
    assert created_by == "auto:associate" and lone != person
    assert placed(face) == (second, "manual", lone)
    assert placed(loner) == (third, "manual", person)
    assert placed(lost) == (None, "manual", None)


def test_move_to_a_person_without_a_cluster_of_that_model_keeps_the_face_on_the_person(db, library, cli):
    with db.connection() as conn:
        person = conn.execute(
            "INSERT INTO person (collection_id, first_name) VALUES (1, 'Ada') RETURNING id"
        ).fetchone()
    face = next(iter(library.clusters(db).values()))[0]
    ok_json(cli("people", "move", face, "--person", person[0], "--json"))
    shown = ok_json(cli("people", "show", person[0], "--json"))
    assert shown["faces"] == 1 and shown["faces_without_cluster"] == [face]
    bootstrap_and_weekly(db)
    assert ok_json(cli("people", "show", person[0], "--json"))["faces_without_cluster"] == [face]


def test_not_this_person_cannot_links_the_face_and_places_it_elsewhere(db, library, cli):
    clusters = library.clusters(db)
    home = next(iter(clusters))
    person = ok_json(cli("people", "name", "--cluster", home, "Grace Hopper", "--json"))["person_id"]
    face = clusters[home][0]
    rejected = ok_json(cli("people", "not", face, "--json"))
    assert rejected["rejected_cluster_id"] == home and rejected["rejected_person_id"] == person
    assert rejected["cannot_links_added"] == len(clusters[home]) - 1
    assert rejected["cluster_id"] != home
    shown = ok_json(cli("people", "show", "--face", face, "--json"))
    assert shown["cannot_link"] == clusters[home][1:] and shown["cluster_id"] == rejected["cluster_id"]
    assert face not in [f["id"] for f in ok_json(cli("people", "show", "--cluster", home, "--json"))["face_list"]]
    with db.connection() as conn:
        assert {r[0] for r in conn.execute("SELECT created_by FROM cannot_link").fetchall()} == {"user"}
    bootstrap_and_weekly(db)
    after = ok_json(cli("people", "show", "--face", face, "--json"))
    assert after["cluster_id"] != home and after["person_id"] != person


def test_not_this_person_on_a_face_alone_in_a_persons_cluster_unlinks_the_cluster(db, library, cli):
    clusters = library.clusters(db)
    home, other = list(clusters)[:2]
    person = ok_json(cli("people", "name", "--cluster", home, "Grace Hopper", "--json"))["person_id"]
    loner = clusters[other][0]
    ok_json(cli("people", "move", loner, "--unassign", "--json"))
    with db.connection() as conn:  # a one-face cluster of that person
        single = conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model, person_id) VALUES (1, 'arcface', %s) RETURNING id",
            (person,),
        ).fetchone()[0]
    ok_json(cli("people", "move", loner, "--cluster", single, "--json"))
    result = ok_json(cli("people", "not", loner, "--json"))
    assert result["cluster_id"] == single and result["cannot_links_added"] == len(clusters[home])
    assert ok_json(cli("people", "show", "--cluster", single, "--json"))["person_id"] is None
    with db.connection() as conn:
        assert conn.execute("SELECT cluster_id, person_id FROM cluster_person_cannot_link").fetchall() == [
            (single, person)
        ]


def test_must_link_and_cannot_link_round_trip_and_survive_a_rebootstrap(db, library, cli):
    clusters = library.clusters(db)
    first, second = list(clusters)[:2]
    a, b = clusters[first][:2]
    c, d = clusters[first][2], clusters[second][0]
    cannot = ok_json(cli("people", "cannot-link", b, a, "--json"))
    assert cannot.pop("change_id") is not None
    assert cannot == {"kind": "cannot-link", "face_ids": [a, b], "created": True, "clusters": [first, first]}
    assert ok_json(cli("people", "cannot-link", a, b, "--json"))["created"] is False
    must = ok_json(cli("people", "must-link", c, d, "--by", "eve", "--json"))
    assert must["face_ids"] == sorted((c, d)) and must["clusters"] == [first, second]
    assert ok_json(cli("people", "show", "--face", a, "--json"))["cannot_link"] == [b]
    assert ok_json(cli("people", "show", "--face", d, "--json"))["must_link"] == [c]
    with db.connection() as conn:
        assert conn.execute("SELECT detection_id_1, detection_id_2, created_by FROM must_link").fetchall() == [
            (min(c, d), max(c, d), "eve")
        ]
    bootstrap_and_weekly(db)
    faces = {f: ok_json(cli("people", "show", "--face", f, "--json")) for f in (a, b, c, d)}
    assert faces[a]["cluster_id"] is None or faces[a]["cluster_id"] != faces[b]["cluster_id"]
    assert faces[c]["cluster_id"] is not None and faces[c]["cluster_id"] == faces[d]["cluster_id"]
    assert faces[a]["cannot_link"] == [b] and faces[c]["must_link"] == [d]
