"""Small real stages for the runner's tests, registered through IMPLEMENTED_STAGES (see `register`).

They take the queue names scene_analysis and age_gender (the only ones processing_status accepts)
and run through the real runner, queue and database. TinySceneStage needs a model file under
MODELS_DIR, as the real model stages do: without it it sets `skip_reason`. TinyAgeStage depends on
it, so a test can see that a skipped photo does not hold its dependents back.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from photodb import stages
from photodb.stages.base import BaseStage, StageContext, StageSkipped
from photodb.stages.detection import DetectionStage

if TYPE_CHECKING:
    import pytest

    from photodb.database.models import Photo

TINY = {"scene_analysis": "TinySceneStage", "age_gender": "TinyAgeStage", "detection": "RecordingDetectionStage"}

MODEL_FILE = "tiny-scene-model.txt"
#: A photo whose name holds this is skipped by TinySceneStage even with its model present.
SKIPPED_NAME = "panorama"
SKIP_MESSAGE = "no model for panoramas here"

_lock = threading.Lock()
#: (stage, photo filename) for every `process` call; ("init", stage) for every construction.
CALLS: list[tuple[str, str]] = []


def _record(event: str, what: str) -> None:
    with _lock:
        CALLS.append((event, what))


def register(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make the named stages (of scene_analysis, age_gender, detection) the tiny ones for this test."""
    for name in names:
        monkeypatch.setitem(stages.IMPLEMENTED_STAGES, name, f"{__name__}:{TINY[name]}")
    CALLS.clear()


def install_model(models_dir: Path) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    (models_dir / MODEL_FILE).write_text("weights")


def processed(stage: str) -> list[str]:
    with _lock:
        return sorted(name for event, name in CALLS if event == stage)


def constructed() -> list[str]:
    with _lock:
        return [name for event, name in CALLS if event == "init"]


class TinySceneStage(BaseStage):
    name = "scene_analysis"
    depends_on = ("normalize",)

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        _record("init", self.name)
        model = context.settings.models_root / MODEL_FILE
        if not model.is_file():
            self.skip_reason = f"model not found: {model}: run scripts/download_models.sh"

    def process(self, photo: Photo) -> None:
        assert self.skip_reason is None, "the runner called a stage that cannot run"
        if SKIPPED_NAME in photo.filename:
            raise StageSkipped(SKIP_MESSAGE)
        _record(self.name, photo.filename)


class TinyAgeStage(BaseStage):
    name = "age_gender"
    depends_on = ("scene_analysis",)

    def __init__(self, context: StageContext) -> None:
        super().__init__(context)
        _record("init", self.name)

    def process(self, photo: Photo) -> None:
        _record(self.name, photo.filename)


class RecordingDetectionStage(DetectionStage):
    """The real detection stage (its models load in the constructor), noting when it was built."""

    def __init__(self, context: StageContext) -> None:
        _record("init", self.name)
        super().__init__(context)
