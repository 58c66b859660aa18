"""Incremental assignment through the database function assign_face_to_cluster (migration 0006):
the decisions the tiers' rules call for, one cluster row version per assignment, plans kept for
the session without prepared statements, and the same result through PgBouncer (issue 10, §4)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from photodb.clustering import incremental
from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.distances import face_distance
from photodb.clustering.incremental import EF_SEARCH, NEIGHBOURS, assign_new_faces
from photodb.config import Settings
from photodb.database.clustering import assignment
from photodb.database.connection import Database
from photodb.database.embedded import EmbeddedPostgres
from tests.clustering.conftest import assert_clusters_exact, clusters_of, insert
from tests.pgbouncer import MISSING, PgBouncer, pgbouncer_binary, start_pgbouncer


def options(db: Database) -> dict[str, float | int]:
    return {
        "threshold": face_distance(db.settings, "arcface", "assign"),
        "margin": db.settings.clustering_ambiguity_margin,
        "neighbours": NEIGHBOURS,
        "ef_search": EF_SEARCH,
    }


def tier2_only(db: Database) -> None:
    with db.connection() as conn:
        conn.execute("UPDATE hdbscan_run SET label_to_cluster_id = '{}'")
    incremental._models.clear()


def photo_of(db: Database, detection_id: int) -> int:
    with db.connection() as conn:
        return conn.execute("SELECT photo_id FROM person_detection WHERE id = %s", (detection_id,)).fetchone()[0]


def expected_tier2(db: Database, detection_id: int) -> tuple[str, int | None]:
    """Tier 2's decision for one face, worked out here from the rows: the five nearest visible
    centroids, kept when the face is inside the cluster's epsilon ball (measured against the exact
    sum) and the cluster holds no face of its photo or cannot-linked to it; two kept clusters
    within the margin send it to review, else the nearest takes it."""
    settings = db.settings
    with db.connection() as conn:
        embedding, photo = conn.execute(
            """SELECT fe.embedding, d.photo_id FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id WHERE d.id = %s""",
            (detection_id,),
        ).fetchone()
        rows = conn.execute(
            """SELECT id, centroid, centroid_sum, lambda_birth FROM cluster
               WHERE collection_id = 1 AND embedding_model = 'arcface' AND NOT hidden
                 AND centroid IS NOT NULL"""
        ).fetchall()
        blocked = {
            r[0]
            for r in conn.execute(
                """SELECT d.cluster_id FROM person_detection d WHERE d.photo_id = %s AND d.id <> %s
                   UNION SELECT d.cluster_id FROM cannot_link l JOIN person_detection d
                     ON d.id IN (l.detection_id_1, l.detection_id_2) AND d.id <> %s
                   WHERE %s IN (l.detection_id_1, l.detection_id_2)""",
                (photo, detection_id, detection_id, detection_id),
            ).fetchall()
        }
    face = np.asarray(embedding.to_numpy(), np.float64)

    def cosine(a: np.ndarray) -> float:
        a = np.asarray(a, np.float64)
        return float(1 - a @ face / np.linalg.norm(a) / np.linalg.norm(face))

    nearest = sorted(rows, key=lambda r: (cosine(r[1].to_numpy()), r[0]))[:NEIGHBOURS]
    threshold = face_distance(settings, "arcface", "assign")
    kept = []
    for cluster_id, _centroid, total, lambda_birth in nearest:
        epsilon = min(threshold, (1 / lambda_birth) ** 2 / 2) if lambda_birth else threshold
        distance = cosine(total.to_numpy())
        if distance < epsilon and cluster_id not in blocked:
            kept.append((distance, cluster_id))
    kept.sort()
    if len(kept) >= 2 and kept[1][0] - kept[0][0] < settings.clustering_ambiguity_margin:
        return "pending", None
    return ("tier2", kept[0][1]) if kept else ("unassigned", None)


def test_tier2_decides_every_face_as_its_rules_say(db, faces):
    """Face by face, with the sums each earlier face changed, and with the cluster each of nine
    faces would have joined blocked: by a face of its photo, a cannot-link, or hidden."""
    base = insert(db, faces.embeddings[:500])
    bootstrap(db)
    got = clusters_of(db, base)
    tier2_only(db)
    new = insert(db, faces.embeddings[500:580])
    would_join = [(det, cluster) for det in new for outcome, cluster in [expected_tier2(db, det)] if outcome == "tier2"]
    assert len(would_join) >= 9
    member_of = {cluster: next(d for d in base if got[d] == cluster) for _det, cluster in would_join}
    with db.connection() as conn:
        for det, cluster in would_join[0:3]:  # photographed with a member of that cluster
            conn.execute(
                "UPDATE person_detection SET photo_id = %s WHERE id = %s", (photo_of(db, member_of[cluster]), det)
            )
        for det, cluster in would_join[3:6]:
            conn.execute(
                "INSERT INTO cannot_link (detection_id_1, detection_id_2) VALUES (%s, %s)",
                (min(det, member_of[cluster]), max(det, member_of[cluster])),
            )
        for _det, cluster in would_join[6:9]:
            conn.execute("UPDATE cluster SET hidden = true WHERE id = %s", (cluster,))
    outcomes = {}
    for det in new:
        expected = expected_tier2(db, det)
        report = assign_new_faces(db, [det], force=True)
        (outcome,) = report.outcomes
        assert (outcome, report.cluster_of[det]) == expected, det
        outcomes[det] = expected
    assert {"tier2", "unassigned"} <= {outcome for outcome, _cluster in outcomes.values()}
    assert all(outcomes[det] != ("tier2", cluster) for det, cluster in would_join[:9])
    assert_clusters_exact(db)


def test_a_blocked_or_hidden_tier1_cluster_hands_the_face_to_tier2_in_the_same_call(db, faces):
    base = insert(db, faces.embeddings[:500])
    bootstrap(db)
    got = clusters_of(db, base)
    member = next(d for d in base if got[d] is not None)
    home = got[member]
    first, second, third = insert(db, faces.embeddings[500:503])  # tier 1 joins whatever it is given
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET photo_id = %s WHERE id = %s", (photo_of(db, member), second))
        new = assignment.faces_to_assign(conn, [first, second, third])
    with db.autocommit() as conn:
        joined = assignment.assign_face(
            conn, new[first], run_id=new[first].run_id, cluster_id=home, confidence=0.8, **options(db)
        )
        blocked = assignment.assign_face(
            conn, new[second], run_id=new[second].run_id, cluster_id=home, confidence=0.8, **options(db)
        )
        with db.connection() as other:
            other.execute("UPDATE cluster SET hidden = true WHERE id = %s", (home,))
        hidden = assignment.assign_face(
            conn, new[third], run_id=new[third].run_id, cluster_id=home, confidence=0.8, **options(db)
        )
        with conn.transaction():  # the commit does not wait for the WAL flush (derived data)
            again = assignment.assign_face(
                conn, new[first], run_id=new[first].run_id, cluster_id=home, confidence=0.8, **options(db)
            )
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    assert (joined.found, joined.status, joined.cluster_id, joined.tier) == (True, "auto", home, 1)
    assert blocked.found and blocked.tier == 2 and blocked.cluster_id != home
    assert hidden.found and hidden.tier == 2 and hidden.cluster_id != home
    assert not again.found and again.status is None  # already clustered: left alone
    with db.connection() as conn:
        confidence = conn.execute("SELECT cluster_confidence FROM person_detection WHERE id = %s", (first,))
        assert confidence.fetchone()[0] == pytest.approx(0.8)
    assert_clusters_exact(db)


def cluster_updates(conn: psycopg.Connection) -> tuple[int, int]:
    conn.execute("SELECT pg_stat_force_next_flush()")
    row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'cluster'")
    return row.fetchone()


def make_cluster(db: Database, vectors: np.ndarray) -> tuple[int, list[int]]:
    """A cluster of all but the last of `vectors`, in an active run with no tier 1 of its own."""
    ids = insert(db, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32))
    with db.connection() as conn:
        conn.execute(
            """INSERT INTO hdbscan_run (collection_id, embedding_model, embedding_count, cluster_count, noise_count,
                                        min_cluster_size, min_samples, is_active)
               VALUES (1, 'arcface', 0, 0, 0, 2, 1, true) ON CONFLICT DO NOTHING"""
        )
        cluster = conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model) VALUES (1, 'arcface') RETURNING id"
        ).fetchone()[0]
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = ANY(%s)", (cluster, ids[:-1]))
        conn.execute(
            """UPDATE cluster c SET face_count = s.n, centroid_sum = s.total, centroid = l2_normalize(s.total)
               FROM (SELECT count(*) AS n, sum(fe.embedding) AS total FROM person_detection d
                     JOIN face_embedding fe ON fe.person_detection_id = d.id WHERE d.cluster_id = %s) s
               WHERE c.id = %s""",
            (cluster, cluster),
        )
    return cluster, ids


def test_an_assignment_writes_one_version_of_its_cluster_and_a_still_centroid_none_indexed(db):
    """A centroid that moves is rewritten in the assignment's one update; one that stays is not
    touched, so the update is HOT (no HNSW entry, no TOAST write)."""
    rng = np.random.default_rng(4)
    direction = rng.normal(size=512)
    big, big_ids = make_cluster(db, direction + rng.normal(size=(1001, 512)) * 0.02)
    other = rng.normal(size=512)
    small, small_ids = make_cluster(db, other + rng.normal(size=(3, 512)) * 1.0)  # a wide pair: the third face moves it
    with db.connection() as conn:
        faces = assignment.faces_to_assign(conn, [big_ids[-1], small_ids[-1]])
        centroids = dict(conn.execute("SELECT id, centroid::text FROM cluster").fetchall())
    for face, cluster, moves in ((faces[big_ids[-1]], big, False), (faces[small_ids[-1]], small, True)):
        with db.autocommit() as conn:  # one backend: its own counts, flushed before each read
            before = cluster_updates(conn)
            done = assignment.assign_face(
                conn, face, run_id=face.run_id, cluster_id=cluster, confidence=0.9, **options(db)
            )
            after = cluster_updates(conn)
            centroid = conn.execute("SELECT centroid::text FROM cluster WHERE id = %s", (cluster,)).fetchone()[0]
        assert done.cluster_id == cluster
        assert after[0] - before[0] == 1  # one row version per assignment
        assert after[1] - before[1] == (0 if moves else 1)
        assert (centroid != centroids[cluster]) == moves
    assert_clusters_exact(db)


def cluster_reads(conn: psycopg.Connection) -> int:
    conn.execute("SELECT pg_stat_force_next_flush()")
    return conn.execute("SELECT idx_scan FROM pg_stat_user_tables WHERE relname = 'cluster'").fetchone()[0]


def test_the_joined_cluster_is_locked_by_its_update_with_no_separate_read(db):
    """Migration 0015: a still centroid is one HOT update that also locks the row (the reads of
    `cluster` are that update and the foreign-key check of the face's new cluster_id); a moving one
    adds the update that rewrites it. 0006 read and locked the row first, one index probe more."""
    rng = np.random.default_rng(5)
    big, big_ids = make_cluster(db, rng.normal(size=512) + rng.normal(size=(1001, 512)) * 0.02)
    small, small_ids = make_cluster(
        db, rng.normal(size=512) + rng.normal(size=(3, 512)) * 1.0
    )  # a wide pair: the third face moves it
    with db.connection() as conn:
        faces = assignment.faces_to_assign(conn, [big_ids[-1], small_ids[-1]])
    for face, cluster, reads in ((faces[big_ids[-1]], big, 2), (faces[small_ids[-1]], small, 3)):
        with db.autocommit() as conn:
            before = cluster_reads(conn), cluster_updates(conn)
            done = assignment.assign_face(
                conn, face, run_id=face.run_id, cluster_id=cluster, confidence=0.9, **options(db)
            )
            after = cluster_reads(conn), cluster_updates(conn)
        assert done.cluster_id == cluster
        assert after[0] - before[0] == reads
        assert after[1][0] - before[1][0] == 1  # still one row version per assignment
    assert_clusters_exact(db)


def test_the_assignment_keeps_its_plans_for_the_session_without_prepared_statements(tmp_path, database_url, faces):
    """As behind PgBouncer: nothing prepared on the client's behalf, yet after the first face the
    function's statements run from plans the session keeps."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        photodb_home=tmp_path,
        database_pooler="transaction",
    )
    with Database(settings) as db:
        base = insert(db, faces.embeddings[:300])
        bootstrap(db)
        tier2_only(db)
        new = insert(db, faces.embeddings[300:306])
        with db.connection() as conn:
            found = assignment.faces_to_assign(conn, new)
        with db.autocommit() as conn:
            for det in new:
                assignment.assign_face(
                    conn, found[det], run_id=found[det].run_id, cluster_id=None, confidence=None, **options(db)
                )
            prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
            kept = [
                r[0]
                for r in conn.execute(
                    "SELECT ident FROM pg_backend_memory_contexts WHERE name = 'CachedPlan' AND ident IS NOT NULL"
                ).fetchall()
            ]
        assert base and prepared == 0
        assert any("cluster_candidates" in text for text in kept), kept  # tier 2's search
        assert any("FOR UPDATE OF pd" in text for text in kept), kept  # the face's lock


@pytest.fixture
def pgbouncer(pg_server: EmbeddedPostgres, tmp_path: Path) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        if os.environ.get("PHOTODB_REQUIRE_PGBOUNCER"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    (tmp_path / "pgbouncer").mkdir()
    bouncer = start_pgbouncer(binary, pg_server.acquire(), tmp_path / "pgbouncer")
    yield bouncer
    bouncer.stop()


def test_assignment_through_pgbouncer_decides_as_a_direct_connection(
    tmp_path, pgbouncer, database_url, other_database_url, faces
):
    """Two databases with the same faces, one reached through PgBouncer in transaction mode: tier 1,
    tier 2 and the same-photo rule give the same partition."""
    partitions = []
    for url, pooled in ((database_url, True), (other_database_url, False)):
        if pooled:
            pgbouncer.warm(url)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=pgbouncer.url_for(url) if pooled else url,
            photodb_home=tmp_path / ("pooled" if pooled else "direct"),
        )
        with Database(settings) as db:
            assert db.pooled == pooled
            base = insert(db, faces.embeddings[:400])
            bootstrap(db)
            new = insert(db, faces.embeddings[400:480])
            with db.connection() as conn:  # two new faces in one photo
                conn.execute("UPDATE person_detection SET photo_id = %s WHERE id = %s", (photo_of(db, new[0]), new[1]))
            incremental._models.clear()
            report = assign_new_faces(db, new, force=True)
            assert report.outcomes["tier1"] > 0
            got = clusters_of(db, base + new)
            assert got[new[0]] is None or got[new[0]] != got[new[1]]
            groups: dict[int, set[int]] = {}
            for k, det in enumerate(base + new):
                if got[det] is not None:
                    groups.setdefault(got[det], set()).add(k)
            partitions.append({frozenset(g) for g in groups.values()})
            assert_clusters_exact(db)
    assert partitions[0] == partitions[1]
