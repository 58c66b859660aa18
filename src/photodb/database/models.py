"""Plain records read from the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    root_path: Path | None


@dataclass(frozen=True)
class Photo:
    id: int
    collection_id: int
    uuid: UUID
    filename: str
    file_size: int | None
    content_hash: str | None
    normalized_path: str | None
    width: int | None
    height: int | None
    normalized_width: int | None
    normalized_height: int | None
    normalized_scale: float | None = None  # normalized pixels per original pixel
    collection_root: str | None = None  # the collection's root when the photo was read


@dataclass(frozen=True)
class Claim:
    """One (photo, stage) unit of work held by a worker."""

    photo_id: int
    stage: str
    attempts: int


@dataclass(frozen=True)
class StageCounts:
    pending: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    blocked: int = 0  # pending behind a failed earlier stage
    skipped: int = 0  # the stage could not run here (a model is missing); the next run that can, does

    @property
    def total(self) -> int:
        return self.pending + self.processing + self.completed + self.failed + self.blocked + self.skipped

    @property
    def settled(self) -> int:
        """Rows this run will not touch again: done, failed, skipped, or behind a failure."""
        return self.completed + self.failed + self.blocked + self.skipped


@dataclass(frozen=True)
class StageError:
    photo_id: int
    filename: str
    stage: str
    message: str
    at: datetime | None
