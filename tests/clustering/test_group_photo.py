"""Real faces through the real detection stage (offline models, in this process): faces of one
photo end in different clusters after a bootstrap, and whatever goes wrong in the assignment
after detection (a damaged stored run, an error that is not a database error) never fails the photo.

Photos: examples/photos (see examples/photos/SOURCES.md); the group photo holds three women."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from photodb.clustering import incremental
from photodb.clustering.bootstrap import bootstrap
from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.repository import PhotoRepository
from photodb.stages.base import StageContext
from photodb.stages.detection import DetectionStage
from tests.photos import add_normalized_photo

PHOTOS = Path(__file__).resolve().parents[2] / "examples" / "photos" / "faces"
GROUP = PHOTOS / "vladmandic_face_api" / "sample1.jpg"
SINGLES = ["face_recognition/obama.jpg", "face_recognition/obama2.jpg", "face_recognition/biden.jpg"]
SINGLES += ["matplotlib/grace_hopper.jpg", "pillow/hopper.jpg"]


@pytest.fixture
def stage(db: Database, settings: Settings) -> Iterator[DetectionStage]:
    # dlib: its compressed geometry puts the group's three women into one HDBSCAN cluster, which is
    # what the same-photo split must undo
    offline = settings.model_copy(
        update={"detection_backend": "offline", "detection_force_cpu": True, "face_embedder": "dlib"}
    )
    collection = PhotoRepository(db).get_or_create_collection("default")
    made = DetectionStage(StageContext(offline, db, collection, parallel=1))
    yield made
    made.close()


def faces_of(db: Database, photo_id: int) -> list[tuple[int, int | None, str | None]]:
    with db.connection() as conn:
        return conn.execute(
            """SELECT d.id, d.cluster_id, d.cluster_status FROM person_detection d
               JOIN face_embedding f ON f.person_detection_id = d.id WHERE d.photo_id = %s ORDER BY d.id""",
            (photo_id,),
        ).fetchall()


def test_faces_of_the_group_photo_end_in_different_clusters(db, settings, stage):
    group = add_normalized_photo(db, settings, GROUP)
    for photo in [group] + [add_normalized_photo(db, settings, PHOTOS / name) for name in SINGLES]:
        stage.process(photo)
    assert len(faces_of(db, group.id)) == 3
    (report,) = bootstrap(db, min_cluster_size=2, min_samples=1)
    clusters = [cluster for _, cluster, _ in faces_of(db, group.id) if cluster is not None]
    assert clusters and len(clusters) == len(set(clusters)), f"faces of one photo share a cluster: {clusters}"
    assert report.constrained_faces >= 2
    with db.connection() as conn:
        assert conn.execute(
            """SELECT count(*) FROM cluster c
               WHERE face_count <> (SELECT count(*) FROM person_detection d WHERE d.cluster_id = c.id)"""
        ).fetchone() == (0,)


def test_a_damaged_run_or_a_failing_assignment_never_fails_a_photo(db, settings, stage, caplog, monkeypatch):
    for name in SINGLES:
        stage.process(add_normalized_photo(db, settings, PHOTOS / name))
    bootstrap(db, min_cluster_size=2, min_samples=1)
    with db.connection() as conn:
        conn.execute("UPDATE hdbscan_run SET clusterer_state = %s WHERE is_active", (b"\x80\x04not a run",))
    incremental._models.clear()
    with caplog.at_level(logging.WARNING):
        again = add_normalized_photo(db, settings, PHOTOS / "face_recognition" / "obama2.jpg", mirror=True)
        stage.process(again)  # completes: tier 1 is off, tier 2 matches the face to a centroid
    ((_, cluster, status),) = faces_of(db, again.id)
    assert status in ("auto", "unassigned", "pending") and (cluster is not None) == (status == "auto")
    assert sum("tier 1 is off" in message for message in caplog.messages) == 1

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("a bug in the assignment")

    monkeypatch.setattr(incremental, "assign_held_faces", broken)  # an error that is not a database error
    third = add_normalized_photo(db, settings, PHOTOS / "pillow" / "hopper.jpg", mirror=True)
    stage.process(third)  # completes: the face is stored, unassigned, for --assign-new
    assert faces_of(db, third.id)[0][1:] == (None, None)
    assert "faces stored but not assigned to clusters (KeyError: 'a bug in the assignment')" in caplog.text
