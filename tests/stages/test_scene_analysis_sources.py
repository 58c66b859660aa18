"""The scene analysis stage with its other parts: batch coordinators, MobileCLIP-S2 at full size,
Apple Vision's absence, offline object labels, and the real process-local runner."""

from __future__ import annotations

import numpy as np
import pytest

from photodb.database.detection_repository import DetectionRepository, NewDetection
from photodb.database.prompt_repository import PromptRepository
from photodb.ml.boxes import Box
from tests.photos import add_normalized_photo
from tests.scene import (
    COLOUR_CATEGORY,
    FACE_COLOUR,
    make_stage,
    shape_photo,
    stage_output,
    tags,
)
from tests.tiny_clip import COLOURS, SHAPES, draw_shape


def test_batch_coordinators_give_the_same_tags_as_direct_calls(db, tiny_settings, tmp_path):
    import threading

    PromptRepository(db).save_categories([COLOUR_CATEGORY, FACE_COLOUR])
    settings = tiny_settings.model_copy(update={"batch_coordinator_on_cpu": True, "batch_coordinator_max_wait_ms": 20})
    stage = make_stage(db, settings, parallel=4)
    stage.ready()
    assert stage.clip_coordinator is not None and stage.face_coordinator is not None
    photos = [
        shape_photo(db, settings, tmp_path, c, s, 40 + i)
        for i, (c, s) in enumerate((c, s) for c in COLOURS for s in SHAPES)
    ]
    for photo in photos:
        DetectionRepository(db).replace_detections(photo.id, [NewDetection(Box(16, 16, 96, 96, 0.9), None)], "t", "1")
    try:
        workers = [threading.Thread(target=lambda p=p: stage.process(p)) for p in photos]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert stage.clip_coordinator.items_run == len(photos) and stage.face_coordinator.items_run == len(photos)
    finally:
        stage.close()
    batched = {p.id: tags(db, p.id) for p in photos}
    direct = make_stage(db, tiny_settings)
    try:
        for photo in photos:
            direct.process(photo)
    finally:
        direct.close()
    for photo in photos:
        again = tags(db, photo.id)
        assert {k: [label for label, _ in v] for k, v in again.items()} == {
            k: [label for label, _ in v] for k, v in batched[photo.id].items()
        }
        for category, values in again.items():
            np.testing.assert_allclose([c for _, c in values], [c for _, c in batched[photo.id][category]], atol=1e-4)


def test_mobileclip_s2_random_weights_run_the_whole_path(db, settings, mobileclip_random, tmp_path):
    """The real architecture at full size, from where a user's download sits (MODELS_DIR)."""
    settings = settings.model_copy(
        update={"models_dir": mobileclip_random.weights.parent, "clip_model_sha256": mobileclip_random.sha256}
    )
    PromptRepository(db).save_categories([COLOUR_CATEGORY, FACE_COLOUR])
    stage = make_stage(db, settings)
    try:
        photo = shape_photo(db, settings, tmp_path, "red", "circle", 1)
        DetectionRepository(db).replace_detections(photo.id, [NewDetection(Box(16, 16, 96, 96, 0.9), None)], "t", "1")
        stage.process(photo)
    finally:
        stage.close()
    with db.connection() as conn:
        row = conn.execute(
            "SELECT model_name, embedding_dim FROM photo_embedding WHERE photo_id = %s", (photo.id,)
        ).fetchone()
        summary = conn.execute("SELECT clip_model, faces_tagged FROM scene_analysis").fetchone()
    assert row == ("mobileclip:s2", 512)
    assert summary == ("mobileclip:s2", 1)
    output = stage_output(db, photo.id)
    assert set(output["scene"]["colour"]["scores"]) == set(COLOURS) and len(output["faces"]) == 1


def test_apple_vision_off_macos_is_reported_once_per_run_not_per_photo(db, tiny_settings, tmp_path, caplog):
    import logging
    import sys

    if sys.platform == "darwin":
        pytest.skip("Apple Vision is available on macOS")
    PromptRepository(db).save_categories([COLOUR_CATEGORY])
    with caplog.at_level(logging.INFO, logger="photodb.stages.scene_analysis"):
        stage = make_stage(db, tiny_settings)
        try:
            for seed in range(3):
                stage.process(shape_photo(db, tiny_settings, tmp_path, "green", "circle", seed))
        finally:
            stage.close()
    reports = [r.getMessage() for r in caplog.records if "Apple Vision" in r.getMessage()]
    assert reports == [
        f"Apple Vision taxonomy unavailable: Apple Vision classification needs macOS (this is {sys.platform})"
    ]
    assert stage.taxonomy is None
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM photo_tag WHERE category = 'taxonomy'").fetchone()[0] == 0
        assert conn.execute("SELECT count(DISTINCT taxonomy_model) FROM scene_analysis").fetchone()[0] == 0


def test_offline_object_labels_become_photo_tags_when_the_labeler_is_installed(db, tiny_settings):
    """photodb.ml.object_labels (the packaged COCO detector) comes from another branch: this test
    runs once both are merged."""
    pytest.importorskip("photodb.ml.object_labels")
    from tests.samples import SAMPLES

    PromptRepository(db).save_categories([COLOUR_CATEGORY])
    stage = make_stage(db, tiny_settings)
    try:
        assert stage.object_labeler is not None
        photo = add_normalized_photo(db, tiny_settings, SAMPLES / "faces" / "face_recognition" / "obama.jpg")
        stage.process(photo)
        stage.process(photo)  # a rerun replaces
    finally:
        stage.close()
    model = stage.object_labeler.model_name
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT label, model_name FROM photo_tag WHERE photo_id = %s AND category = 'object' ORDER BY label",
            (photo.id,),
        ).fetchall()
        summary = conn.execute("SELECT object_model, scene_tags FROM scene_analysis").fetchone()
        outputs = conn.execute("SELECT count(*) FROM analysis_output WHERE model_name = %s", (model,)).fetchone()
    assert rows == [("person", model), ("tie", model)]
    assert summary[0] == model and sorted(summary[1]["object"]) == ["person", "tie"]
    assert outputs == (1,)


def test_process_local_runs_the_stage_after_detection(tmp_path, database_url, tiny_clip):
    """The real runner: registration, detection (offline set), then scene analysis in worker threads."""
    import psycopg

    from tests.cli import cli_env, process_local

    library = tmp_path / "lib"
    library.mkdir()
    expected = {}
    for seed, colour in enumerate(("red", "green", "blue")):
        draw_shape(colour, "square", np.random.default_rng(seed), size=64).resize((256, 256)).save(
            library / f"{colour}.png"
        )
        expected[f"{colour}.png"] = colour
    with psycopg.connect(database_url) as conn:  # the user's own set, so only colours are tagged
        conn.execute(
            "INSERT INTO prompt_category (name, target, selection_mode, min_confidence)"
            " VALUES ('colour', 'scene', 'single', 0.5)"
        )
        for colour in COLOURS:
            conn.execute(
                "INSERT INTO prompt (category_id, label, texts) SELECT id, %s, %s FROM prompt_category",
                (colour, [f"a {colour} {shape}" for shape in SHAPES]),
            )
    env = cli_env(
        tmp_path, database_url, DETECTION_BACKEND="offline", DETECTION_FORCE_CPU="true", **tiny_clip.environment()
    )
    result = process_local(str(library), "--parallel", "2", "--json", env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(database_url) as conn:
        found = dict(
            conn.execute(
                """SELECT p.filename, t.label FROM photo_tag t JOIN photo p ON p.id = t.photo_id
                   WHERE t.category = 'colour'"""
            ).fetchall()
        )
        statuses = conn.execute(
            "SELECT DISTINCT status FROM processing_status WHERE stage = 'scene_analysis'"
        ).fetchall()
    assert found == expected
    assert statuses == [("completed",)]
