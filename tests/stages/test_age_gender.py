"""The age_gender stage on a real database: process-local on the sample photos with the offline
models, --force reruns, photos without detections, a missing normalized file, no usable model."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from photodb.config import Settings
from photodb.database.age_gender_repository import AgeGenderRepository, StoredEstimate
from photodb.database.connection import Database
from photodb.database.detection_repository import DetectionRepository, NewDetection
from photodb.database.repository import PhotoRepository
from photodb.ml.boxes import Box
from photodb.stages import stage_class
from photodb.stages.age_gender import AgeGenderStage, gender_of
from photodb.stages.base import StageContext, StageFailure, StageSkipped
from tests.cli import cli_env, process_local
from tests.photos import add_normalized_photo
from tests.samples import SAMPLES

STAGES = ("--stage", "normalize", "--stage", "metadata", "--stage", "detection", "--stage", "age_gender")
BIDEN = SAMPLES / "faces/face_recognition/biden.jpg"
ROWS = "SELECT id, age_estimate, gender, age_gender_at FROM person_detection ORDER BY id"


def make_stage(db: Database, settings: Settings) -> AgeGenderStage:
    collection = PhotoRepository(db).get_or_create_collection("default")
    return AgeGenderStage(StageContext(settings, db, collection))


def estimates(conn: psycopg.Connection, photo_name: str) -> list[tuple]:
    return conn.execute(
        """SELECT d.id, d.age_estimate, d.gender, d.gender_confidence, d.age_gender_model, d.mivolo_output,
                  d.age_gender_at, d.face_bbox_x IS NOT NULL
           FROM person_detection d JOIN photo p ON p.id = d.photo_id
           WHERE p.filename LIKE %s ORDER BY d.id""",
        (f"%{photo_name}",),
    ).fetchall()


def test_age_gender_is_registered_after_detection():
    assert stage_class("age_gender") is AgeGenderStage
    assert AgeGenderStage.depends_on == ("detection",)


def test_gender_below_the_floor_is_unknown():
    assert gender_of(0.97, 0.6) == ("M", 0.97)
    assert gender_of(0.1, 0.6) == ("F", pytest.approx(0.9))
    assert gender_of(0.45, 0.6) == ("U", pytest.approx(0.55))
    assert gender_of(None, 0.6) == (None, None)


def test_process_local_estimates_the_sample_faces_and_force_replaces_them(tmp_path: Path, database_url: str):
    env = cli_env(tmp_path, database_url, DETECTION_BACKEND="offline", DETECTION_FORCE_CPU="true")
    first = process_local(str(SAMPLES / "faces"), *STAGES, "--json", env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)["stages"]["age_gender"]
    assert summary["completed"] == 6 and summary["failed"] == 0
    with psycopg.connect(database_url) as conn:
        [biden] = estimates(conn, "biden.jpg")
        assert biden[2] == "M" and biden[3] > 0.9 and 55 <= biden[1] <= 80
        assert biden[4] == "cydral:age-v1+gender-v1" and biden[5]["model"] == biden[4]
        group = estimates(conn, "sample1.jpg")
        assert len(group) >= 3
        for row in group:
            assert row[4] == "cydral:age-v1+gender-v1" and row[6] is not None
            if row[7]:  # a face: an estimate; a body alone: recorded as seen, no estimate
                assert row[1] is not None and row[2] in ("M", "F", "U")
            else:
                assert row[1] is None and row[2] is None and row[5]["input"] == "none"
        before = conn.execute(ROWS).fetchall()

    again = process_local(str(SAMPLES / "faces"), "--stage", "age_gender", "--force", "--json", env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["stages"]["age_gender"]["completed"] == 6
    with psycopg.connect(database_url) as conn:
        after = conn.execute(ROWS).fetchall()
    assert [row[:3] for row in after] == [row[:3] for row in before]  # same rows, same answers, no duplicates
    assert all(new[3] > old[3] for new, old in zip(after, before, strict=True))  # each one rewritten


def test_a_photo_without_detections_completes_with_nothing_written(db: Database, settings: Settings):
    photo = add_normalized_photo(db, settings, SAMPLES / "real/pillow/flower.jpg")
    stage = make_stage(db, settings)
    stage.process(photo)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM person_detection").fetchone() == (0,)


def test_the_gender_floor_setting_stores_unknown(db: Database, settings: Settings):
    photo = add_normalized_photo(db, settings, BIDEN)
    face = Box(430.0, 220.0, 330.0, 330.0, 0.9)  # Biden's face in the sample
    DetectionRepository(db).replace_detections(photo.id, [NewDetection(face, None)], "test", "1")
    make_stage(db, settings.model_copy(update={"age_gender_gender_min_confidence": 1.0})).process(photo)
    with db.connection() as conn:
        gender, confidence = conn.execute("SELECT gender, gender_confidence FROM person_detection").fetchone()
    assert gender == "U" and 0.9 < confidence < 1.0


def test_a_missing_normalized_file_is_a_clear_failure(db: Database, settings: Settings):
    photo = add_normalized_photo(db, settings, BIDEN)
    DetectionRepository(db).replace_detections(
        photo.id, [NewDetection(Box(430.0, 220.0, 330.0, 330.0, 0.9), None)], "test", "1"
    )
    (settings.images_dir / photo.normalized_path).unlink()
    with pytest.raises(StageFailure, match=r"normalized image missing: .*rerun the normalize stage"):
        make_stage(db, settings).process(photo)


def test_no_usable_model_skips_photos_with_the_reason(db: Database, settings: Settings, tmp_path: Path):
    wanted = settings.model_copy(update={"age_gender_model": "mivolo", "mivolo_model_path": tmp_path / "none.pth.tar"})
    stage = make_stage(db, wanted)
    assert stage.skip_reason is not None and "model not found" in stage.skip_reason
    assert "MIVOLO_MODEL_PATH" in stage.skip_reason
    photo = add_normalized_photo(db, settings, BIDEN)
    with pytest.raises(StageSkipped, match="model not found"):
        stage.process(photo)


def wal_fsyncs(conn: psycopg.Connection) -> int:
    """WAL fsyncs of all client backends so far, this connection's own counted up to its last statement."""
    conn.execute("SELECT pg_stat_force_next_flush()")  # this backend's pending counts go out when it idles
    row = conn.execute(
        "SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE backend_type = 'client backend' AND object = 'wal'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_estimates_are_stored_without_waiting_for_the_wal_flush(db: Database, settings: Settings):
    photo = add_normalized_photo(db, settings, BIDEN)
    DetectionRepository(db).replace_detections(
        photo.id, [NewDetection(Box(430.0, 220.0, 330.0, 330.0, 0.9), None)], "test", "1"
    )
    with db.connection() as conn:
        [(detection_id,)] = conn.execute("SELECT id FROM person_detection").fetchall()
    estimate = StoredEstimate(detection_id, 61.5, "M", 0.97, {"model": "test"}, "test")
    with Database(settings, pool_size=1, migrate=False) as single:  # one connection: its own counts are read
        with single.autocommit() as conn:
            before = wal_fsyncs(conn)
            conn.execute("UPDATE person_detection SET age_estimate = 1 WHERE id = %s", (detection_id,))
            synchronous = wal_fsyncs(conn)
        assert synchronous > before  # a synchronous commit waits for its flush: the measure sees it
        assert AgeGenderRepository(single).store_estimates(photo.id, [estimate]) == 1
        with single.autocommit() as conn:
            assert wal_fsyncs(conn) == synchronous
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)  # for that transaction only
    with db.connection() as conn:
        stored = conn.execute("SELECT age_estimate, gender, age_gender_model FROM person_detection").fetchone()
    assert stored == (61.5, "M", "test")
