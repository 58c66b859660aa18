"""Every SQL statement of the age_gender stage: reading a photo's detections, storing estimates.

A rerun overwrites each detection's estimate in place (one UPDATE per row, in one transaction),
so `--force` never duplicates anything. Only estimate columns are written: a detection's boxes,
cluster and person links are left alone, and a detection deleted meanwhile by a detection rerun
is simply not updated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from photodb.database.connection import Database
from photodb.ml.age_gender import PersonBoxes
from photodb.ml.boxes import Box


@dataclass(frozen=True)
class StoredEstimate:
    """What the stage writes on one detection row."""

    detection_id: int
    age: float | None
    gender: str | None  # 'M', 'F', 'U', or None when the model gave no estimate
    gender_confidence: float | None
    output: dict[str, Any]
    model_name: str


def _box(values: Sequence[Any]) -> Box | None:
    x, y, width, height, confidence = values
    if x is None:
        return None
    return Box(float(x), float(y), float(width), float(height), float(confidence or 0.0))


class AgeGenderRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def people_of_photo(self, photo_id: int) -> list[PersonBoxes]:
        """The photo's detections, in id order, with their face and body boxes."""
        with self.db.connection() as conn:
            rows = conn.execute(
                """SELECT id,
                          face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height, face_confidence,
                          body_bbox_x, body_bbox_y, body_bbox_width, body_bbox_height, body_confidence
                   FROM person_detection WHERE photo_id = %s ORDER BY id""",
                (photo_id,),
            ).fetchall()
        return [PersonBoxes(row[0], _box(row[1:6]), _box(row[6:11])) for row in rows]

    def store_estimates(self, photo_id: int, estimates: Sequence[StoredEstimate]) -> int:
        """Write the estimates of one photo's detections; returns how many rows were updated."""
        if not estimates:
            return 0
        updated = 0
        with self.db.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            for estimate in sorted(estimates, key=lambda e: e.detection_id):  # id order, as every writer locks
                cursor.execute(
                    """UPDATE person_detection
                          SET age_estimate = %s, gender = %s, gender_confidence = %s, mivolo_output = %s,
                              age_gender_model = %s, age_gender_at = now()
                        WHERE id = %s AND photo_id = %s""",
                    (
                        estimate.age,
                        estimate.gender,
                        estimate.gender_confidence,
                        Jsonb(estimate.output),
                        estimate.model_name,
                        estimate.detection_id,
                        photo_id,
                    ),
                )
                updated += cursor.rowcount
        return updated
