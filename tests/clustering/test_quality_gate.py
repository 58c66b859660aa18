"""The quality gate: small, blurred, doubtful and outlying faces stay in the unassigned pool with
their reason, in a bootstrap and in incremental assignment; the floors are settings (0 is off);
faces a person placed are never gated; the real sample faces pass."""

from __future__ import annotations

import json
import shutil

import numpy as np
import psycopg
from PIL import Image, ImageFilter
from psycopg import sql

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.incremental import assign_new_faces
from photodb.clustering.quality import QualityGate
from photodb.config import Settings
from photodb.database.clustering import quality as quality_db
from photodb.database.connection import Database
from tests.cli import bootstrap_clusters, cli_env, process_local
from tests.clustering.conftest import assert_clusters_exact, insert
from tests.samples import SAMPLES

JUNK = {
    "small": ("normalized_scale", 0.2),
    "blurry": ("face_sharpness", 3.0),
    "low_confidence": ("face_confidence", 0.3),
}


def identities(rng: np.random.Generator, count: int, per: int, spread: float = 0.02) -> np.ndarray:
    centres = rng.normal(size=(count, 512))
    faces = np.repeat(centres, per, axis=0) + rng.normal(scale=spread * np.sqrt(512) / 10, size=(count * per, 512))
    return (faces / np.linalg.norm(faces, axis=1, keepdims=True)).astype(np.float32)


def spoil(db: Database, detection_id: int, reason: str) -> None:
    """Make a stored face fail one floor: its 10 px box on a photo normalized at scale 0.2 is 50
    original px (the tests' floor is 60), a flat crop, a doubtful detector."""
    column, value = JUNK[reason]
    with db.connection() as conn:
        if column == "normalized_scale":
            conn.execute(
                """UPDATE photo SET normalized_scale = %s
                   WHERE id = (SELECT photo_id FROM person_detection WHERE id = %s)""",
                (value, detection_id),
            )
        else:
            conn.execute(
                sql.SQL("UPDATE person_detection SET {} = %s WHERE id = %s").format(sql.Identifier(column)),
                (value, detection_id),
            )


def with_gate(settings: Settings, **floors: float) -> Database:
    values = {"cluster_min_face_size": 60, "cluster_min_sharpness": 20, "cluster_min_face_confidence": 0.6} | floors
    return Database(settings.model_copy(update=values), pool_size=2)


def faces_state(db: Database, ids: list[int]) -> dict[int, tuple[int | None, str | None, str | None]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT id, cluster_id, cluster_status, quality_issue FROM person_detection WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_bootstrap_sends_gated_faces_to_noise_with_their_reason(settings):
    rng = np.random.default_rng(3)
    gated_db = with_gate(settings)
    try:
        ids = insert(gated_db, identities(rng, 3, 8))
        junk = {ids[0]: "small", ids[8]: "blurry", ids[16]: "low_confidence"}
        for detection_id, reason in junk.items():
            spoil(gated_db, detection_id, reason)
        (report,) = bootstrap(gated_db, min_cluster_size=3, min_samples=2)
        state = faces_state(gated_db, ids)
        assert {d: state[d] for d in junk} == {d: (None, "unassigned", r) for d, r in junk.items()}
        assert report.gated_faces == {"small": 1, "blurry": 1, "low_confidence": 1}
        clustered = [d for d in ids if d not in junk]
        assert all(state[d][0] is not None and state[d][2] is None for d in clustered)
        assert len({state[d][0] for d in clustered}) == 3
        assert_clusters_exact(gated_db)
        with gated_db.connection() as conn:
            assert quality_db.unassigned_by_reason(conn) == {"small": 1, "blurry": 1, "low_confidence": 1}
    finally:
        gated_db.close()

    # every floor off: the same faces join their identity, and the reasons are gone
    open_db = with_gate(settings, cluster_min_face_size=0, cluster_min_sharpness=0, cluster_min_face_confidence=0)
    try:
        (report,) = bootstrap(open_db, min_cluster_size=3, min_samples=2)
        state = faces_state(open_db, ids)
        assert report.gated_faces == {}
        assert all(state[d][0] == state[d + 1][0] is not None and state[d][2] is None for d in junk)
    finally:
        open_db.close()


def test_outliers_of_the_run_are_gated_and_a_ceiling_of_one_is_off(settings):
    rng = np.random.default_rng(5)
    faces = identities(rng, 3, 8)
    # one face far from everyone: HDBSCAN's GLOSH score marks it, the gate keeps it out even when
    # HDBSCAN would put it in a cluster (at min_samples 1 a stray point can end in one)
    stray = (faces[0] + faces[8] + faces[16]) / 3
    ids = insert(Database(settings, pool_size=1), np.vstack([faces, stray / np.linalg.norm(stray)]))
    strict = with_gate(settings, cluster_max_outlier_score=0.3)
    try:
        bootstrap(strict, min_cluster_size=3, min_samples=1)
        with strict.connection() as conn:
            rows = conn.execute(
                "SELECT id, cluster_id, quality_issue, outlier_score FROM person_detection WHERE id = ANY(%s)", (ids,)
            ).fetchall()
        outliers = [r for r in rows if r[2] == "outlier"]
        assert ids[-1] in [r[0] for r in outliers]
        assert all(r[1] is None and r[3] > 0.3 for r in outliers)
        assert all(r[2] is None and r[1] is not None for r in rows if r[3] is not None and r[3] <= 0.3)
    finally:
        strict.close()
    off = with_gate(settings, cluster_max_outlier_score=1.0)
    try:
        (report,) = bootstrap(off, min_cluster_size=3, min_samples=1)
        assert "outlier" not in report.gated_faces
        assert all(issue is None for _, _, issue in faces_state(off, ids).values())
    finally:
        off.close()


def test_faces_a_person_placed_are_never_gated(settings):
    rng = np.random.default_rng(7)
    gated_db = with_gate(settings)
    try:
        ids = insert(gated_db, identities(rng, 2, 8))
        bootstrap(gated_db, min_cluster_size=3, min_samples=2)
        cluster = faces_state(gated_db, ids)[ids[1]][0]
        with gated_db.connection() as conn:
            conn.execute("UPDATE person_detection SET cluster_status = 'manual' WHERE id = %s", (ids[0],))
        spoil(gated_db, ids[0], "blurry")
        spoil(gated_db, ids[9], "low_confidence")
        with gated_db.connection() as conn:  # ids[9] must-linked to ids[10]
            conn.execute(
                "INSERT INTO must_link (detection_id_1, detection_id_2, created_by) VALUES (%s, %s, 'user')",
                (ids[9], ids[10]),
            )
        bootstrap(gated_db, min_cluster_size=3, min_samples=2)
        state = faces_state(gated_db, ids)
        assert state[ids[0]] == (cluster, "manual", None)
        assert state[ids[9]][0] == state[ids[10]][0] is not None and state[ids[9]][2] is None
    finally:
        gated_db.close()


def test_incremental_assignment_leaves_gated_faces_unassigned(settings):
    rng = np.random.default_rng(11)
    faces = identities(rng, 3, 10)
    gated_db = with_gate(settings)
    try:
        base = insert(gated_db, faces[np.r_[0:8, 10:18, 20:28]])
        bootstrap(gated_db, min_cluster_size=3, min_samples=2)
        new = insert(gated_db, faces[[8, 9, 18, 19, 28]])
        junk = {new[0]: "small", new[2]: "blurry", new[3]: "low_confidence"}
        for detection_id, reason in junk.items():
            spoil(gated_db, detection_id, reason)
        with gated_db.connection() as conn:  # a stored score above the ceiling (an earlier run's verdict)
            conn.execute("UPDATE person_detection SET outlier_score = 0.97 WHERE id = %s", (new[4],))
        junk[new[4]] = "outlier"
        report = assign_new_faces(gated_db, new, force=True)
        assert report.outcomes["gated"] == 4
        state = faces_state(gated_db, new)
        assert {d: state[d] for d in junk} == {d: (None, "unassigned", r) for d, r in junk.items()}
        assert state[new[1]][0] == faces_state(gated_db, [base[0]])[base[0]][0] is not None
        assert_clusters_exact(gated_db)
        # the maintenance predicate sees the same: of the unassigned pool, no gated face passes
        with gated_db.connection() as conn:
            passing = conn.execute(
                sql.SQL(
                    """SELECT pd.id FROM person_detection pd JOIN photo p ON p.id = pd.photo_id
                       WHERE pd.id = ANY(%s) AND {}"""
                ).format(quality_db.passes_quality_gate(QualityGate.from_settings(gated_db.settings))),
                (new,),
            ).fetchall()
        assert [r[0] for r in passing] == [new[1]]
    finally:
        gated_db.close()

    # with the floors off, the same faces are placed when asked again, and lose their reason
    open_db = with_gate(
        settings,
        cluster_min_face_size=0,
        cluster_min_sharpness=0,
        cluster_min_face_confidence=0,
        cluster_max_outlier_score=1,
    )
    try:
        report = assign_new_faces(open_db, list(junk), force=True)
        assert report.outcomes["gated"] == 0
        assert all(
            cluster is not None and issue is None for cluster, _, issue in faces_state(open_db, list(junk)).values()
        )
    finally:
        open_db.close()


def blurred(source, target, radius: float) -> None:
    with Image.open(source) as image:
        image.convert("RGB").filter(ImageFilter.GaussianBlur(radius)).save(target, quality=92)


def shrunk(source, target, factor: int) -> None:
    with Image.open(source) as image:
        image.convert("RGB").resize((image.width // factor, image.height // factor)).save(target, quality=92)


def test_real_sample_faces_pass_the_default_gate_and_spoiled_copies_do_not(tmp_path, database_url):
    library = tmp_path / "lib"
    shutil.copytree(SAMPLES / "faces", library)
    env = cli_env(tmp_path, database_url, DETECTION_BACKEND="offline", DETECTION_FORCE_CPU="true", FACE_EMBEDDER="dlib")
    first = process_local(str(library), "--json", env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    run = bootstrap_clusters("--min-cluster-size", "2", "--min-samples", "1", "--json", env=env)
    assert run.returncode == 0, run.stderr
    (report,) = json.loads(run.stdout)
    assert report["gated_faces"] == {}
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT d.face_sharpness, d.quality_issue FROM person_detection d
               JOIN face_embedding f ON f.person_detection_id = d.id"""
        ).fetchall()
    assert len(rows) == 8 and all(sharpness > 0 and issue is None for sharpness, issue in rows)

    # new photos: a heavily blurred and a tiny copy of Obama, placed by the detection stage
    blurred(SAMPLES / "faces/face_recognition/obama.jpg", library / "obama_blurred.jpg", 8)
    shrunk(SAMPLES / "faces/face_recognition/obama.jpg", library / "obama_tiny.jpg", 8)
    second = process_local(str(library), "--json", env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    with psycopg.connect(database_url) as conn:
        found = dict(
            conn.execute(
                """SELECT p.filename, (d.cluster_id, d.cluster_status, d.quality_issue) FROM person_detection d
                   JOIN photo p ON p.id = d.photo_id JOIN face_embedding f ON f.person_detection_id = d.id
                   WHERE p.filename IN ('obama_blurred.jpg', 'obama_tiny.jpg')"""
            ).fetchall()
        )
    assert found == {
        "obama_blurred.jpg": (None, "unassigned", "blurry"),
        "obama_tiny.jpg": (None, "unassigned", "small"),
    }
    # and a re-bootstrap keeps them out too
    again = bootstrap_clusters("--min-cluster-size", "2", "--min-samples", "1", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["gated_faces"] == {"blurry": 1, "small": 1}


def test_tier_one_scores_new_faces_and_an_outlier_stays_out(settings):
    rng = np.random.default_rng(13)
    faces = identities(rng, 3, 10)
    gated_db = with_gate(settings, cluster_max_outlier_score=0.9)
    try:
        insert(gated_db, faces[np.r_[0:9, 10:19, 20:29]])
        bootstrap(gated_db, min_cluster_size=3, min_samples=2)
        stranger = rng.normal(size=512)
        near, far = insert(gated_db, np.vstack([faces[9], stranger / np.linalg.norm(stranger)]))
        report = assign_new_faces(gated_db, [near, far], force=True)
        assert report.outcomes == {"tier1": 1, "gated": 1}
        state = faces_state(gated_db, [near, far])
        assert state[far] == (None, "unassigned", "outlier") and state[near][0] is not None
        with gated_db.connection() as conn:
            score = conn.execute("SELECT outlier_score FROM person_detection WHERE id = %s", (far,)).fetchone()[0]
        assert score > 0.9
    finally:
        gated_db.close()
