"""`photodb people split`: two people merged in one cluster (or person) come apart into the right
halves, the chosen half keeps the id, and cannot-links keep them apart through a re-bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from photodb import maintenance
from photodb.cli_people_review import split_command
from photodb.clustering.bootstrap import bootstrap
from photodb.people.split import SplitError, plan_split, split
from tests.clustering.conftest import assert_clusters_exact
from tests.people.identities import identity, make_cluster, make_person, run, same_photo, snapshot, store


@pytest.fixture
def merged(db):
    """Cluster holding Ada (6 faces) and Bob (4 faces), two well-separated identities."""
    rng = np.random.default_rng(21)
    ada, bob = store(db, identity(rng, 6)), store(db, identity(rng, 4))
    return make_cluster(db, ada + bob), ada, bob


def cluster_of(db, ids):
    with db.connection() as conn:
        return dict(conn.execute("SELECT id, cluster_id FROM person_detection WHERE id = ANY(%s)", (ids,)).fetchall())


def test_a_cluster_of_two_people_splits_into_the_right_halves(db, merged, tmp_path, database_url):
    cluster, ada, bob = merged
    shown = run(split_command, tmp_path, database_url, "--cluster", str(cluster), "--dry-run", "--json")
    assert shown.exit_code == 0, shown.stderr
    halves = json.loads(shown.stdout)["halves"]
    assert [h["detection_ids"] for h in halves] == [ada, bob]
    assert [h["face_count"] for h in halves] == [6, 4]
    assert halves[1]["samples"][0]["detection_id"] in bob and halves[1]["samples"][0]["path"].endswith(".jpg")
    assert cluster_of(db, ada + bob) == dict.fromkeys(ada + bob, cluster)  # dry run: nothing moved

    done = run(split_command, tmp_path, database_url, "--cluster", str(cluster), "--keep", "2", "--json")
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    new = result["new_cluster_id"]
    assert result["kept_half"] == 2 and new not in (None, cluster)
    assert cluster_of(db, ada + bob) == dict.fromkeys(bob, cluster) | dict.fromkeys(ada, new)
    assert_clusters_exact(db)
    with db.connection() as conn:
        assert conn.execute("SELECT cluster_id_1, cluster_id_2, created_by FROM cluster_cannot_link").fetchall() == [
            (cluster, new, "user")
        ]
        statuses = {r[0] for r in conn.execute("SELECT cluster_status FROM person_detection").fetchall()}
        medoids = conn.execute("SELECT id, medoid_detection_id FROM cluster ORDER BY id").fetchall()
    assert statuses == {"manual"}
    assert medoids[0][1] in bob and medoids[1][1] in ada

    # a re-bootstrap keeps both halves where the user put them
    bootstrap(db, min_cluster_size=2, min_samples=1)
    assert cluster_of(db, ada + bob) == dict.fromkeys(bob, cluster) | dict.fromkeys(ada, new)
    assert_clusters_exact(db)


def test_must_links_hold_and_faces_of_one_photo_go_apart(db, merged):
    cluster, ada, bob = merged
    with db.connection() as conn:
        conn.execute("INSERT INTO must_link (detection_id_1, detection_id_2) VALUES (%s, %s)", (ada[0], bob[0]))
    plan = plan_split(db, cluster_id=cluster)
    together = [h for h in plan.halves if ada[0] in h.detection_ids]
    assert bob[0] in together[0].detection_ids
    with db.connection() as conn:
        conn.execute("DELETE FROM must_link")
    same_photo(db, [ada[1], ada[2]])  # two faces of one photo are two people, whatever they look like
    plan = plan_split(db, cluster_id=cluster)
    assert [ada[1] in h.detection_ids for h in plan.halves] != [ada[2] in h.detection_ids for h in plan.halves]


def test_a_named_persons_cluster_split_keeps_the_other_half_away_from_the_person(db, merged):
    cluster, ada, bob = merged
    person = make_person(db, "Ada")
    with db.connection() as conn:
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (person, cluster))
    result = split(db, cluster_id=cluster, keep=1)
    with db.connection() as conn:
        assert conn.execute("SELECT person_id FROM cluster WHERE id = %s", (result.new_cluster_id,)).fetchone() == (
            None,
        )
        assert conn.execute("SELECT cluster_id, person_id FROM cluster_person_cannot_link").fetchall() == [
            (result.new_cluster_id, person)
        ]
    assert cluster_of(db, ada + bob) == dict.fromkeys(ada, cluster) | dict.fromkeys(bob, result.new_cluster_id)


def test_a_person_splits_into_a_new_unknown_person(db, tmp_path, database_url):
    rng = np.random.default_rng(5)
    ada, bob = store(db, identity(rng, 7)), store(db, identity(rng, 6))
    person = make_person(db, "Ada")
    only_ada = make_cluster(db, ada[:5], person_id=person)
    mixed = make_cluster(db, ada[5:] + bob[:3], person_id=person)
    only_bob = make_cluster(db, bob[3:], person_id=person)
    with db.connection() as conn:  # the age/gender stage's answers: the person's gender follows its faces
        for ids, gender in ((ada, "F"), (bob, "M")):
            conn.execute(
                "UPDATE person_detection SET gender = %s, gender_confidence = 0.9 WHERE id = ANY(%s)", (gender, ids)
            )
    done = run(split_command, tmp_path, database_url, "--person", str(person), "--keep", "1", "--json")
    assert done.exit_code == 0, done.stderr
    result = json.loads(done.stdout)
    new_person, new_cluster = result["new_person_id"], result["new_cluster_id"]
    assert result["relinked_clusters"] == [only_bob] and result["moved_faces"] == 3
    assert cluster_of(db, ada + bob) == (
        dict.fromkeys(ada[:5], only_ada)
        | dict.fromkeys(ada[5:], mixed)
        | dict.fromkeys(bob[:3], new_cluster)
        | dict.fromkeys(bob[3:], only_bob)
    )
    assert_clusters_exact(db)
    with db.connection() as conn:
        persons = conn.execute(
            "SELECT id, first_name, auto_created, created_by, gender FROM person ORDER BY id"
        ).fetchall()
        links = dict(conn.execute("SELECT id, person_id FROM cluster").fetchall())
        apart = set(conn.execute("SELECT cluster_id_1, cluster_id_2 FROM cluster_cannot_link").fetchall())
        blocked = set(conn.execute("SELECT cluster_id, person_id FROM cluster_person_cannot_link").fetchall())
    assert persons == [(person, "Ada", False, "user", "F"), (new_person, "Unknown", True, "user", "M")]
    assert links == {only_ada: person, mixed: person, only_bob: new_person, new_cluster: new_person}
    assert apart == {(min(a, b), max(a, b)) for a in (only_ada, mixed) for b in (only_bob, new_cluster)}
    assert blocked == {(only_bob, person), (new_cluster, person), (only_ada, new_person), (mixed, new_person)}

    bootstrap(db, min_cluster_size=2, min_samples=1)  # named clusters are pinned: nothing moves back
    assert cluster_of(db, bob[:3]) == dict.fromkeys(bob[:3], new_cluster)
    assert cluster_of(db, ada[5:]) == dict.fromkeys(ada[5:], mixed)


def test_bad_input_is_one_line_exit_2_and_writes_nothing(db, merged, tmp_path, database_url):
    cluster, _ada, _bob = merged
    rng = np.random.default_rng(1)
    single = make_cluster(db, store(db, identity(rng, 1)))
    pair = store(db, identity(rng, 2))
    bound = make_cluster(db, pair)
    with db.connection() as conn:
        conn.execute("INSERT INTO must_link (detection_id_1, detection_id_2) VALUES (%s, %s)", (pair[0], pair[1]))
    before = snapshot(db)
    cases = [
        (["--cluster", "999999", "--keep", "1"], "no cluster 999999"),
        (["--person", "999999", "--keep", "1"], "no person 999999"),
        (["--cluster", str(single), "--keep", "1"], "fewer than two faces"),
        (["--cluster", str(bound), "--keep", "1"], "must-linked together"),
        (["--cluster", str(cluster), "--keep", "3"], "--keep must be 1 or 2"),
        (["--cluster", str(cluster)], "--keep 1|2 is needed"),  # stdin is not a terminal here
        (["--cluster", str(cluster), "--person", "1", "--keep", "1"], "one of --cluster"),
        ([], "one of --cluster"),
    ]
    for args, message in cases:
        result = run(split_command, tmp_path, database_url, *args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (args, result.stderr)
    with pytest.raises(SplitError, match="changed since"):
        shown = plan_split(db, cluster_id=cluster)
        store_and_join = store(db, identity(rng, 1))
        with db.connection() as conn:
            conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = %s", (cluster, store_and_join[0]))
        before = snapshot(db)
        split(db, cluster_id=cluster, keep=1, shown=shown)
    assert snapshot(db) == before


def test_at_a_terminal_the_user_picks_the_half_after_seeing_them(db, merged, tmp_path, database_url, monkeypatch):
    import photodb.cli_people_review as cli

    cluster, ada, bob = merged
    monkeypatch.setattr(cli, "_interactive", lambda: True)
    done = run(split_command, tmp_path, database_url, "--cluster", str(cluster), stdin="2\n")
    assert done.exit_code == 0, done.output
    assert "half 1: 6 faces" in done.stdout and "half 2: 4 faces" in done.stdout and f"{bob[0]}" in done.stdout
    new = int(done.stdout.split("new cluster ")[1].split()[0])
    assert cluster_of(db, ada + bob) == dict.fromkeys(bob, cluster) | dict.fromkeys(ada, new)


def test_the_halves_stay_apart_through_weekly_maintenance(db, merged):
    """merge-similar and auto-association would join the halves at a threshold that reaches them
    (the control run proves it); the split's cannot-link keeps them apart."""
    cluster, ada, bob = merged
    everything = maintenance.Options(similarity_threshold=2.0)
    model = cluster_model(db, cluster)
    db.settings.person_association_thresholds = {model: 2.0}

    result = split(db, cluster_id=cluster, keep=1)
    new = result.new_cluster_id
    with db.connection() as conn:
        link = conn.execute("SELECT id FROM cluster_cannot_link").fetchall()
    results = maintenance.run_tasks(db, maintenance.WEEKLY, None, everything)
    assert all(r.error is None for r in results), [r.as_dict() for r in results]
    assert cluster_of(db, ada + bob) == dict.fromkeys(ada, cluster) | dict.fromkeys(bob, new)
    with db.connection() as conn:
        persons = conn.execute("SELECT person_id FROM cluster WHERE id = ANY(%s)", ([cluster, new],)).fetchall()
    # two people, as the user said: each half a person of its own (lone clusters of >= 2 faces)
    assert None not in (persons[0][0], persons[1][0]) and persons[0][0] != persons[1][0]

    # the control: without the cannot-link (and the persons the first run gave each half, as
    # merge-similar never joins clusters of two persons), the same weekly run merges the halves
    with db.connection() as conn:
        conn.execute("DELETE FROM cluster_cannot_link WHERE id = %s", (link[0][0],))
        conn.execute("DELETE FROM cluster_person_cannot_link")
        conn.execute("DELETE FROM cannot_link")
        conn.execute("DELETE FROM person WHERE created_by = 'auto:associate'")
    maintenance.run_tasks(db, maintenance.WEEKLY, None, everything)
    after = cluster_of(db, ada + bob)
    assert len(set(after.values())) == 1


def cluster_model(db, cluster_id):
    with db.connection() as conn:
        return conn.execute("SELECT embedding_model FROM cluster WHERE id = %s", (cluster_id,)).fetchone()[0]
