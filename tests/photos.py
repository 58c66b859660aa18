"""Photo rows as the normalize stage leaves them, for tests that start at a later stage."""

from __future__ import annotations

import uuid
from pathlib import Path

from PIL import Image, ImageOps

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.models import Photo
from photodb.database.repository import PhotoRepository


def add_normalized_photo(db: Database, settings: Settings, source: Path, *, mirror: bool = False) -> Photo:
    """A photo row in the default collection whose normalized PNG exists (mirrored: another photo
    of the same people)."""
    photo_uuid = uuid.uuid4()
    settings.images_dir.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        normalized = ImageOps.exif_transpose(image).convert("RGB")
    if mirror:
        normalized = ImageOps.mirror(normalized)
    normalized.save(settings.images_dir / f"{photo_uuid}.png", compress_level=1)
    with db.connection() as conn:
        row = conn.execute(
            """INSERT INTO photo (collection_id, uuid, filename, normalized_path, normalized_width, normalized_height)
               VALUES ((SELECT id FROM collection WHERE name = 'default'), %s, %s, %s, %s, %s) RETURNING id""",
            (photo_uuid, f"{photo_uuid}-{source.name}", f"{photo_uuid}.png", *normalized.size),
        ).fetchone()
    assert row is not None
    return PhotoRepository(db).get_photo(row[0])
