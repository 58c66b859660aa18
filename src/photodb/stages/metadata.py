"""Stage 2: when and where a photo was taken and with what camera, read from the original file."""

from __future__ import annotations

from pathlib import PurePosixPath

from PIL import UnidentifiedImageError

from photodb.database.models import Photo
from photodb.database.repository import PhotoRepository
from photodb.stages.base import BaseStage, StageContext, StageFailure
from photodb.utils.exif import extract_metadata
from photodb.utils.image import describe_open_failure


class MetadataStage(BaseStage):
    name = "metadata"

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        self.repo = PhotoRepository(context.db)

    def process(self, photo: Photo) -> None:
        source = self.context.source_path(photo)
        try:
            if source.stat().st_size == 0:
                raise StageFailure("file is empty (0 bytes)")
            extracted = extract_metadata(source, PurePosixPath(photo.filename).name)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
            raise StageFailure(describe_open_failure(source, error)) from error
        self.repo.upsert_metadata(photo.id, extracted.as_row())
