"""The quality gate: faces too small, blurred, doubtful or outlying stay out of clusters.

Such faces make junk clusters and pull real ones apart, so bootstrap sends them to noise and
incremental assignment leaves them unassigned, each with its reason in
`person_detection.quality_issue` ('small', 'low_confidence', 'blurry', 'outlier'). Faces a person
placed (manual, or in a verified or named cluster, or must-linked) are never gated. The rule
itself is the database function face_quality_issue (migration 0014), applied by
photodb.database.clustering.quality; the outlier score of a new bootstrap is compared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from photodb.config import Settings

if TYPE_CHECKING:
    from photodb.ml.boxes import Box

#: The face box is measured as a square gray crop of this side, so faces of any size compare.
SHARPNESS_SIDE = 64
OUTLIER = "outlier"


@dataclass(frozen=True)
class QualityGate:
    """The floors, from Settings (CLUSTER_MIN_FACE_SIZE, CLUSTER_MIN_SHARPNESS,
    CLUSTER_MIN_FACE_CONFIDENCE, CLUSTER_MAX_OUTLIER_SCORE); 0 (1 for the outlier) is off."""

    min_size: float
    min_sharpness: float
    min_confidence: float
    max_outlier: float

    @classmethod
    def from_settings(cls, settings: Settings) -> QualityGate:
        return cls(
            settings.cluster_min_face_size,
            settings.cluster_min_sharpness,
            settings.cluster_min_face_confidence,
            settings.cluster_max_outlier_score,
        )

    def is_outlier(self, score: float | None) -> bool:
        return score is not None and self.max_outlier < 1 and score > self.max_outlier

    def outliers(self, scores: np.ndarray) -> np.ndarray:
        """Which GLOSH scores are above the ceiling (NaN, never scored, is not)."""
        if self.max_outlier >= 1:
            return np.zeros(scores.shape, bool)
        with np.errstate(invalid="ignore"):
            return np.nan_to_num(scores, nan=0.0) > self.max_outlier


def face_sharpness(image: np.ndarray, box: Box) -> float | None:
    """Variance of the Laplacian of the face box (clipped to the image), as a gray square of
    SHARPNESS_SIDE pixels: low on blurred or smeared faces. None for a box outside the image."""
    import cv2

    height, width = image.shape[:2]
    x0, y0 = max(int(np.floor(box.x)), 0), max(int(np.floor(box.y)), 0)
    x1, y1 = min(int(np.ceil(box.x + box.width)), width), min(int(np.ceil(box.y + box.height)), height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    crop = image[y0:y1, x0:x1]
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    shrink = min(x1 - x0, y1 - y0) >= SHARPNESS_SIDE
    square = cv2.resize(
        gray, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    return float(cv2.Laplacian(square, cv2.CV_64F).var())
