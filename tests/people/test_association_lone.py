"""Lone clusters: a cluster no other cluster joins gets a person of its own when it holds at least
ASSOCIATION_LONE_CLUSTER_MIN_FACES faces, unless a user's decision says to leave it; reruns make
nothing more, and 0 restores the spec's rule (persons only for groups of two or more clusters)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import psycopg
import pytest

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.people.association import auto_associate
from photodb.people.identity import unlink_cluster
from photodb.people.split import split
from tests.cli import MAINTENANCE, cli_env, run_command
from tests.people.association_world import MBF, World, at_angles


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield World(conn)


@pytest.fixture
def db_with(settings: Settings) -> Iterator[Callable[[int], Database]]:
    """A Database whose ASSOCIATION_LONE_CLUSTER_MIN_FACES is the given value."""
    opened: list[Database] = []

    def make(min_faces: int) -> Database:
        opened.append(Database(settings.model_copy(update={"association_lone_cluster_min_faces": min_faces})))
        return opened[-1]

    yield make
    for database in opened:
        database.close()


def person_row(world: World, person: int | None) -> tuple:
    return world.conn.execute(
        "SELECT first_name, auto_created, created_by, named FROM person WHERE id = %s", (person,)
    ).fetchone()


def test_a_lone_cluster_with_enough_faces_gets_a_person_of_its_own(world: World, db: Database):
    lone = world.cluster(world.far(), faces=2)
    single = world.cluster(world.far())  # one face (weekly's singleton of a noise face): no person
    a, b = (world.cluster(v, faces=2) for v in at_angles(0, 30))  # a group: its person, not two lone ones
    report = auto_associate(db, None)
    assert (report.persons_created, report.clusters_linked, report.lone_persons_created) == (1, 2, 1)
    (model,) = report.models
    person = world.person_of(lone)
    assert model.lone_persons == {lone: person} and model.as_dict()["lone_persons"] == [
        {"cluster_id": lone, "person_id": person}
    ]
    assert person_row(world, person) == ("Unknown", True, "auto:associate", False)
    assert world.conn.execute("SELECT person_linked_by FROM cluster WHERE id = %s", (lone,)).fetchone() == (
        "auto:associate",
    )
    assert world.person_of(single) is None
    assert world.person_of(a) == world.person_of(b) not in (None, person)
    assert world.conn.execute("SELECT count(*) FROM person").fetchone() == (2,)


def test_user_decisions_keep_a_cluster_without_a_person(world: World, db: Database):
    control = world.cluster(world.far(), faces=2)  # nobody said anything about it: it gets a person
    hidden = world.cluster(world.far(), faces=3, hidden=True)
    grace = world.person(name="Grace")
    linked = world.cluster(world.far(), faces=2, person=grace, linked_by="user")
    unlinked = world.cluster(world.far(), faces=2, person=world.person())
    unlink_cluster(db, unlinked, by="user")  # person_linked_by 'user' and a cluster_person_cannot_link
    rejected = world.cluster(world.far(), faces=2)  # "not this person" of another person, never linked
    world.conn.execute(
        "INSERT INTO cluster_person_cannot_link (cluster_id, person_id, created_by) VALUES (%s, %s, 'user')",
        (rejected, grace),
    )
    # a split of a person's cluster: the new half is "not that person" (cluster_person_cannot_link)
    owner = world.person()
    mixed = world.cluster(world.far(), faces=2, person=owner)
    for _ in range(2):
        world.face(world.far(), MBF, cluster=mixed)
    world.conn.execute("UPDATE cluster SET face_count = 4 WHERE id = %s", (mixed,))
    new_half = split(db, cluster_id=mixed, keep=1).new_cluster_id
    photo = world.photo()  # a cluster holding two faces of one photo is two people
    two_in_one_photo = world.cluster(world.far(), photo=photo)
    world.face(world.far(), MBF, photo=photo, cluster=two_in_one_photo)
    world.conn.execute("UPDATE cluster SET face_count = 2 WHERE id = %s", (two_in_one_photo,))
    before = world.conn.execute("SELECT count(*) FROM person").fetchone()[0]

    report = auto_associate(db, None)
    assert report.models[0].lone_clusters == [control]
    assert report.persons_created == 0
    assert world.conn.execute("SELECT count(*) FROM person").fetchone()[0] == before + 1
    assert world.person_of(linked) == grace and world.person_of(mixed) == owner
    for cluster in (hidden, unlinked, rejected, new_half, two_in_one_photo):
        assert world.person_of(cluster) is None, cluster


def test_lone_persons_are_made_once(world: World, db: Database):
    lone = world.cluster(world.far(), faces=2)
    assert auto_associate(db, None).lone_persons_created == 1
    snapshot = world.snapshot()
    again = auto_associate(db, None)
    assert (again.lone_persons_created, again.persons_created, again.clusters_linked) == (0, 0, 0)
    assert world.snapshot() == snapshot and world.person_of(lone) is not None


def test_a_lone_person_takes_in_a_close_cluster_found_later(world: World, db: Database):
    a, b = at_angles(0, 30)
    first = world.cluster(a, faces=2)
    auto_associate(db, None)
    person = world.person_of(first)
    later = world.cluster(b)
    report = auto_associate(db, None)
    assert (report.persons_created, report.clusters_linked, report.lone_persons_created) == (0, 1, 0)
    assert world.person_of(later) == person


def test_the_minimum_number_of_faces_is_a_setting_and_0_turns_it_off(world: World, db_with: Callable[[int], Database]):
    two = world.cluster(world.far(), faces=2)
    three = world.cluster(world.far(), faces=3)
    a, b = (world.cluster(v) for v in at_angles(0, 30))
    off = auto_associate(db_with(0), None)  # the spec's rule: only the group gets a person
    assert (off.persons_created, off.lone_persons_created) == (1, 0)
    assert world.person_of(two) is None and world.person_of(three) is None and world.person_of(a) is not None
    at_three = auto_associate(db_with(3), None)
    assert at_three.lone_persons_created == 1 and at_three.models[0].lone_min_faces == 3
    assert world.person_of(two) is None and world.person_of(three) is not None
    assert world.person_of(a) == world.person_of(b)


def test_dry_run_lists_the_lone_clusters_and_writes_nothing(world: World, db: Database):
    lone = world.cluster(world.far(), faces=2)
    for vector in at_angles(0, 30):  # a group of two-face clusters: not lone
        world.cluster(vector, faces=2)
    snapshot = world.snapshot()
    report = auto_associate(db, None, dry_run=True)
    assert report.lone_persons_created == 1 and report.persons_created == 1
    assert report.models[0].lone_clusters == [lone] and report.models[0].lone_persons == {}
    assert world.snapshot() == snapshot


def test_each_embedding_model_has_its_own_lone_persons(world: World, db: Database):
    mbf = world.cluster(world.far(), faces=2)
    sface = world.cluster(world.far(), faces=2, model="sface")
    report = auto_associate(db, None)
    by_model = {m.embedding_model: m.lone_clusters for m in report.models}
    assert by_model == {MBF: [mbf], "sface": [sface]}
    assert world.person_of(mbf) != world.person_of(sface)


def test_the_command_reports_lone_persons_apart(world: World, tmp_path, database_url: str):
    lone = world.cluster(world.far(), faces=2)
    env = cli_env(tmp_path, database_url)
    dry = run_command([MAINTENANCE, "auto-associate", "--dry-run"], env=env)
    assert dry.returncode == 0, dry.stderr
    assert "1 lone clusters would get a person of their own (at least 2 faces)" in dry.stdout
    assert "0 persons created, 0 clusters linked, 0 persons merged, 1 persons for lone clusters" in dry.stdout
    done = run_command([MAINTENANCE, "auto-associate", "--json"], env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["persons_created"], report["lone_persons_created"]) == (0, 1)
    assert report["models"][0]["lone_persons"] == [{"cluster_id": lone, "person_id": world.person_of(lone)}]


def test_the_setting_is_read_from_the_environment_and_checked(monkeypatch: pytest.MonkeyPatch, settings: Settings):
    monkeypatch.setenv("ASSOCIATION_LONE_CLUSTER_MIN_FACES", "5")
    assert Settings(_env_file=None, database_url=settings.database_url).association_lone_cluster_min_faces == 5  # type: ignore[call-arg]
    assert settings.association_lone_cluster_min_faces == 2
    monkeypatch.setenv("ASSOCIATION_LONE_CLUSTER_MIN_FACES", "-1")
    with pytest.raises(ValueError, match="association_lone_cluster_min_faces"):
        Settings(_env_file=None, database_url=settings.database_url)  # type: ignore[call-arg]
