"""The scene analysis stage end to end on a real database with real CLIP models built at test time:
a tiny CLIP trained on coloured shapes (known right answers) and MobileCLIP-S2 with random weights."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from photodb.database.detection_repository import DetectionRepository, NewDetection
from photodb.database.prompt_repository import PromptRepository
from photodb.database.scene_repository import FaceBox, SceneRepository
from photodb.ml.boxes import Box
from photodb.ml.clip import create_clip_model
from photodb.prompts import CategorySpec
from photodb.stages import PIPELINE_ORDER, stage_class
from photodb.stages.base import StageFailure, StageSkipped
from photodb.stages.scene_analysis import SceneAnalysisStage, _face_crop
from tests.photos import add_normalized_photo
from tests.scene import (
    add_image,
    count,
    make_stage,
    shape_photo,
    stage_output,
    tags,
)
from tests.tiny_clip import COLOURS, SHAPES, draw_shape


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


def test_the_defaults_are_stored_and_embedded_when_the_stage_gets_ready(db, tiny_settings):
    stage = make_stage(db, tiny_settings)
    stage.ready()
    stage.close()
    repository = PromptRepository(db)
    assert {r.name for r in repository.list_categories()} >= {"mood", "emotion", "gaze"}
    assert repository.to_embed("openclip:TinyCLIP-shapes") == []


def test_without_the_clip_file_or_a_labeller_the_stage_skips_with_the_message(db, settings, tmp_path):
    no_models = settings.model_copy(update={"models_dir": tmp_path / "no-models", "object_labels_enabled": False})
    stage = make_stage(db, no_models)
    missing = tmp_path / "no-models" / "mobileclip_s2.safetensors"
    assert stage.skip_reason == f"model not found: {missing}: run scripts/download_models.sh or set CLIP_MODEL_PATH"
    photo = shape_photo(db, settings, tmp_path, "red", "circle", 1)
    with pytest.raises(StageSkipped, match=r"model not found: .*set CLIP_MODEL_PATH"):
        stage.process(photo)
    assert count(db, "scene_analysis") == 0


def test_without_the_clip_file_object_labels_are_stored_and_the_photo_is_skipped(db, settings, tmp_path):
    """Object labels need no download: a library gets them even before the CLIP weights arrive."""
    pytest.importorskip("photodb.ml.object_labels")
    from tests.samples import SAMPLES

    stage = make_stage(db, settings.model_copy(update={"models_dir": tmp_path / "no-models"}))
    try:
        assert stage.skip_reason is None and stage.object_labeler is not None
        photo = add_normalized_photo(db, settings, SAMPLES / "faces" / "face_recognition" / "obama.jpg")
        for _ in range(2):  # a rerun replaces
            with pytest.raises(StageSkipped, match=r"model not found: .*set CLIP_MODEL_PATH"):
                stage.process(photo)
    finally:
        stage.close()
    with db.connection() as conn:
        labels = conn.execute(
            "SELECT label FROM photo_tag WHERE photo_id = %s AND category = 'object' ORDER BY label", (photo.id,)
        ).fetchall()
        summary = conn.execute("SELECT clip_model, object_model FROM scene_analysis").fetchall()
        embeddings = conn.execute("SELECT count(*) FROM photo_embedding").fetchone()
    assert labels == [("person",), ("tie",)]
    assert summary == [(None, stage.object_labeler.model_name)] and embeddings == (0,)


def test_a_missing_normalized_file_is_a_clear_failure(db, tiny_settings, shapes_stage, tmp_path):
    photo = shape_photo(db, tiny_settings, tmp_path, "red", "circle", 1)
    (tiny_settings.images_dir / photo.normalized_path).unlink()
    with pytest.raises(StageFailure, match=r"normalized image missing: .*rerun the normalize stage"):
        shapes_stage.process(photo)
