"""The small interface every pipeline stage implements."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from photodb.stages.decoded_images import DecodedImages, budget_for
from photodb.utils.files import path_for_name

if TYPE_CHECKING:
    from photodb.config import Settings
    from photodb.database.connection import Database
    from photodb.database.models import Collection, Photo


class StageFailure(Exception):
    """A photo-specific problem: recorded as the photo's error for this stage, the run goes on."""


class StageSkipped(Exception):
    """Not this photo's fault: the stage cannot process it here (a model file is missing).

    Recorded as 'skipped' with the message, never as a failure; a later run tries again."""


class StageUnavailable(RuntimeError):
    """The stage cannot run at all here (missing extra, model file, a file that does not load):
    stops the run with this message."""


@dataclass
class StageContext:
    """What a stage may use: settings, the database, the collection being processed.

    The stages of one run share one context, and with it `images`: the decoded normalized images
    (bounded, see photodb.stages.decoded_images), so a photo's PNG is decoded once, not per stage.
    """

    settings: Settings
    db: Database
    collection: Collection
    parallel: int = 1
    extras: dict[str, object] = field(default_factory=dict)
    images: DecodedImages = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.images = DecodedImages(budget_for(self.parallel))

    def source_path(self, photo: Photo) -> Path:
        """The original file, resolved against the collection's root as read with the photo.

        Another process may move the root up to a parent folder mid-run (prefixing every name);
        the root read with the photo always matches its name.
        """
        root = Path(photo.collection_root) if photo.collection_root else self.collection.root_path
        assert root is not None
        return path_for_name(root, photo.filename)

    def normalized_path(self, photo: Photo) -> Path:
        if not photo.normalized_path:
            raise StageFailure("photo has not been normalized yet")
        return self.settings.images_dir / photo.normalized_path

    def normalized_rgb(self, photo: Photo) -> np.ndarray:
        """The photo's normalized image, read-only RGB uint8, decoded once for all stages of the run."""
        path = self.normalized_path(photo)
        if not path.is_file():
            raise StageFailure(f"normalized image missing: {path} (rerun the normalize stage)")
        try:
            return self.images.rgb(path)
        except (OSError, ValueError) as error:
            raise StageFailure(f"cannot decode normalized image {path}: {error}") from error


def require_ml_extra(stage: str) -> None:
    """Stop a model stage at construction when the `ml` extra is not installed (one clear line)."""
    from photodb.ml.base import ML_EXTRA_HINT, missing_ml_modules

    missing = missing_ml_modules()
    if missing:
        raise StageUnavailable(f"{stage} needs the ml extra ({', '.join(missing)} missing): {ML_EXTRA_HINT}")


class BaseStage(ABC):
    """A stage turns one photo into rows. It must be idempotent: rerunning replaces, never duplicates.

    `process` is called from several worker threads at once; anything it shares must be thread-safe.
    It raises StageFailure (or any exception) for a photo it cannot handle; the processor records
    the message on that photo's processing_status row and moves on.

    Construction is cheap: it checks that the stage's model files exist (setting `skip_reason`
    when one is missing) but loads no weights. A model stage loads them in `load_models`, which
    `ready()` runs once, under a lock, when the stage first processes a photo: a run with nothing
    to do loads no model, and several workers claiming their first photos at once load it once.
    """

    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()
    #: Set in __init__ when the stage cannot run at all here (its model file is missing): the runner
    #: records this run's photos as skipped with this reason, once, instead of calling `process`.
    skip_reason: str | None = None
    #: Set in __init__ when the stage does only part of its work here and then raises StageSkipped
    #: with exactly this reason for every photo (labels without the CLIP weights). Photos an
    #: earlier run skipped with this same reason are not re-queued: a rerun would do nothing more.
    partial_reason: str | None = None

    def __init__(self, context: StageContext) -> None:
        self.context = context
        self._ready = False
        self._unloadable: StageUnavailable | None = None
        self._ready_lock = threading.Lock()
        #: Stages of the run whose models must be loaded before this one's (INIT_ORDER, set by the runner).
        self.loads_after: list[BaseStage] = []

    def ready(self) -> None:
        """Load the stage's models now unless done before (thread-safe, once); raises StageSkipped
        when they do not load, every time after the first try too (a file that does not load is no
        photo's fault: its photos are skipped with the reason and the run goes on).

        The stages in `loads_after` get ready first, so models load in INIT_ORDER whichever stage
        claims work first (on macOS, CoreML must load after the PyTorch models)."""
        if self._ready:
            return
        for earlier in self.loads_after:
            with suppress(StageSkipped):  # that stage's photos say why; this one may still load
                earlier.ready()
        with self._ready_lock:
            if self._unloadable is None and not self._ready:
                try:
                    self.load_models()
                    self._ready = True
                except StageUnavailable as error:
                    self._unloadable = error
            if self._unloadable is not None:
                raise StageSkipped(f"model does not load: {self._unloadable}") from self._unloadable

    def load_models(self) -> None:  # noqa: B027 - optional hook, stages without models load nothing
        """Load what `process` needs (weights, prompt embeddings, batch coordinators)."""

    @abstractmethod
    def process(self, photo: Photo) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook, most stages hold nothing
        """Release models, threads or files held by the stage."""
