"""Decoded normalized images shared by a run's stages: one decode per photo, the same pixels as each
stage's own decode, a rewritten file never served stale, and memory held to the byte budget."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.prompt_repository import PromptRepository
from photodb.database.repository import PhotoRepository
from photodb.stages.age_gender import AgeGenderStage
from photodb.stages.base import BaseStage, StageContext, StageFailure
from photodb.stages.decoded_images import BUDGET_PER_WORKER, DecodedImages, UndecodableImage, budget_for
from photodb.stages.detection import DetectionStage
from photodb.stages.scene_analysis import SceneAnalysisStage
from tests.photos import add_normalized_photo
from tests.samples import SAMPLES
from tests.scene import COLOUR_CATEGORY, FACE_COLOUR

BIDEN = SAMPLES / "faces/face_recognition/biden.jpg"


def png(path: Path, width: int, height: int, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, compress_level=1)
    return path


def test_an_image_is_decoded_once_read_only_with_the_pixels_each_stage_decoded_itself(tmp_path: Path):
    path = tmp_path / "biden.png"
    with Image.open(BIDEN) as source:
        source.convert("RGB").save(path, compress_level=1)
    images = DecodedImages(budget_for(1))
    first = images.rgb(path)
    assert images.rgb(path) is first and (images.decodes, images.hits) == (1, 1)
    assert not first.flags.writeable  # shared by the stages: nobody may draw on it
    with Image.open(path) as opened:  # what age_gender and scene_analysis decoded before
        assert np.array_equal(first, np.asarray(opened.convert("RGB")))
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)  # what detection decoded before
    assert np.array_equal(cv2.cvtColor(first, cv2.COLOR_RGB2BGR), bgr)


def test_a_file_rewritten_under_the_same_name_is_decoded_again(tmp_path: Path):
    path = png(tmp_path / "photo.png", 40, 30, seed=1)
    images = DecodedImages(budget_for(1))
    old = images.rgb(path)
    replacement = png(tmp_path / "new.png", 40, 30, seed=2)  # as normalize --force writes: a new file renamed over
    os.replace(replacement, path)
    new = images.rgb(path)
    assert not np.array_equal(old, new) and images.decodes == 2
    assert len(images) == 1 and images.held_bytes == new.nbytes  # the old version is dropped


def test_memory_is_held_to_the_budget_least_recently_used_first_out(tmp_path: Path):
    paths = [png(tmp_path / f"{i}.png", 100, 100, seed=i) for i in range(3)]
    one = 100 * 100 * 3
    images = DecodedImages(2 * one)
    images.rgb(paths[0])
    images.rgb(paths[1])
    images.rgb(paths[0])  # 0 used last: 1 goes first
    images.rgb(paths[2])
    assert len(images) == 2 and images.held_bytes == 2 * one
    images.rgb(paths[0])
    assert images.decodes == 3  # 0 was still there
    images.rgb(paths[1])
    assert images.decodes == 4  # 1 had been evicted
    assert images.held_bytes <= images.budget_bytes

    large = png(tmp_path / "large.png", 200, 200, seed=9)
    assert images.rgb(large).shape == (200, 200, 3)  # over the whole budget: handed over, not kept
    assert images.held_bytes <= images.budget_bytes and len(images) == 2


def test_the_budget_grows_with_the_workers_of_a_run():
    assert budget_for(1) == budget_for(2) == 2 * BUDGET_PER_WORKER
    assert budget_for(8) == 8 * BUDGET_PER_WORKER


def test_missing_and_undecodable_files_raise(tmp_path: Path):
    images = DecodedImages(budget_for(1))
    with pytest.raises(FileNotFoundError):
        images.rgb(tmp_path / "gone.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UndecodableImage):
        images.rgb(tmp_path / "text.png")
    assert len(images) == 0


def test_an_undecodable_normalized_file_is_a_clear_failure_of_every_stage(db: Database, settings: Settings):
    photo = add_normalized_photo(db, settings, BIDEN)
    (settings.images_dir / str(photo.normalized_path)).write_bytes(b"\x89PNG broken")
    context = StageContext(settings, db, PhotoRepository(db).get_or_create_collection("default"))
    with pytest.raises(StageFailure, match=r"cannot decode normalized image .*\.png"):
        context.normalized_rgb(photo)


def stored(db: Database, photo_id: int) -> list[tuple]:
    """Everything detection leaves alone and scene_analysis and age_gender write for the photo."""
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT id, age_estimate, gender, gender_confidence, mivolo_output FROM person_detection
               WHERE photo_id = %s ORDER BY id""",
            (photo_id,),
        ).fetchall()
        rows += conn.execute(
            "SELECT category, label, confidence FROM photo_tag WHERE photo_id = %s ORDER BY category, label",
            (photo_id,),
        ).fetchall()
        rows += conn.execute(
            """SELECT t.category, t.label, t.confidence FROM detection_tag t
               JOIN person_detection d ON d.id = t.person_detection_id
               WHERE d.photo_id = %s ORDER BY t.category, t.label""",
            (photo_id,),
        ).fetchall()
        rows += conn.execute("SELECT embedding::text FROM photo_embedding WHERE photo_id = %s", (photo_id,)).fetchall()
    return rows


def test_the_stages_of_a_run_decode_a_photo_once_and_store_what_their_own_decodes_store(
    db: Database, tiny_settings: Settings
):
    settings = tiny_settings.model_copy(update={"detection_backend": "offline", "detection_force_cpu": True})
    PromptRepository(db).save_categories([COLOUR_CATEGORY, FACE_COLOUR])
    collection = PhotoRepository(db).get_or_create_collection("default")
    photo = add_normalized_photo(db, settings, BIDEN)

    shared = StageContext(settings, db, collection)  # as process-local builds the run's stages
    stages: list[BaseStage] = [DetectionStage(shared), SceneAnalysisStage(shared), AgeGenderStage(shared)]
    for stage in stages:
        stage.process(photo)
        stage.close()
    assert (shared.images.decodes, shared.images.hits) == (1, 2)
    together = stored(db, photo.id)
    assert together[0][1] is not None and len(together) >= 4  # an estimate, tags and an embedding were written

    for stage_type in (SceneAnalysisStage, AgeGenderStage):  # each on its own: it decodes the PNG itself
        own = StageContext(settings, db, collection)
        alone = stage_type(own)
        alone.process(photo)
        alone.close()
        assert own.images.decodes == 1
    assert stored(db, photo.id) == together
