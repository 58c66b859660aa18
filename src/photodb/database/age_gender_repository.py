"""Every SQL statement of the age_gender stage: reading a photo's detections, storing estimates.

A rerun overwrites each detection's estimate in place (one UPDATE statement per photo), so
`--force` never duplicates anything. Only estimate columns are written: a detection's boxes,
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
        with self.db.autocommit() as conn:
            rows = conn.execute(
                """SELECT id,
                          face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height, face_confidence,
                          body_bbox_x, body_bbox_y, body_bbox_width, body_bbox_height, body_confidence
                   FROM person_detection WHERE photo_id = %s ORDER BY id""",
                (photo_id,),
            ).fetchall()
        return [PersonBoxes(row[0], _box(row[1:6]), _box(row[6:11])) for row in rows]

    def store_estimates(self, photo_id: int, estimates: Sequence[StoredEstimate]) -> int:
        """Write the estimates of one photo's detections; returns how many rows were updated.

        One statement (one round trip, atomic): the rows are locked in id order first, the order
        every writer of detection rows follows.

        It commits asynchronously (synchronous_commit off for this transaction only): waiting for
        the WAL flush cost more than the model per photo (bench/age_gender.py). Nothing can be
        lost that a run believes done: the photo's stage is marked completed afterwards by the
        queue's settle, a synchronous commit, and PostgreSQL flushes WAL in order, so that commit
        is durable only with this one. A crash in between leaves the stage 'processing' and the
        photo is estimated again."""
        if not estimates:
            return 0
        with self.db.autocommit() as conn:
            cursor = conn.execute(
                """WITH async_commit AS (SELECT set_config('synchronous_commit', 'off', true)),
                        locked AS (SELECT id FROM person_detection
                                    WHERE id = ANY(%(ids)s) AND photo_id = %(photo)s ORDER BY id FOR UPDATE)
                   UPDATE person_detection d
                      SET age_estimate = v.age, gender = v.gender, gender_confidence = v.confidence,
                          mivolo_output = v.output, age_gender_model = v.model, age_gender_at = now()
                     FROM unnest(%(ids)s::bigint[], %(ages)s::float8[], %(genders)s::text[],
                                 %(confidences)s::float8[], %(outputs)s::jsonb[], %(models)s::text[])
                          AS v(id, age, gender, confidence, output, model)
                    WHERE d.id = v.id AND d.id IN (SELECT id FROM locked)
                      AND EXISTS (SELECT FROM async_commit)""",
                {
                    "photo": photo_id,
                    "ids": [e.detection_id for e in estimates],
                    "ages": [e.age for e in estimates],
                    "genders": [e.gender for e in estimates],
                    "confidences": [e.gender_confidence for e in estimates],
                    "outputs": [Jsonb(e.output) for e in estimates],
                    "models": [e.model_name for e in estimates],
                },
            )
            return cursor.rowcount
