"""Face thumbnails: the stored face box cropped from the normalized PNG, cached as JPEG under
PHOTODB_HOME so a page of faces decodes each photo once."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from photodb.database import web_queries
from photodb.database.connection import Database
from photodb.utils.private import write_private

THUMBNAIL_SIZE = 160
PHOTO_SIZE = 320
#: Context around the face box, as a share of its size on each side.
MARGIN = 0.2


class ThumbnailMissing(LookupError):
    """No face box or no normalized image for this face."""


def cache_dir(photodb_home: Path) -> Path:
    return photodb_home.expanduser() / "cache" / "web-faces"


def face_thumbnail(db: Database, images_dir: Path, cache: Path, detection_id: int) -> Path:
    """The cached thumbnail of a face, made on first use."""
    target = cache / f"{detection_id}.jpg"
    if target.exists():
        return target
    with db.connection() as conn:
        box = web_queries.face_box(conn, detection_id)
    if box is None or box.normalized_path is None:
        raise ThumbnailMissing(f"face {detection_id} has no face box or normalized image")
    source = images_dir / box.normalized_path
    if not source.is_file():
        raise ThumbnailMissing(f"normalized image missing: {source}")
    with Image.open(source) as image:
        pad_x, pad_y = box.width * MARGIN, box.height * MARGIN
        crop = image.convert("RGB").crop(
            (
                max(0, int(box.x - pad_x)),
                max(0, int(box.y - pad_y)),
                min(image.width, int(box.x + box.width + pad_x)),
                min(image.height, int(box.y + box.height + pad_y)),
            )
        )
    return _save(crop, target, THUMBNAIL_SIZE)


def photo_thumbnail(db: Database, images_dir: Path, cache: Path, photo_id: int) -> Path:
    """The cached thumbnail of a whole photo (its normalized PNG), for search results."""
    target = cache / f"photo-{photo_id}.jpg"
    if target.exists():
        return target
    with db.connection() as conn:
        relative = web_queries.normalized_path(conn, photo_id)
    source = images_dir / relative if relative else None
    if source is None or not source.is_file():
        raise ThumbnailMissing(f"photo {photo_id} has no normalized image")
    with Image.open(source) as image:
        return _save(image.convert("RGB"), target, PHOTO_SIZE)


def _save(image: Image.Image, target: Path, size: int) -> Path:
    """Shrink and store as JPEG, the owner's only (utils.private)."""
    image.thumbnail((size, size))
    return write_private(target, lambda out: image.save(out, format="JPEG", quality=85))
