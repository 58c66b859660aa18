"""Every command through a real PgBouncer in transaction pooling mode, as a 500-worker setup runs.

In transaction mode each transaction may run on a different server connection: nothing may
outlive a transaction (server-side prepared statements, session settings and locks, temp tables).
Without pgbouncer installed these tests skip, unless PHOTODB_REQUIRE_PGBOUNCER is set (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from pgvector.psycopg import register_vector
from PIL import Image, ImageOps

from photodb.clustering.synthetic import make_faces
from photodb.config import Settings
from photodb.database import people_refresh as refresh_db
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database
from photodb.database.embedded import EmbeddedPostgres
from photodb.people.refresh import needs_refresh, refresh_people
from tests.cli import bootstrap_clusters, cli_env, process_local, process_local_at_once
from tests.imaging import make_library
from tests.pgbouncer import MISSING, PgBouncer, pgbouncer_binary, start_pgbouncer
from tests.processors.tiny_cli import tiny_process_local
from tests.processors.tiny_stages import SKIP_MESSAGE, install_model
from tests.samples import SAMPLES

STAGES = ("--stage", "normalize", "--stage", "metadata")
STAGE_NAMES = ["normalize", "metadata"]


@pytest.fixture(scope="session")
def pgbouncer(pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        if os.environ.get("PHOTODB_REQUIRE_PGBOUNCER"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    bouncer = start_pgbouncer(binary, pg_server.acquire(), tmp_path_factory.mktemp("pgbouncer"))
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pooled_url(pgbouncer: PgBouncer, database_url: str) -> str:
    """The test's database, reached through PgBouncer."""
    pgbouncer.warm(database_url)
    return pgbouncer.url_for(database_url)


def stage_rows(database_url: str) -> list[tuple[str, int, int]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT status, attempts, count(*) FROM processing_status WHERE stage = ANY(%s) GROUP BY 1, 2",
            (STAGE_NAMES,),
        ).fetchall()


def test_the_pool_detects_pgbouncer_and_prepares_nothing_on_the_server(tmp_path, pooled_url, database_url):
    def settings(url: str, pooler: str = "auto") -> Settings:
        return Settings(_env_file=None, database_url=url, photodb_home=tmp_path, database_pooler=pooler)  # type: ignore[call-arg]

    with Database(settings(pooled_url)) as db:
        assert db.pooled
        with db.connection() as conn:
            assert conn.prepare_threshold is None
        with db.connect() as conn:
            assert conn.prepare_threshold is None
        # PgBouncer's clients are not server connections: no warning about the server's slots
        assert db.connection_shortage(100_000) is None
    with Database(settings(database_url)) as db:
        assert not db.pooled
        with db.connection() as conn:
            assert conn.prepare_threshold is not None
    with Database(settings(database_url, "transaction")) as db:
        assert db.pooled
    with Database(settings(pooled_url, "none")) as db:
        assert not db.pooled


def test_parallel_run_through_pgbouncer_completes_every_photo(tmp_path, pooled_url, database_url):
    make_library(tmp_path / "lib", 40, size=(200, 150))
    env = cli_env(tmp_path, pooled_url)
    result = process_local(str(tmp_path / "lib"), *STAGES, "--parallel", "4", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "prepared statement" not in result.stderr
    assert json.loads(result.stdout)["stages"]["metadata"]["completed"] == 40
    assert stage_rows(database_url) == [("completed", 1, 80)]


def test_two_processes_through_pgbouncer_do_every_pair_exactly_once(tmp_path, pooled_url, database_url):
    make_library(tmp_path / "lib", 40, size=(200, 150))
    env = cli_env(tmp_path, pooled_url)
    done = process_local_at_once(str(tmp_path / "lib"), *STAGES, "--parallel", "3", env=env)
    for stage in STAGE_NAMES:
        assert done[0][stage]["completed"] + done[1][stage]["completed"] == 40
    assert stage_rows(database_url) == [("completed", 1, 80)]


def test_skipped_stages_through_pgbouncer(tmp_path, pooled_url, database_url):
    """Bulk skip, re-queue, per-photo StageSkipped and dependents of skipped rows, all through the pooler."""
    make_library(tmp_path / "lib", 20, size=(120, 90))
    env = cli_env(tmp_path, pooled_url)
    stages = ("--stage", "normalize", "--stage", "scene_analysis", "--stage", "age_gender", "--parallel", "3")
    without_model = tiny_process_local(str(tmp_path / "lib"), *stages, "--json", env=env)
    assert without_model.returncode == 0, without_model.stderr
    assert json.loads(without_model.stdout)["stages"]["scene_analysis"]["skipped"] == 20
    install_model(tmp_path / "home" / "models")
    (tmp_path / "lib" / "album0" / "photo_0000.jpg").rename(tmp_path / "lib" / "album0" / "panorama.jpg")
    with_model = tiny_process_local(str(tmp_path / "lib"), *stages, "--json", env=env)
    assert with_model.returncode == 0, with_model.stderr
    assert "prepared statement" not in without_model.stderr + with_model.stderr
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT stage, status, attempts, error_message, count(*) FROM processing_status
               WHERE stage IN ('scene_analysis', 'age_gender') GROUP BY 1, 2, 3, 4 ORDER BY 1, 2"""
        ).fetchall()
    assert rows == [
        ("age_gender", "completed", 1, None, 21),
        ("scene_analysis", "completed", 1, None, 20),
        ("scene_analysis", "skipped", 0, SKIP_MESSAGE, 1),
    ]


def partition(database_url: str) -> set[frozenset[str]]:
    """Faces grouped by cluster, named by photo (ids of clusters differ between databases)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT d.cluster_id, p.filename FROM person_detection d JOIN photo p ON p.id = d.photo_id
               WHERE d.cluster_id IS NOT NULL"""
        ).fetchall()
    groups: dict[int, set[str]] = {}
    for cluster_id, filename in rows:
        groups.setdefault(cluster_id, set()).add(filename)
    return {frozenset(group) for group in groups.values()}


def insert_faces(database_url: str, embeddings, prefix: str) -> None:
    with psycopg.connect(database_url) as conn:
        register_vector(conn)
        face_db.insert_faces(conn, 1, embeddings, "arcface", photo_prefix=prefix)


def test_bootstrap_and_assign_new_through_pgbouncer_match_a_direct_run(
    tmp_path, pooled_url, database_url, other_database_url
):
    faces = make_faces(400, 25, lookalike_share=0.1, seed=5)
    first, later = faces.embeddings[:340], faces.embeddings[340:]
    results = []
    for url, check_url in ((pooled_url, database_url), (other_database_url, other_database_url)):
        insert_faces(check_url, first, "old")
        env = cli_env(tmp_path / uuid.uuid4().hex, url)
        boot = bootstrap_clusters("--json", env=env)
        assert boot.returncode == 0, boot.stderr
        after_bootstrap = partition(check_url)
        insert_faces(check_url, later, "new")
        assign = bootstrap_clusters("--assign-new", "--json", env=env)
        assert assign.returncode == 0, assign.stderr
        results.append((after_bootstrap, partition(check_url)))
    (pooled_boot, pooled_final), (direct_boot, direct_final) = results
    assert len(direct_boot) > 10 and direct_final != direct_boot
    assert pooled_boot == direct_boot
    assert pooled_final == direct_final


def test_detection_with_cluster_assignment_through_pgbouncer(tmp_path, pooled_url, database_url):
    """Detection stores faces and assigns them to a stored run as it goes; --force redoes it."""
    library = tmp_path / "lib"
    shutil.copytree(SAMPLES / "faces", library)
    env = cli_env(tmp_path, pooled_url, DETECTION_BACKEND="offline", DETECTION_FORCE_CPU="true")
    first = process_local(str(library), "--parallel", "2", "--json", env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    boot = bootstrap_clusters("--min-cluster-size", "2", "--min-samples", "1", env=env)
    assert boot.returncode == 0, boot.stderr
    obama = library / "face_recognition" / "obama2.jpg"
    with Image.open(obama) as image:  # another photo of him: the detection stage assigns it
        ImageOps.mirror(image.convert("RGB")).save(library / "obama_mirrored.jpg", quality=92)
    second = process_local(str(library), "--json", env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    assigned = obama_clusters(database_url)  # the new face joined the cluster of his other photos
    mirrored = assigned.pop("obama_mirrored.jpg")
    assert mirrored is not None and mirrored in assigned.values(), (assigned, mirrored, second.stderr)
    # A parallel --force rerun takes faces out of their clusters and assigns them again: which
    # cluster each rejoins depends on which of its cluster-mates are out at that moment, so only
    # consistency is asserted after it.
    rerun = process_local(str(library), "--stage", "detection", "--force", "--parallel", "2", env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute(  # later stages have no model file here: skipped, not this test's concern
            "SELECT DISTINCT status FROM processing_status WHERE stage IN ('normalize', 'metadata', 'detection')"
        ).fetchall()
        miscounted = conn.execute(
            """SELECT count(*) FROM cluster c
               WHERE face_count <> (SELECT count(*) FROM person_detection d WHERE d.cluster_id = c.id)"""
        ).fetchone()
    assert statuses == [("completed",)]
    assert len(obama_clusters(database_url)) == 3
    assert miscounted == (0,)


def obama_clusters(database_url: str) -> dict[str, int | None]:
    """The cluster of the face in each photo of Obama (his one face; body-only rows left out)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT p.filename, d.cluster_id FROM person_detection d JOIN photo p ON p.id = d.photo_id
               JOIN face_embedding fe ON fe.person_detection_id = d.id
               WHERE p.filename LIKE '%obama%'"""
        ).fetchall()
    return dict(rows)


def test_one_people_refresh_at_a_time_through_pgbouncer(tmp_path, pooled_url, database_url):
    insert_faces(database_url, make_faces(120, 8, seed=9).embeddings, "face")
    settings = Settings(_env_file=None, database_url=pooled_url, photodb_home=tmp_path)  # type: ignore[call-arg]
    with Database(settings) as holder_db, Database(settings) as db:
        with holder_db.connection() as holder, holder.transaction():
            assert refresh_db.try_lock(holder, 1)
            # every transaction of the other pool may land on another server connection: the lock still holds
            assert not refresh_people(db, 1, by="test").ran
            assert not refresh_people(db, 1, by="test").ran
        report = refresh_people(db, 1, by="test")
        assert report.ran and report.persons > 0
        assert not needs_refresh(db, 1)
