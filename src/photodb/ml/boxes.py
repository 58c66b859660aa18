"""Detection boxes and the face-to-body pairing every detector's output goes through."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: A face belongs to a body only when at least this share of the face box lies inside the body box.
MIN_CONTAINMENT = 0.5
#: The part of a body box (from its top) where its own head is expected.
UPPER_BODY_FRACTION = 0.45


@dataclass(frozen=True)
class Box:
    """A detection box in pixels of the image it was found in (x, y = top-left)."""

    x: float
    y: float
    width: float
    height: float
    confidence: float
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def x2(self) -> float:
        return self.x + self.width

    @property
    def y2(self) -> float:
        return self.y + self.height

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def intersection(self, other: Box) -> float:
        w = min(self.x2, other.x2) - max(self.x, other.x)
        h = min(self.y2, other.y2) - max(self.y, other.y)
        return max(w, 0.0) * max(h, 0.0)

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clipped(self, width: int, height: int) -> Box | None:
        """The box cut to the image; None when nothing of it is left."""
        x, y = max(self.x, 0.0), max(self.y, 0.0)
        x2, y2 = min(self.x2, float(width)), min(self.y2, float(height))
        if x2 - x < 1 or y2 - y < 1:
            return None
        return replace(self, x=x, y=y, width=x2 - x, height=y2 - y)


@dataclass
class Detections:
    faces: list[Box] = field(default_factory=list)
    bodies: list[Box] = field(default_factory=list)

    def filtered(self, min_confidence: float, width: int, height: int) -> Detections:
        def keep(boxes: list[Box]) -> list[Box]:
            clipped = (b.clipped(width, height) for b in boxes if b.confidence >= min_confidence)
            return [b for b in clipped if b is not None]

        return Detections(keep(self.faces), keep(self.bodies))


def _match_score(face: Box, body: Box) -> float | None:
    """How well `face` fits `body`; None when the face is not inside it enough to belong to it."""
    if face.area <= 0:
        return None
    containment = face.intersection(body) / face.area
    if containment < MIN_CONTAINMENT:
        return None
    cx, cy = face.center
    in_upper = cy <= body.y + UPPER_BODY_FRACTION * body.height
    centred = 1.0 - min(1.0, abs(cx - body.center[0]) / max(body.width / 2, 1e-6))
    return containment + (0.5 if in_upper else 0.0) + 0.25 * centred


def match_faces_to_bodies(faces: list[Box], bodies: list[Box]) -> list[tuple[int | None, int | None]]:
    """Pair faces with bodies one-to-one, maximising total fit (Hungarian assignment).

    A face can only go to a body that contains most of it; among those, a body whose upper part
    holds the face and whose centre line is near it wins. Returns (face, body) index pairs: matched
    pairs, then faces without a body, then bodies without a face.
    """
    pairs: list[tuple[int | None, int | None]] = []
    matched_faces: set[int] = set()
    matched_bodies: set[int] = set()
    if faces and bodies:
        from scipy.optimize import linear_sum_assignment

        # Infeasible pairs score 0, so the assignment is a maximum-weight matching of feasible pairs.
        scores = np.zeros((len(faces), len(bodies)))
        for i, face in enumerate(faces):
            for j, body in enumerate(bodies):
                score = _match_score(face, body)
                if score is not None:
                    scores[i, j] = score
        rows, cols = linear_sum_assignment(scores, maximize=True)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if scores[i, j] > 0:
                pairs.append((i, j))
                matched_faces.add(i)
                matched_bodies.add(j)
    pairs.extend((i, None) for i in range(len(faces)) if i not in matched_faces)
    pairs.extend((None, j) for j in range(len(bodies)) if j not in matched_bodies)
    return pairs
