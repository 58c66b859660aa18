"""What every age/gender model takes and gives, so the stage does not care which one ran."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from photodb.ml.boxes import Box

if TYPE_CHECKING:
    from photodb.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonBoxes:
    """One stored detection of a photo: its face and/or body box in normalized-image pixels."""

    detection_id: int
    face: Box | None
    body: Box | None


@dataclass(frozen=True)
class AgeGenderEstimate:
    """One detection's estimate; `raw` is the model's own output, stored as JSON as it came."""

    detection_id: int
    age: float | None
    male_probability: float | None
    raw: dict[str, Any] = field(default_factory=dict)


class AgeGenderModel(Protocol):
    """A loaded-on-demand age/gender model (a `LazyModel`)."""

    model_name: str

    def load(self) -> None: ...

    def predict(self, image_rgb: np.ndarray, people: Sequence[PersonBoxes]) -> list[AgeGenderEstimate]:
        """Estimates for every detection of one photo (all of them, so a model can mask the others)."""
        ...


@dataclass(frozen=True)
class AgeGenderChoice:
    """The loaded model this run uses, or None and why no model can run here."""

    model: AgeGenderModel | None
    reason: str | None = None


def _load_mivolo(settings: Settings) -> AgeGenderModel:
    from photodb.ml.base import ModelUnavailable, model_not_found

    if not settings.mivolo_model_file.is_file():
        raise model_not_found(settings.mivolo_model_file, "MIVOLO_MODEL_PATH")
    try:
        from photodb.ml.mivolo import create_mivolo
    except ImportError as error:
        raise ModelUnavailable(f"MiVOLO support is not part of this install ({error})") from error
    model: AgeGenderModel = create_mivolo(settings)
    model.load()
    return model


def _load_offline() -> AgeGenderModel:
    from photodb.ml.cydral_age_gender import CydralAgeGender

    model = CydralAgeGender()
    model.load()
    return model


def missing_age_gender_file(settings: Settings) -> str | None:
    """Why no age/gender model can run here, known without loading one: MiVOLO asked for, its file absent."""
    from photodb.ml.base import model_not_found

    if settings.age_gender_model == "mivolo" and not settings.mivolo_model_file.is_file():
        return str(model_not_found(settings.mivolo_model_file, "MIVOLO_MODEL_PATH"))
    return None


def create_age_gender_model(settings: Settings) -> AgeGenderChoice:
    """AGE_GENDER_MODEL: `mivolo`, `offline`, or `auto` (MiVOLO when its file exists, else offline).

    The chosen model is loaded here, so a broken file shows once per run, not once per photo. In
    `auto`, a MiVOLO file that fails to load falls back to the offline model with a warning.
    """
    from photodb.ml.base import ModelUnavailable, model_not_found

    wanted = settings.age_gender_model
    reasons: list[str] = []
    if wanted == "mivolo" or (wanted == "auto" and settings.mivolo_model_file.is_file()):
        try:
            return AgeGenderChoice(_load_mivolo(settings))
        except ModelUnavailable as error:
            if wanted == "mivolo":
                return AgeGenderChoice(None, str(error))
            log.warning("MiVOLO unusable, using the offline age/gender model: %s", error)
            reasons.append(str(error))
    elif wanted == "auto":
        reasons.append(str(model_not_found(settings.mivolo_model_file, "MIVOLO_MODEL_PATH")))
    try:
        return AgeGenderChoice(_load_offline())
    except ModelUnavailable as error:
        reasons.append(f"offline model: {error}")
    return AgeGenderChoice(None, "; ".join(reasons))
