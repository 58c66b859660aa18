"""Stage 2: when and where a photo was taken and with what camera, read from the original file.

A photo with GPS also gets its place (country / region / city, `photodb.places`), stored with the
metadata in one transaction. The place is a bonus: when the geocoder cannot run (no ml extra, a
damaged data file, any error) the photo's metadata is still stored, its place stays empty, and
the reason is logged once per run; `photodb places backfill` fills it later.
"""

from __future__ import annotations

import logging
import threading
from pathlib import PurePosixPath

from PIL import UnidentifiedImageError

from photodb.database.models import Photo
from photodb.database.place_repository import GeocodedPlace
from photodb.database.repository import PhotoRepository
from photodb.places import place_for, place_index
from photodb.stages.base import BaseStage, StageContext, StageFailure
from photodb.utils.exif import extract_metadata
from photodb.utils.image import describe_open_failure

log = logging.getLogger(__name__)


class MetadataStage(BaseStage):
    name = "metadata"

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        self.repo = PhotoRepository(context.db)
        self._geocoder_warning = threading.Lock()
        self._geocoder_warned = False

    def process(self, photo: Photo) -> None:
        source = self.context.source_path(photo)
        try:
            if source.stat().st_size == 0:
                raise StageFailure("file is empty (0 bytes)")
            extracted = extract_metadata(source, PurePosixPath(photo.filename).name)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
            raise StageFailure(describe_open_failure(source, error)) from error
        row = extracted.as_row()
        self.repo.upsert_metadata(photo.id, row, self._geocode(row.get("latitude"), row.get("longitude")))

    def _geocode(self, latitude: float | None, longitude: float | None) -> GeocodedPlace | None:
        if latitude is None or longitude is None:
            return None
        try:
            return GeocodedPlace(place_for(latitude, longitude), place_index().source)
        except Exception as error:  # a place is never worth a photo's metadata
            with self._geocoder_warning:
                if not self._geocoder_warned:
                    self._geocoder_warned = True
                    log.warning("places left empty: %s (photodb places backfill fills them later)", error)
            return None
