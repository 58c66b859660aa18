"""The scene analysis stage end to end on a real database with real CLIP models built at test time:
a tiny CLIP trained on coloured shapes (known right answers) and MobileCLIP-S2 with random weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.detection_repository import DetectionRepository, NewDetection
from photodb.database.models import Photo
from photodb.database.prompt_repository import PromptRepository
from photodb.database.repository import PhotoRepository
from photodb.database.scene_repository import FaceBox, SceneRepository
from photodb.ml.boxes import Box
from photodb.ml.clip import create_clip_model
from photodb.prompts import CategorySpec
from photodb.stages import PIPELINE_ORDER, stage_class
from photodb.stages.base import StageContext, StageFailure, StageSkipped
from photodb.stages.scene_analysis import SceneAnalysisStage, _face_crop
from tests.photos import add_normalized_photo
from tests.tiny_clip import COLOURS, SHAPES, ClipFiles, draw_shape, mobileclip_random, tiny_clip  # noqa: F401

COLOUR_CATEGORY = CategorySpec(
    "colour", "scene", "single", 0.5, None,
    {colour: tuple(f"a {colour} {shape}" for shape in SHAPES) for colour in COLOURS},
)  # fmt: skip
FACE_COLOUR = CategorySpec(
    "face_colour", "face", "single", 0.5, None,
    {colour: tuple(f"a {colour} {shape}" for shape in SHAPES) for colour in COLOURS},
)  # fmt: skip


@pytest.fixture
def tiny_settings(settings: Settings, tiny_clip: ClipFiles) -> Settings:  # noqa: F811
    return settings.model_copy(update={**tiny_clip.settings_overrides(), "detection_min_face_size": 8})


def make_stage(db: Database, settings: Settings, parallel: int = 1) -> SceneAnalysisStage:
    collection = PhotoRepository(db).get_or_create_collection("default")
    return SceneAnalysisStage(StageContext(settings, db, collection, parallel=parallel))


@pytest.fixture
def shapes_stage(db: Database, tiny_settings: Settings) -> Iterator[SceneAnalysisStage]:
    """The stage on the tiny model, with only the shape prompts (the user's own set: no defaults)."""
    PromptRepository(db).save_categories([COLOUR_CATEGORY, FACE_COLOUR])
    stage = make_stage(db, tiny_settings)
    yield stage
    stage.close()


def add_image(db: Database, settings: Settings, image: Image.Image, path: Path) -> Photo:
    image.save(path)
    return add_normalized_photo(db, settings, path)


def shape_photo(db: Database, settings: Settings, tmp_path: Path, colour: str, shape: str, seed: int) -> Photo:
    image = draw_shape(colour, shape, np.random.default_rng(seed), size=64).resize((128, 128), Image.NEAREST)
    return add_image(db, settings, image, tmp_path / f"{colour}-{shape}-{seed}.png")


def tags(db: Database, photo_id: int) -> dict[str, list[tuple[str, float]]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT category, label, confidence FROM photo_tag WHERE photo_id = %s ORDER BY category, confidence DESC",
            (photo_id,),
        ).fetchall()
    found: dict[str, list[tuple[str, float]]] = {}
    for category, label, confidence in rows:
        found.setdefault(category, []).append((label, confidence))
    return found


def count(db: Database, table: str) -> int:
    with db.connection() as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names


def test_scene_analysis_runs_after_detection_and_before_age_gender():
    assert stage_class("scene_analysis") is SceneAnalysisStage
    assert SceneAnalysisStage.depends_on == ("detection",)
    assert (
        PIPELINE_ORDER.index("detection") < PIPELINE_ORDER.index("scene_analysis") < PIPELINE_ORDER.index("age_gender")
    )


def test_zero_shot_tags_name_the_colour_and_shape_of_generated_photos(db, tiny_settings, shapes_stage, tmp_path):
    photos = {
        (colour, shape): shape_photo(db, tiny_settings, tmp_path, colour, shape, seed)
        for seed, (colour, shape) in enumerate((c, s) for c in COLOURS for s in SHAPES)
    }
    for photo in photos.values():
        shapes_stage.process(photo)
    for (colour, shape), photo in photos.items():
        found = tags(db, photo.id)
        assert [label for label, _ in found["colour"]] == [colour], (colour, shape, found)
        assert found["colour"][0][1] >= 0.5
    with db.connection() as conn:
        summary = conn.execute(
            "SELECT clip_model, scene_tags, faces_tagged FROM scene_analysis WHERE photo_id = %s",
            (photos[("red", "circle")].id,),
        ).fetchone()
        output = conn.execute(
            "SELECT model_name, output FROM analysis_output WHERE photo_id = %s", (photos[("red", "circle")].id,)
        ).fetchone()
    assert summary == ("openclip:TinyCLIP-shapes", {"colour": ["red"]}, 0)
    assert output[0] == "openclip:TinyCLIP-shapes"
    scores = output[1]["scene"]["colour"]["scores"]
    assert set(scores) == set(COLOURS) and max(scores, key=lambda k: scores[k]["probability"]) == "red"


def test_a_face_crop_is_tagged_by_the_face_categories(db, tiny_settings, shapes_stage, tmp_path):
    """Two tiles: a red circle, then a blue triangle under the face box: the face is blue."""
    rng = np.random.default_rng(7)
    canvas = Image.new("RGB", (128, 64))
    canvas.paste(draw_shape("red", "circle", rng), (0, 0))
    canvas.paste(draw_shape("blue", "triangle", rng), (64, 0))
    photo = add_image(db, tiny_settings, canvas, tmp_path / "two.png")
    DetectionRepository(db).replace_detections(
        photo.id, [NewDetection(Box(72, 8, 48, 48, 0.9), None), NewDetection(None, Box(0, 0, 60, 60, 0.9))], "t", "1"
    )
    shapes_stage.process(photo)
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT d.face_bbox_x, t.category, t.label FROM detection_tag t
               JOIN person_detection d ON d.id = t.person_detection_id WHERE d.photo_id = %s""",
            (photo.id,),
        ).fetchall()
        faces_tagged = conn.execute(
            "SELECT faces_tagged FROM scene_analysis WHERE photo_id = %s", (photo.id,)
        ).fetchone()
    assert rows == [(72.0, "face_colour", "blue")]  # the body-only detection has no face to tag
    assert faces_tagged == (1,)


def test_face_crops_are_squares_with_context_kept_inside_the_image():
    image = Image.new("RGB", (200, 100))
    assert _face_crop(image, FaceBox(1, 90, 40, 20, 40)).size == (60, 60)
    corner = _face_crop(image, FaceBox(1, 0, 0, 20, 20))
    assert corner.size == (30, 30)
    assert _face_crop(image, FaceBox(1, 150, 0, 50, 100)).size == (100, 100)  # capped by the short side


def test_force_rerun_replaces_rows_without_duplicates(db, tiny_settings, shapes_stage, tmp_path):
    photo = shape_photo(db, tiny_settings, tmp_path, "green", "square", 3)
    DetectionRepository(db).replace_detections(photo.id, [NewDetection(Box(20, 20, 60, 60, 0.9), None)], "t", "1")
    shapes_stage.process(photo)
    before = {
        t: count(db, t) for t in ("photo_tag", "detection_tag", "analysis_output", "scene_analysis", "photo_embedding")
    }
    with db.connection() as conn:
        conn.execute(
            "INSERT INTO photo_tag (photo_id, category, label, confidence, model_name)"
            " VALUES (%s, 'llm', 'x', 1, 'llm')",
            (photo.id,),
        )
    shapes_stage.process(photo)
    shapes_stage.process(photo)
    after = {t: count(db, t) for t in before}
    assert after == {**before, "photo_tag": before["photo_tag"] + 1}  # another writer's tag stays
    assert before["detection_tag"] == 1 and before["photo_embedding"] == 1
    assert tags(db, photo.id)["colour"][0][0] == "green"


def test_image_embeddings_are_stored_and_a_text_finds_its_photo(db, tiny_settings, shapes_stage, tmp_path):
    photos = {
        (colour, shape): shape_photo(db, tiny_settings, tmp_path, colour, shape, 100 + i)
        for i, (colour, shape) in enumerate([("red", "circle"), ("green", "triangle"), ("blue", "square")])
    }
    for photo in photos.values():
        shapes_stage.process(photo)
    with db.connection() as conn:
        dims = conn.execute("SELECT DISTINCT embedding_dim, model_name FROM photo_embedding").fetchall()
    model = create_clip_model(tiny_settings)
    assert dims == [(model.embedding_dim, "openclip:TinyCLIP-shapes")]
    repository = SceneRepository(db)
    for (colour, shape), photo in photos.items():
        query = model.encode_texts([f"a {colour} {shape}"])[0]
        nearest = repository.nearest_photos(model.model_name, query, limit=3)
        assert nearest[0][0] == photo.id, (colour, shape, nearest)
        assert [d for _, d in nearest] == sorted(d for _, d in nearest)
    assert repository.nearest_photos("another-model", query) == []


def test_a_label_added_with_photodb_prompts_add_is_used_once_the_cache_checks(
    db, tiny_settings, shapes_stage, tmp_path, database_url
):
    from photodb.prompts.cache import PROMPT_CHECK_SECONDS
    from tests.test_cli_photodb import photodb

    now = [0.0]
    shapes_stage.prompts.clock = lambda: now[0]
    shapes_stage.prompts.invalidate()
    photo = shape_photo(db, tiny_settings, tmp_path, "blue", "circle", 11)
    shapes_stage.process(photo)
    loads = shapes_stage.prompts.loads
    for label, colours in (("warm", ("red",)), ("cool", ("blue", "green"))):
        texts = [arg for colour in colours for shape in SHAPES for arg in ("-t", f"a {colour} {shape}")]
        added = photodb(tmp_path, database_url, "prompts", "add", "warmth", label, *texts, "--min-confidence", "0.5")
        assert added.returncode == 0, added.stderr
    now[0] += PROMPT_CHECK_SECONDS / 2
    shapes_stage.process(photo)
    assert "warmth" not in tags(db, photo.id)  # within the check interval: the cached set is used
    now[0] += PROMPT_CHECK_SECONDS
    shapes_stage.process(photo)
    assert [label for label, _ in tags(db, photo.id)["warmth"]] == ["cool"]
    assert shapes_stage.prompts.loads == loads + 1
    assert PromptRepository(db).to_embed("openclip:TinyCLIP-shapes") == []  # the stage embedded the new labels

    photodb(tmp_path, database_url, "prompts", "add", "warmth", "--disable")
    shapes_stage.prompts.invalidate()  # an explicit invalidate checks at once
    shapes_stage.process(photo)
    assert "warmth" not in tags(db, photo.id)


def test_single_and_multi_selection_with_thresholds(db, tiny_settings, tmp_path):
    """Two labels with the same texts split the probability evenly: multi keeps both, single the
    first, and a threshold above what either gets keeps none."""
    red = tuple(f"a red {shape}" for shape in SHAPES)
    labels = {"red": red, "scarlet": red, "blue": ("a blue circle",)}
    PromptRepository(db).save_categories(
        [
            CategorySpec("reds_multi", "scene", "multi", 0.2, None, labels),
            CategorySpec("reds_single", "scene", "single", 0.2, None, labels),
            CategorySpec("reds_strict", "scene", "multi", 0.9, None, labels),
        ]
    )
    stage = make_stage(db, tiny_settings)
    try:
        photo = shape_photo(db, tiny_settings, tmp_path, "red", "square", 21)
        stage.process(photo)
    finally:
        stage.close()
    probabilities = {
        k: v["probability"] for k, v in stage_output(db, photo.id)["scene"]["reds_multi"]["scores"].items()
    }
    assert probabilities["blue"] < 0.05 and min(probabilities["red"], probabilities["scarlet"]) >= 0.2
    assert max(probabilities.values()) < 0.9
    assert probabilities["red"] == probabilities["scarlet"]
    found = tags(db, photo.id)
    assert [label for label, _ in found["reds_multi"]] == ["red", "scarlet"]
    assert [label for label, _ in found["reds_single"]] == ["red"]  # a tie goes to the first label
    assert "reds_strict" not in found


def stage_output(db: Database, photo_id: int) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT output FROM analysis_output WHERE photo_id = %s", (photo_id,)).fetchone()[0]


def test_the_defaults_are_stored_and_embedded_at_stage_start(db, tiny_settings):
    stage = make_stage(db, tiny_settings)
    stage.close()
    repository = PromptRepository(db)
    assert {r.name for r in repository.list_categories()} >= {"mood", "emotion", "gaze"}
    assert repository.to_embed("openclip:TinyCLIP-shapes") == []


def test_without_the_clip_file_photos_are_skipped_with_the_message(db, settings, tmp_path):
    stage = make_stage(db, settings.model_copy(update={"models_dir": tmp_path / "no-models"}))
    missing = tmp_path / "no-models" / "mobileclip_s2.safetensors"
    assert stage.skip_reason == f"model not found: {missing}: run scripts/download_models.sh or set CLIP_MODEL_PATH"
    photo = shape_photo(db, settings, tmp_path, "red", "circle", 1)
    with pytest.raises(StageSkipped, match=r"model not found: .*set CLIP_MODEL_PATH"):
        stage.process(photo)
    assert count(db, "scene_analysis") == 0


def test_a_missing_normalized_file_is_a_clear_failure(db, tiny_settings, shapes_stage, tmp_path):
    photo = shape_photo(db, tiny_settings, tmp_path, "red", "circle", 1)
    (tiny_settings.images_dir / photo.normalized_path).unlink()
    with pytest.raises(StageFailure, match=r"normalized image missing: .*rerun the normalize stage"):
        shapes_stage.process(photo)


def test_batch_coordinators_give_the_same_tags_as_direct_calls(db, tiny_settings, tmp_path):
    import threading

    PromptRepository(db).save_categories([COLOUR_CATEGORY, FACE_COLOUR])
    settings = tiny_settings.model_copy(update={"batch_coordinator_on_cpu": True, "batch_coordinator_max_wait_ms": 20})
    stage = make_stage(db, settings, parallel=4)
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


def test_mobileclip_s2_random_weights_run_the_whole_path(db, settings, mobileclip_random, tmp_path):  # noqa: F811
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
