"""Request building: the image sized for the provider, the smaller encoding, the context from the database."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.enrich_repository import EnrichRepository
from photodb.enrich.request import (
    ANTHROPIC_IMAGE_LIMITS,
    ImageLimits,
    ImageUnusable,
    encode_image,
    photo_id_from,
    system_prompt,
)
from tests.enrich.conftest import add_photos
from tests.imaging import gradient


def decoded(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_a_large_photo_is_downscaled_to_the_providers_limits_as_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    gradient(4000, 3000, seed=3).save(path)
    image = encode_image(path, ANTHROPIC_IMAGE_LIMITS)
    assert image.media_type == "image/jpeg"
    assert max(image.width, image.height) <= 1568 and image.width * image.height <= 1_150_000
    assert abs(image.width / image.height - 4 / 3) < 0.01
    assert decoded(image.data).size == (image.width, image.height)
    assert "base64 bytes" in repr(image) and image.data[:32] not in repr(image)  # never the bytes in a log


def test_a_few_colour_picture_goes_as_png_when_that_is_smaller(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    chart = Image.new("RGB", (800, 600), "white")
    draw = ImageDraw.Draw(chart)
    for index in range(8):
        draw.rectangle((index * 90 + 20, 600 - index * 60, index * 90 + 90, 600), fill=(30 * index, 80, 200))
    chart.save(path)
    image = encode_image(path, ANTHROPIC_IMAGE_LIMITS)
    assert image.media_type == "image/png"
    assert decoded(image.data).format == "PNG" and (image.width, image.height) == (800, 600)  # never enlarged


def test_the_byte_limit_lowers_quality_then_size(tmp_path: Path) -> None:
    path = tmp_path / "noisy.png"
    Image.effect_noise((1200, 900), 120).convert("RGB").save(path)
    image = encode_image(path, ImageLimits(max_long_side=1568, max_pixels=1_150_000, max_base64_bytes=60_000))
    assert len(image.data) <= 60_000
    assert image.width < 1200


def test_an_unreadable_image_is_the_photos_failure(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageUnusable, match=r"normalized image unreadable: broken\.png"):
        encode_image(path, ANTHROPIC_IMAGE_LIMITS)
    with pytest.raises(ImageUnusable):
        encode_image(tmp_path / "missing.png", ANTHROPIC_IMAGE_LIMITS)


def test_custom_ids_map_back_only_to_photo_ids() -> None:
    assert photo_id_from("photo-42") == 42
    assert photo_id_from("photo-") is None and photo_id_from("other-42") is None and photo_id_from("") is None


def test_system_prompt_is_shipped_with_the_package_and_carries_the_schema() -> None:
    text = system_prompt()
    assert text.startswith("You catalogue photos") and '"PhotoAnalysisResponse"' in text


def test_context_has_date_place_camera_people_names_and_tags(db: Database, settings: Settings, tmp_path: Path) -> None:
    (photo_id,) = add_photos(db, settings, tmp_path / "lib", 1)
    with db.connection() as conn:
        anna = conn.execute(
            """INSERT INTO person (collection_id, first_name, last_name, created_by)
               VALUES (1, 'Anna', 'Berg', 'user') RETURNING id"""
        ).fetchone()[0]
        ben = conn.execute(
            "INSERT INTO person (collection_id, first_name, created_by) VALUES (1, 'Ben', 'user') RETURNING id"
        ).fetchone()[0]
        hidden = conn.execute(
            """INSERT INTO person (collection_id, first_name, hidden, created_by)
               VALUES (1, 'Hidden', true, 'user') RETURNING id"""
        ).fetchone()[0]
        placeholder = conn.execute(  # auto-association's 'Unknown': not a name to tell the model
            """INSERT INTO person (collection_id, first_name, auto_created, created_by)
               VALUES (1, 'Unknown', true, 'auto:associate') RETURNING id"""
        ).fetchone()[0]
        cluster = conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model, person_id) VALUES (1, 'sface', %s) RETURNING id",
            (ben,),
        ).fetchone()[0]
        for person_id, cluster_id in ((anna, None), (None, cluster), (hidden, None), (placeholder, None), (None, None)):
            conn.execute(
                """INSERT INTO person_detection (photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height,
                                                 person_id, cluster_id)
                   VALUES (%s, 1, 1, 10, 10, %s, %s)""",
                (photo_id, person_id, cluster_id),
            )
        for label, confidence in (("beach", 0.9), ("sunset", 0.7), ("beach", 0.5)):
            conn.execute(
                """INSERT INTO photo_tag (photo_id, category, label, confidence, model_name)
                   VALUES (%s, 'scene', %s, %s, %s)""",
                (photo_id, label, confidence, f"m{confidence}"),
            )
    (photo,) = EnrichRepository(db).photo_inputs([photo_id])
    text = photo.context.render()
    assert text.splitlines() == [
        "Context from the photo library:",
        "- captured: 2021-07-14 15:30",
        "- GPS: 46.50000, 7.90000",
        "- camera: Canon EOS R6",
        "- people detected: 5",
        "- known persons in the photo: Anna Berg, Ben",
        "- scene tags: beach, sunset",
    ]


def test_default_models_are_current_and_priced() -> None:
    from typing import get_args

    from anthropic.types import ModelParam

    from photodb.enrich.pricing import price_for

    listed = get_args(get_args(ModelParam)[0])
    default = Settings.model_fields["llm_model"].default
    assert default in listed and price_for(default) is not None
    assert price_for(Settings.model_fields["bedrock_model_id"].default) is not None
