"""The detection stage end to end on a real database: offline models on real photos, the yolo
path on random-weight models made at test time, reruns, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from photodb.config import Settings
from photodb.database.clustering import centroids
from photodb.database.connection import Database
from photodb.database.detection_repository import DetectionRepository
from photodb.database.repository import PhotoRepository
from photodb.ml.files import file_sha256
from photodb.stages import stage_class
from photodb.stages.base import StageContext, StageFailure, StageSkipped, StageUnavailable
from photodb.stages.detection import DetectionStage
from tests.detection_models import make_arcface_onnx, make_random_yolo
from tests.photos import add_normalized_photo
from tests.samples import SAMPLES, manifest

MANIFEST = manifest()
FACE_PHOTOS = [p for p, f in MANIFEST.items() if f.get("faces")]


def make_stage(db: Database, settings: Settings, parallel: int = 1) -> DetectionStage:
    collection = PhotoRepository(db).get_or_create_collection("default")
    return DetectionStage(StageContext(settings, db, collection, parallel=parallel))


@pytest.fixture
def offline_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"detection_backend": "offline", "detection_force_cpu": True})


@pytest.fixture
def offline_stage(db: Database, offline_settings: Settings) -> Iterator[DetectionStage]:
    stage = make_stage(db, offline_settings)
    yield stage
    stage.close()


def embeddings(db: Database, photo_id: int) -> list[dict]:
    return [r for r in DetectionRepository(db).detections_for_photo(photo_id) if r["embedding"] is not None]


def test_detection_is_registered_after_normalize():
    assert stage_class("detection") is DetectionStage
    assert DetectionStage.depends_on == ("normalize",)


def test_offline_set_finds_the_expected_faces_in_the_sample_photos(db, offline_settings, offline_stage):
    assert offline_stage.backend == "offline"
    for relative in FACE_PHOTOS:
        photo = add_normalized_photo(db, offline_settings, SAMPLES / relative)
        offline_stage.process(photo)
        rows = DetectionRepository(db).detections_for_photo(photo.id)
        faces = [r for r in rows if r["face_bbox_x"] is not None]
        low, high = MANIFEST[relative]["faces"]["count_range"]
        assert low <= len(faces) <= high, relative
        for row in faces:
            assert row["detector_model"] == "yunet+yolo11n-pose" and row["detector_version"].startswith("yuface-")
            assert row["face_bbox_x"] >= 0 and row["face_bbox_x"] + row["face_bbox_width"] <= photo.normalized_width
            assert len(row["face_landmarks"]) == 5
            # FACE_EMBEDDER=auto: the packaged InsightFace MobileFaceNet for the offline set.
            assert row["embedding_model"] == "arcface:w600k_mbf" and row["embedding_dim"] == 512 and row["aligned"]
            vector = np.asarray(row["embedding"].to_numpy())
            assert np.linalg.norm(vector) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize(
    ("embedder", "model", "dim"), [("sface", "sface:2021dec", 128), ("dlib", "dlib:resnet_v1", 128)]
)
def test_face_embedder_setting_stores_that_models_vectors(db, offline_settings, embedder, model, dim):
    settings = offline_settings.model_copy(update={"face_embedder": embedder})
    stage = make_stage(db, settings)
    try:
        photo = add_normalized_photo(db, settings, SAMPLES / "faces" / "face_recognition" / "obama.jpg")
        stage.process(photo)
    finally:
        stage.close()
    (row,) = embeddings(db, photo.id)
    assert row["embedding_model"] == model and row["embedding_dim"] == dim and row["aligned"]
    vector = np.asarray(row["embedding"].to_numpy())
    assert np.linalg.norm(vector) == pytest.approx(1, abs=1e-5) and not vector[dim:].any()  # zero-padded to 512


def test_same_person_is_nearer_than_different_people_in_the_database(db, offline_settings, offline_stage):
    ids = {}
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        photo = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "face_recognition" / name)
        offline_stage.process(photo)
        (row,) = embeddings(db, photo.id)
        ids[name] = row["id"]
    for name in ("grace_hopper.jpg",):
        photo = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "matplotlib" / name)
        offline_stage.process(photo)
    photo = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "pillow" / "hopper.jpg")
    offline_stage.process(photo)
    (hopper,) = embeddings(db, photo.id)
    with db.connection() as conn:
        nearest = conn.execute(
            """SELECT o.person_detection_id FROM face_embedding q JOIN face_embedding o
                   ON o.embedding_model = q.embedding_model AND o.person_detection_id <> q.person_detection_id
               WHERE q.person_detection_id = %s ORDER BY q.embedding <=> o.embedding LIMIT 1""",
            (ids["obama.jpg"],),
        ).fetchone()
        assert nearest == (ids["obama2.jpg"],)
        distances = dict(
            conn.execute(
                """SELECT o.person_detection_id, q.embedding <=> o.embedding FROM face_embedding q, face_embedding o
                   WHERE q.person_detection_id = %s AND o.person_detection_id <> q.person_detection_id""",
                (hopper["id"],),
            ).fetchall()
        )
    assert min(distances, key=distances.get) not in ids.values()  # grace_hopper.jpg, the same person


def test_group_photo_pairs_each_face_with_its_body(db, offline_settings, offline_stage):
    photo = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "vladmandic_face_api" / "sample1.jpg")
    offline_stage.process(photo)
    rows = DetectionRepository(db).detections_for_photo(photo.id)
    both = [r for r in rows if r["face_bbox_x"] is not None and r["body_bbox_x"] is not None]
    assert len(both) == 3
    for row in both:  # the face lies inside its body box
        assert row["body_bbox_x"] <= row["face_bbox_x"] <= row["body_bbox_x"] + row["body_bbox_width"]


def test_rerun_replaces_detections_and_keeps_cluster_bookkeeping_consistent(db, offline_settings, offline_stage):
    group = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "vladmandic_face_api" / "sample1.jpg")
    other = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "face_recognition" / "obama.jpg")
    offline_stage.process(group)
    offline_stage.process(other)
    first = embeddings(db, group.id)
    (obama,) = embeddings(db, other.id)
    assert len(first) == 3
    auto, manual, linked = (r["id"] for r in first)
    with db.connection() as conn:
        shared, alone, verified = (
            conn.execute(
                """INSERT INTO cluster (collection_id, embedding_model, face_count, verified, verified_at)
                   VALUES (1, 'arcface:w600k_mbf', %s, %s, CASE WHEN %s THEN now() END) RETURNING id""",
                (count, flag, flag),
            ).fetchone()[0]
            for count, flag in ((2, False), (1, False), (1, True))
        )
        conn.execute(
            "UPDATE person_detection SET cluster_id = %s, cluster_status = 'auto' WHERE id IN (%s, %s)",
            (shared, auto, obama["id"]),
        )
        conn.execute("UPDATE cluster SET representative_detection_id = %s WHERE id = %s", (auto, shared))
        conn.execute(
            "UPDATE person_detection SET cluster_id = %s, cluster_status = 'manual' WHERE id = %s", (verified, manual)
        )
        conn.execute(
            "UPDATE person_detection SET cluster_id = %s, cluster_status = 'auto' WHERE id = %s", (alone, linked)
        )
        conn.execute(
            "INSERT INTO must_link (detection_id_1, detection_id_2) VALUES (%s, %s)",
            tuple(sorted((linked, obama["id"]))),
        )
        centroids.recount_clusters(conn, [shared, alone, verified])  # counts and sums from the members

    offline_stage.process(group)  # what --force does

    rows = DetectionRepository(db).detections_for_photo(group.id)
    assert len([r for r in rows if r["face_bbox_x"] is not None]) == 3  # kept rows were not duplicated
    ids = {r["id"] for r in rows}
    assert manual in ids and linked in ids and auto not in ids
    with db.connection() as conn:
        clusters = dict(conn.execute("SELECT id, face_count FROM cluster").fetchall())
        assert clusters == {shared: 1, alone: 1, verified: 1}
        representative = conn.execute(
            "SELECT representative_detection_id, centroid FROM cluster WHERE id = %s", (shared,)
        ).fetchone()
        assert representative[0] is None
        assert np.allclose(representative[1].to_numpy(), obama["embedding"].to_numpy(), atol=1e-5)
        orphans = conn.execute(
            """SELECT count(*) FROM face_embedding fe
               LEFT JOIN person_detection d ON d.id = fe.person_detection_id WHERE d.id IS NULL"""
        ).fetchone()
        assert orphans == (0,)
        assert conn.execute("SELECT count(*) FROM must_link").fetchone() == (1,)

    # The second rerun frees the obama cluster's partner; removing the last member deletes it,
    # unless the cluster is named: a person keeps their (now empty) cluster.
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET cluster_id = NULL WHERE id = %s", (obama["id"],))
    new_auto = next(r["id"] for r in rows if r["id"] not in (manual, linked) and r["face_bbox_x"] is not None)
    with db.connection() as conn:
        conn.execute("UPDATE person_detection SET cluster_id = %s WHERE id = %s", (shared, new_auto))
        centroids.recount_clusters(conn, [shared])
        person = conn.execute("INSERT INTO person (collection_id) VALUES (1) RETURNING id").fetchone()
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = %s", (person[0], alone))
        conn.execute("DELETE FROM must_link")  # 'linked' is no longer curated: the rerun replaces it
    offline_stage.process(group)
    with db.connection() as conn:
        assert conn.execute("SELECT id FROM cluster WHERE id = %s", (shared,)).fetchone() is None
        assert conn.execute("SELECT face_count, person_id FROM cluster WHERE id = %s", (alone,)).fetchone() == (
            0,
            person[0],
        )


def test_faces_below_the_minimum_size_are_stored_but_not_embedded(db, offline_settings):
    settings = offline_settings.model_copy(update={"detection_min_face_size": 10_000})
    stage = make_stage(db, settings)
    photo = add_normalized_photo(db, settings, SAMPLES / "faces" / "face_recognition" / "obama.jpg")
    stage.process(photo)
    rows = DetectionRepository(db).detections_for_photo(photo.id)
    assert len([r for r in rows if r["face_bbox_x"] is not None]) == 1
    assert embeddings(db, photo.id) == []


def test_missing_normalized_file_fails_only_that_photo(db, offline_settings, offline_stage):
    photo = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "pillow" / "hopper.jpg")
    (offline_settings.images_dir / photo.normalized_path).unlink()
    with pytest.raises(StageFailure, match=r"normalized image missing: .*rerun the normalize stage"):
        offline_stage.process(photo)
    corrupt = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "pillow" / "hopper.jpg")
    (offline_settings.images_dir / corrupt.normalized_path).write_bytes(b"not a png")
    with pytest.raises(StageFailure, match="cannot decode"):
        offline_stage.process(corrupt)
    with db.connection() as conn:
        conn.execute("UPDATE photo SET normalized_path = NULL WHERE id = %s", (photo.id,))
    with pytest.raises(StageFailure, match="not been normalized"):
        offline_stage.process(PhotoRepository(db).get_photo(photo.id))


@pytest.fixture
def yolo_settings(settings: Settings, tmp_path: Path) -> Settings:
    """Stand-ins under the spec's names in MODELS_DIR, pinned by the user (their pins win over the published ones)."""
    models = tmp_path / "models"
    models.mkdir()
    detection = make_random_yolo(models / "yolov8x_person_face.pt")
    arcface = make_arcface_onnx(models / "buffalo_l" / "w600k_r50.onnx")
    return settings.model_copy(
        update={
            "models_dir": models,
            "detection_model_sha256": file_sha256(detection),
            "arcface_model_sha256": file_sha256(arcface),
            "detection_force_cpu": True,
        }
    )


def test_yolo_set_runs_load_predict_parse_match_store(db, yolo_settings):
    stage = make_stage(db, yolo_settings)  # DETECTION_BACKEND=auto finds both files
    assert stage.backend == "yolo"
    photo = add_normalized_photo(db, yolo_settings, SAMPLES / "faces" / "face_recognition" / "obama.jpg")
    stage.process(photo)
    rows = DetectionRepository(db).detections_for_photo(photo.id)
    kinds = {(r["face_bbox_x"] is not None, r["body_bbox_x"] is not None) for r in rows}
    assert (True, True) in kinds and (False, True) in kinds
    for row in rows:
        assert row["detector_model"] == "yolov8x_person_face.pt"
        assert row["detector_version"] == stage.detector.version
        for prefix in ("face", "body"):
            if row[f"{prefix}_bbox_x"] is not None:
                assert row[f"{prefix}_bbox_x"] + row[f"{prefix}_bbox_width"] <= photo.normalized_width + 1e-6
                assert row[f"{prefix}_confidence"] >= 0.5
    embedded = embeddings(db, photo.id)
    assert embedded and all(r["embedding_model"] == "arcface:w600k_r50" and r["embedding_dim"] == 512 for r in embedded)
    assert any(r["aligned"] for r in embedded)  # boxes around the real face got YuNet landmarks
    count = len(rows)
    stage.process(photo)
    assert len(DetectionRepository(db).detections_for_photo(photo.id)) == count
    stage.close()


def test_on_cpu_parallel_workers_run_unbatched_unless_told(db, yolo_settings):
    stage = make_stage(db, yolo_settings, parallel=4)
    stage.ready()
    assert stage.yolo_coordinator is None and stage.embedding_coordinator is None
    stage.close()


def test_yolo_backend_with_parallel_workers_uses_batch_coordinators(db, yolo_settings):
    stage = make_stage(db, yolo_settings.model_copy(update={"batch_coordinator_on_cpu": True}), parallel=4)
    try:
        stage.ready()
        assert stage.yolo_coordinator is not None and stage.embedding_coordinator is not None
        photos = [
            add_normalized_photo(db, yolo_settings, SAMPLES / "faces" / "pillow" / "hopper.jpg") for _ in range(4)
        ]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(stage.process, photos))
        counts = {len(DetectionRepository(db).detections_for_photo(p.id)) for p in photos}
        assert len(counts) == 1 and counts.pop() > 0  # same image, same result, whatever the batch
        assert stage.yolo_coordinator.items_run == 4
    finally:
        stage.close()


def test_yolo_backend_with_a_missing_model_stops_the_run_with_one_message(db, settings, tmp_path):
    forced = settings.model_copy(update={"detection_backend": "yolo", "models_dir": tmp_path / "models"})
    with pytest.raises(StageUnavailable) as info:
        make_stage(db, forced)
    assert str(info.value) == (
        f"model not found: {tmp_path / 'models' / 'yolov8x_person_face.pt'}, "
        f"{tmp_path / 'models' / 'buffalo_l' / 'w600k_r50.onnx'}: run scripts/download_models.sh or set "
        "DETECTION_MODEL_PATH / ARCFACE_MODEL_PATH"
    )


def test_corrupt_or_replaced_model_files_skip_the_stages_photos_with_the_reason(db, yolo_settings):
    """The file check is up front, the load (and with it the checksum) when the stage first claims
    work; a file that does not load skips each photo with the reason, and is not loaded again."""
    detection = yolo_settings.detection_model_file
    detection.write_bytes(b"\x80\x02corrupt")
    stage = make_stage(db, yolo_settings)
    for _ in range(2):
        with pytest.raises(StageSkipped, match=r"does not load: .*yolov8x_person_face\.pt has sha256 .* not "):
            stage.ready()
    pinned = yolo_settings.model_copy(update={"detection_model_sha256": file_sha256(detection)})
    with pytest.raises(StageSkipped, match="cannot load YOLO person_face model"):
        make_stage(db, pinned).ready()
    yolo_settings.arcface_model_file.write_bytes(b"garbage")
    with pytest.raises(StageSkipped, match="cannot load ArcFace model"):
        make_stage(
            db, pinned.model_copy(update={"arcface_model_sha256": file_sha256(yolo_settings.arcface_model_file)})
        ).ready()


def test_a_failed_cluster_assignment_keeps_the_faces_for_later(db, offline_settings, offline_stage, caplog):
    from photodb.clustering.bootstrap import bootstrap
    from photodb.clustering.incremental import assign_unclustered

    for relative in FACE_PHOTOS:
        offline_stage.process(add_normalized_photo(db, offline_settings, SAMPLES / relative))
    bootstrap(db, min_cluster_size=2, min_samples=1)
    with db.connection() as conn:
        conn.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'assignment refused by test'; END $$"""
        )
        conn.execute("CREATE TRIGGER refuse BEFORE UPDATE ON person_detection FOR EACH ROW EXECUTE FUNCTION refuse()")
    photo = add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "face_recognition" / "obama2.jpg")
    offline_stage.process(photo)  # the stage completes: the detections are stored
    assert "faces stored but not assigned to clusters (assignment refused by test)" in caplog.text
    (face,) = embeddings(db, photo.id)
    assert face["cluster_id"] is None
    with db.connection() as conn:
        conn.execute("DROP TRIGGER refuse ON person_detection")
    report = assign_unclustered(db)
    assert report.cluster_of[face["id"]] is not None and report.outcomes["tier1"] == 1


def test_changing_the_face_embedder_is_reported_by_check_staleness(db, offline_settings):
    """A library embedded with dlib (the old offline default), re-embedded with the new default."""
    from photodb.clustering.bootstrap import bootstrap
    from photodb.clustering.staleness import check_staleness

    names = ("obama.jpg", "obama2.jpg", "biden.jpg")
    old = make_stage(db, offline_settings.model_copy(update={"face_embedder": "dlib"}))
    try:
        photos = [add_normalized_photo(db, offline_settings, SAMPLES / "faces" / "face_recognition" / n) for n in names]
        for photo in photos:
            old.process(photo)
    finally:
        old.close()
    bootstrap(db, min_cluster_size=2, min_samples=1)
    (before,) = check_staleness(db)
    assert before.embedding_model == "dlib:resnet_v1" and before.run_id is not None

    new = make_stage(db, offline_settings)  # FACE_EMBEDDER=auto
    try:
        for photo in photos:
            new.process(photo)  # what `process-local --stage detection --force` does
    finally:
        new.close()
    reports = {r.embedding_model: r for r in check_staleness(db)}
    assert reports["arcface:w600k_mbf"].faces == 3
    assert reports["arcface:w600k_mbf"].reasons == [
        "no active run for embedding model 'arcface:w600k_mbf' (embedding model changed since the last bootstrap)"
    ]
    assert "which no face uses any more" in reports["dlib:resnet_v1"].reasons[0]


def test_the_stage_loads_its_models_once_when_first_ready_not_when_built(db, offline_settings):
    from concurrent.futures import ThreadPoolExecutor

    from photodb.ml.base import MODEL_LOADS

    before = dict(MODEL_LOADS)
    stage = make_stage(db, offline_settings, parallel=8)
    try:
        assert dict(MODEL_LOADS) == before  # built: files checked, nothing loaded
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: stage.ready(), range(8)))
        loaded = {family: MODEL_LOADS[family] - before.get(family, 0) for family in MODEL_LOADS}
        # eight workers, one load each of the detector and the embedder
        assert sorted(n for n in loaded.values() if n) == [1, 1], loaded
        assert {type(stage.detector).__name__, type(stage.embedder).__name__} == {f for f, n in loaded.items() if n}
    finally:
        stage.close()
