"""Stage 1: one upright RGB PNG per photo, which every later stage reads instead of the original."""

from __future__ import annotations

from photodb.database.models import Photo
from photodb.database.repository import PhotoRepository
from photodb.stages.base import BaseStage, StageContext, StageFailure
from photodb.utils.image import ImageError, load_image, save_png
from photodb.utils.private import private_dir


class NormalizeStage(BaseStage):
    name = "normalize"

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        self.repo = PhotoRepository(context.db)
        private_dir(context.settings.images_dir)

    def process(self, photo: Photo) -> None:
        settings = self.context.settings
        try:
            loaded = load_image(
                self.context.source_path(photo),
                settings.max_image_pixels,
                settings.resize_scale,
                settings.normalize_max_side,
            )
        except ImageError as error:
            raise StageFailure(str(error)) from error
        file_name = f"{photo.uuid}.png"
        save_png(loaded.image, settings.images_dir / file_name, settings.png_compress_level)
        self.repo.set_normalized(photo.id, file_name, loaded.original_size, loaded.image.size, loaded.scale)
