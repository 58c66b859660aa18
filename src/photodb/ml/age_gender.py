"""What every age/gender model takes and gives, so the stage does not care which one ran."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from photodb.ml.boxes import Box


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
