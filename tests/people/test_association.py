"""Cluster auto-association on clusters whose centroid distances are chosen: complete linkage,
merge priority, every block, user decisions kept, idempotent reruns, models kept apart, dry runs
and the command's input checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from photodb.clustering.distances import face_distance
from photodb.database import association_repository as repo
from photodb.database.connection import Database
from photodb.people.association import auto_associate
from photodb.people.association_plan import find_pairs
from tests.cli import MAINTENANCE, cli_env, run_command
from tests.clustering.test_lock_order import Worker, wait_for_lock_waiters
from tests.people.association_world import MBF, World, angle_for, at_angles


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield World(conn)


def close_pair(world: World, distance: float = 0.3, **second: object) -> tuple[int, int]:
    a, b = at_angles(0, angle_for(distance), axis=world._axis + 10)
    world._axis += 12
    return world.cluster(a), world.cluster(b, **second)  # type: ignore[arg-type]


def test_complete_linkage_keeps_a_chain_apart(world: World, db: Database):
    # A-B 0.25, B-C 0.32, C-D 0.28 on one arc: A-C and B-D are ~0.98 apart. Single linkage would
    # make one person of all four; complete linkage makes {A, B} and {C, D}.
    step = [angle_for(0.25), angle_for(0.32), angle_for(0.28)]
    vectors = at_angles(0, step[0], step[0] + step[1], sum(step))
    a, b, c, d = (world.cluster(v) for v in vectors)
    lone = world.cluster(world.far())
    report = auto_associate(db, None)
    assert report.persons_created == 2 and report.clusters_linked == 4 and report.persons_merged == 0
    assert world.person_of(a) == world.person_of(b) is not None
    assert world.person_of(c) == world.person_of(d) is not None
    assert world.person_of(a) != world.person_of(c) and world.person_of(lone) is None
    row = world.conn.execute(
        "SELECT first_name, auto_created, created_by FROM person WHERE id = %s", (world.person_of(a),)
    ).fetchone()
    assert row == ("Unknown", True, "auto:associate")
    linked_by = world.conn.execute("SELECT DISTINCT person_linked_by FROM cluster WHERE person_id IS NOT NULL")
    assert linked_by.fetchall() == [("auto:associate",)]


def test_pairs_are_exactly_those_of_pgvectors_cosine_distance(world: World, db: Database):
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((20, 512))
    for index in range(160):  # eight clusters around each of twenty centres: many pairs near 0.6
        v = centres[index % 20] + rng.standard_normal(512) * rng.uniform(0.3, 1.2)
        world.cluster((v / np.linalg.norm(v)).astype(np.float32))
    with db.connection() as conn:
        ids, vectors = repo.centroids(conn, world.collection, MBF)
        expected = conn.execute(
            """SELECT a.id, b.id, a.centroid <=> b.centroid FROM cluster a JOIN cluster b ON a.id < b.id
               WHERE a.centroid <=> b.centroid <= 0.6"""
        ).fetchall()
    found = find_pairs(ids, vectors, 0.6)
    assert 50 < len(expected) < 160 * 159 / 4
    assert {(p.a, p.b) for p in found} == {(a, b) for a, b, _ in expected}
    distances = {(a, b): d for a, b, d in expected}
    assert all(abs(p.distance - distances[(p.a, p.b)]) < 1e-6 for p in found)
    assert [p.distance for p in found] == sorted(p.distance for p in found)


def test_three_clusters_within_reach_of_each_other_are_one_person(world: World, db: Database):
    a, b, c = (world.cluster(v) for v in at_angles(0, 20, 40))  # pairwise 0.06, 0.06, 0.23
    auto_associate(db, None)
    assert world.person_of(a) == world.person_of(b) == world.person_of(c) is not None


@pytest.mark.parametrize("case", ["verified", "count", "id"])
def test_merge_priority_verified_then_cluster_count_then_id(world: World, db: Database, case: str):
    first, second = world.person(), world.person()
    a, b = at_angles(0, 30)
    world.cluster(a, person=first, verified=case == "verified")
    world.cluster(b, person=second)
    if case == "verified":  # more clusters do not outweigh a verified one
        world.cluster(world.far(), person=second)
        world.cluster(world.far(), person=second)
    if case == "count":  # more clusters outweigh a higher id
        world.cluster(world.far(), person=first)
    report = auto_associate(db, None)
    winner = {"verified": first, "count": first, "id": second}[case]
    loser = first if winner == second else second
    assert report.persons_merged == 1 and report.models[0].groups[0].merge == [loser]
    assert world.conn.execute("SELECT id FROM person ORDER BY id").fetchall() == [(winner,)]
    assert world.conn.execute("SELECT DISTINCT person_id FROM cluster").fetchall() == [(winner,)]


def test_a_group_with_a_person_links_its_other_clusters_to_it(world: World, db: Database):
    person = world.person()
    a, b = at_angles(0, 30)
    first = world.cluster(a, person=person)
    second = world.cluster(b)
    report = auto_associate(db, None)
    assert report.persons_created == 0 and report.clusters_linked == 1
    assert world.person_of(first) == world.person_of(second) == person


def test_cluster_cannot_link_blocks_the_pair(world: World, db: Database):
    a, b = close_pair(world)
    world.conn.execute("INSERT INTO cluster_cannot_link (cluster_id_1, cluster_id_2) VALUES (%s, %s)", (a, b))
    report = auto_associate(db, None)
    assert report.models[0].pairs == 1 and report.persons_created == 0
    assert world.person_of(a) is None and world.person_of(b) is None


def test_a_cannot_link_between_their_faces_blocks_the_pair(world: World, db: Database):
    a, b = close_pair(world)
    (fa,), (fb,) = world.faces_of(a), world.faces_of(b)
    pair = tuple(sorted((fa, fb)))
    world.conn.execute("INSERT INTO cannot_link (detection_id_1, detection_id_2) VALUES (%s, %s)", pair)
    assert auto_associate(db, None).persons_created == 0
    assert world.person_of(a) is None and world.person_of(b) is None


def test_clusters_with_faces_of_one_photo_are_never_one_person(world: World, db: Database):
    photo = world.photo()
    a, b = close_pair(world, 0.1, photo=photo)
    world.face(world.far(), MBF, photo=photo, cluster=a)  # a second face of cluster a in the same photo
    world.conn.execute("UPDATE cluster SET face_count = 2 WHERE id = %s", (a,))
    report = auto_associate(db, None)
    assert report.persons_created == 0 and report.models[0].lone_clusters == [a]  # a alone: two faces
    assert world.person_of(b) is None and world.person_of(a) is not None


def test_a_cluster_sharing_a_photo_with_another_cluster_of_the_person_stays_out(world: World, db: Database):
    person = world.person()
    photo = world.photo()
    a, b = at_angles(0, 30)
    world.cluster(a, person=person)
    world.cluster(world.far(), person=person, photo=photo)  # the person's face in that photo
    newcomer = world.cluster(b, photo=photo)  # close to the person's first cluster, but in that photo
    report = auto_associate(db, None)
    assert world.person_of(newcomer) is None and report.clusters_linked == 0
    assert "shares a photo" in report.models[0].groups[0].left_out[newcomer]


def test_cluster_person_cannot_link_keeps_the_cluster_out(world: World, db: Database):
    person = world.person()
    a, b = at_angles(0, 30)
    mine = world.cluster(a, person=person)
    rejected = world.cluster(b)
    world.conn.execute(
        "INSERT INTO cluster_person_cannot_link (cluster_id, person_id, created_by) VALUES (%s, %s, 'user')",
        (rejected, person),
    )
    report = auto_associate(db, None)
    assert report.clusters_linked == 0 and report.persons_created == 0
    assert world.person_of(mine) == person and world.person_of(rejected) is None


def test_hidden_clusters_are_left_out(world: World, db: Database):
    a, b = close_pair(world, hidden=True)
    report = auto_associate(db, None)
    assert report.models[0].clusters == 1 and report.models[0].pairs == 0
    assert world.person_of(a) is None and world.person_of(b) is None


def test_verified_clusters_are_never_merged_away(world: World, db: Database):
    mine, theirs = world.person(), world.person()
    a, b = at_angles(0, 30)
    first = world.cluster(a, person=mine, verified=True)
    second = world.cluster(b, person=theirs, verified=True)
    world.cluster(world.far(), person=theirs)  # more clusters do not outweigh a verified one
    report = auto_associate(db, None)
    assert report.persons_merged == 0 and world.person_of(first) == mine and world.person_of(second) == theirs
    assert any("holds a user's decision" in c for c in report.models[0].conflicts)


def test_a_user_named_person_keeps_its_name_when_an_auto_person_wins(world: World, db: Database):
    grace, unknown = world.person(name="Grace"), world.person()
    a, b = at_angles(0, 30)
    named = world.cluster(a, person=grace)  # linked automatically, named later by the user
    other = world.cluster(b, person=unknown)
    world.cluster(world.far(), person=unknown)  # the unnamed person has more clusters: it wins
    assert auto_associate(db, None).persons_merged == 1
    winner = world.person_of(named)
    assert winner == world.person_of(other) == unknown
    assert world.conn.execute("SELECT first_name, auto_created FROM person WHERE id = %s", (winner,)).fetchone() == (
        "Grace",
        False,
    )


def test_two_named_persons_are_never_merged(world: World, db: Database):
    grace, ada = world.person(name="Grace"), world.person(name="Ada")
    a, b = at_angles(0, 30)
    first, second = world.cluster(a, person=grace), world.cluster(b, person=ada)
    report = auto_associate(db, None)
    assert report.persons_merged == 0 and world.person_of(first) == grace and world.person_of(second) == ada
    assert any("both have a name" in c for c in report.models[0].conflicts)


def test_a_cluster_a_user_linked_is_never_moved(world: World, db: Database):
    chosen, bigger = world.person(), world.person()
    a, b = at_angles(0, 30)
    kept = world.cluster(a, person=chosen, linked_by="user")
    world.cluster(b, person=bigger)
    world.cluster(world.far(), person=bigger)
    auto_associate(db, None)
    row = world.conn.execute("SELECT person_id, person_linked_by FROM cluster WHERE id = %s", (kept,)).fetchone()
    assert row == (chosen, "user")


def test_a_cluster_a_user_unlinked_joins_no_person(world: World, db: Database):
    a, b = close_pair(world, linked_by="user")  # person_id NULL, unlinked by a user
    assert auto_associate(db, None).persons_created == 0
    assert world.person_of(a) is None and world.person_of(b) is None


def test_a_second_run_changes_nothing(world: World, db: Database):
    close_pair(world)
    person = world.person()
    a, b = at_angles(0, 30, axis=300)
    world.cluster(a, person=person)
    world.cluster(b)
    first = auto_associate(db, None)
    assert first.persons_created == 1 and first.clusters_linked == 3
    before = world.snapshot()
    again = auto_associate(db, None)
    assert (again.persons_created, again.clusters_linked, again.persons_merged) == (0, 0, 0)
    assert world.snapshot() == before


def test_models_are_never_compared_and_each_has_its_own_threshold(world: World, db: Database):
    (a,) = at_angles(0)
    mbf, dlib = world.cluster(a, model=MBF), world.cluster(a, model="dlib:resnet_v1")  # identical centroids
    assert auto_associate(db, None).persons_created == 0  # one cluster per model: nothing to pair
    assert world.person_of(mbf) is None and world.person_of(dlib) is None
    limits = {m: face_distance(db.settings, m, "associate") for m in (MBF, "dlib:resnet_v1")}
    assert limits[MBF] > 0.08 > limits["dlib:resnet_v1"]
    c, d = at_angles(0, angle_for(0.08), axis=200)  # within w600k_mbf's distance, beyond dlib's
    in_mbf, in_mbf_too = world.cluster(c, model=MBF), world.cluster(d, model=MBF)
    in_dlib, in_dlib_too = world.cluster(c, model="dlib:resnet_v1"), world.cluster(d, model="dlib:resnet_v1")
    report = auto_associate(db, None)
    assert {m.embedding_model: m.threshold for m in report.models} == limits
    assert world.person_of(in_mbf) == world.person_of(in_mbf_too) is not None
    assert world.person_of(in_dlib) is None and world.person_of(in_dlib_too) is None
    assert world.person_of(mbf) is None and world.person_of(dlib) is None


def test_dry_run_reports_the_groups_and_writes_nothing(world: World, db: Database):
    person = world.person()
    a, b = at_angles(0, 30, axis=50)
    first, second = world.cluster(a, person=person), world.cluster(b)
    x, y = close_pair(world)
    before = world.snapshot()
    report = auto_associate(db, None, dry_run=True)
    assert world.snapshot() == before
    assert report.dry_run and report.persons_created == 1 and report.clusters_linked == 3
    joins = {c: p for g in report.models[0].groups for c, p in g.joins.items()}
    assert joins[first] == joins[second] == person
    assert joins[x] == joins[y] and joins[x] is not None and joins[x] < 0  # the new person
    real = auto_associate(db, None)
    assert (real.persons_created, real.clusters_linked) == (1, 3)


def test_the_touched_persons_get_their_age_and_gender_aggregated(world: World, db: Database):
    a, _ = close_pair(world)
    untouched = world.person()
    world.conn.execute("UPDATE person SET gender = 'M' WHERE id = %s", (untouched,))
    auto_associate(db, None)
    gender, samples = world.conn.execute(
        "SELECT gender, age_gender_sample_count FROM person WHERE id = %s", (world.person_of(a),)
    ).fetchone()
    assert (gender, samples) == ("F", 2)
    assert world.conn.execute("SELECT gender FROM person WHERE id = %s", (untouched,)).fetchone() == ("M",)


def test_a_person_changed_meanwhile_is_read_again_under_the_locks(world: World, db: Database, database_url: str):
    # A people command holds cluster `first` and person `person` (lock order: clusters, persons)
    # while it links a far cluster to that person; auto-association waits for the cluster lock,
    # sees that the person gained a cluster it did not lock, and starts its transaction again: so
    # it knows that the newcomer shares a photo with the person's new cluster.
    person, photo = world.person(), world.photo()
    a, b = at_angles(0, 30)
    first, second = world.cluster(a, person=person), world.cluster(b, photo=photo)
    far = world.cluster(world.far(), photo=photo)  # a face of the same photo as `second`'s
    worker = Worker(lambda: auto_associate(db, None))
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT id FROM cluster WHERE id = ANY(%s) ORDER BY id FOR UPDATE", ([first, far],))
        holder.execute("SELECT id FROM person WHERE id = %s FOR UPDATE", (person,))
        worker.start()
        wait_for_lock_waiters(database_url, 1, worker.is_alive)
        holder.execute("UPDATE cluster SET person_id = %s, person_linked_by = 'user' WHERE id = %s", (person, far))
        holder.commit()
    report = worker.finish()
    assert report.clusters_linked == 0 and report.persons_created == 0  # it would join a person with that photo
    assert world.person_of(first) == world.person_of(far) == person and world.person_of(second) is None


def maintenance(tmp_path: Path, database_url: str, *args: str):
    return run_command([MAINTENANCE, "auto-associate", *args], env=cli_env(tmp_path, database_url), cwd=tmp_path)


def test_the_command_dry_run_threshold_and_json(world: World, tmp_path: Path, database_url: str):
    a, b = close_pair(world, 0.7)  # beyond w600k_mbf's 0.60
    default = maintenance(tmp_path, database_url, "--json")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["persons_created"] == 0
    dry = maintenance(tmp_path, database_url, "--threshold", "0.75", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"clusters {a}, {b} (max distance 0.700): {a} -> a new person, {b} -> a new person" in dry.stdout
    assert "dry run: nothing written" in dry.stdout and world.person_of(a) is None
    real = maintenance(tmp_path, database_url, "--threshold", "0.75", "--collection", "default", "--json")
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)["models"][0]["threshold"] == 0.75
    assert world.person_of(a) == world.person_of(b) is not None


@pytest.mark.parametrize("value", ["0", "-0.5", "nan", "2.5"])
def test_a_threshold_that_is_no_distance_is_one_line_and_exit_2(world: World, tmp_path: Path, database_url: str, value):
    a, b = close_pair(world)
    result = maintenance(tmp_path, database_url, "--threshold", value)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "--threshold must be a cosine distance above 0 and at most 2" in lines[0]
    assert world.person_of(a) is None and world.person_of(b) is None


def test_an_unknown_collection_is_one_line(tmp_path: Path, database_url: str):
    result = maintenance(tmp_path, database_url, "--collection", "nope")
    assert result.returncode == 2 and "no collection named 'nope'" in result.stderr
