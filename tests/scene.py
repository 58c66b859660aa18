"""Generated photos, prompt categories and stage handles for the scene analysis tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.models import Photo
from photodb.database.prompt_repository import PromptRepository
from photodb.database.repository import PhotoRepository
from photodb.prompts import CategorySpec
from photodb.stages.base import StageContext
from photodb.stages.scene_analysis import SceneAnalysisStage
from tests.photos import add_normalized_photo
from tests.tiny_clip import COLOURS, SHAPES, ClipFiles, draw_shape

COLOUR_CATEGORY = CategorySpec(
    "colour", "scene", "single", 0.5, None,
    {colour: tuple(f"a {colour} {shape}" for shape in SHAPES) for colour in COLOURS},
)  # fmt: skip
FACE_COLOUR = CategorySpec(
    "face_colour", "face", "single", 0.5, None,
    {colour: tuple(f"a {colour} {shape}" for shape in SHAPES) for colour in COLOURS},
)  # fmt: skip


@pytest.fixture
def tiny_settings(settings: Settings, tiny_clip: ClipFiles) -> Settings:
    return settings.model_copy(update={**tiny_clip.settings_overrides(), "detection_min_face_size": 8})


def make_stage(db: Database, settings: Settings, parallel: int = 1) -> SceneAnalysisStage:
    collection = PhotoRepository(db).get_or_create_collection("default")
    return SceneAnalysisStage(StageContext(settings, db, collection, parallel=parallel))


@pytest.fixture
def shapes_stage(db: Database, tiny_settings: Settings) -> Iterator[SceneAnalysisStage]:
    """The stage on the tiny model with only the colour prompts (the user's own set: no defaults)."""
    PromptRepository(db).save_categories([COLOUR_CATEGORY, FACE_COLOUR])
    stage = make_stage(db, tiny_settings)
    stage.ready()
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


def stage_output(db: Database, photo_id: int) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT output FROM analysis_output WHERE photo_id = %s", (photo_id,)).fetchone()[0]
