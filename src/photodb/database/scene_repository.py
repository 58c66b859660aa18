"""Every SQL statement of the scene analysis stage: face boxes in, one photo's results out.

Rerun policy (`--force`): `replace_results` swaps the photo's scene rows in one transaction, so
readers see either the old set or the new one. It deletes the tags and raw outputs of the models
the stage ran last time (named in the photo's scene_analysis row) and of the models it ran now,
then inserts the new ones; tags other writers store under other model names stay. Image
embeddings are one per (photo, model): the row of this run's model is replaced, other models'
rows stay for search with those models.

The photo row is locked first (FOR UPDATE), as the detection stage's rerun does, so a detection
rerun that replaces the faces runs wholly before or after; a face deleted before this write is
left out of the face tags rather than failing the photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from photodb.database.connection import Database
from photodb.ml.alignment import pad_embedding


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixels of the normalized image."""

    detection_id: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class ModelOutput:
    model_name: str
    model_version: str | None
    output: dict[str, object]


@dataclass(frozen=True)
class PhotoTag:
    category: str
    label: str
    confidence: float
    model_name: str


@dataclass(frozen=True)
class DetectionTag:
    detection_id: int
    category: str
    label: str
    confidence: float
    model_name: str


@dataclass
class SceneResults:
    """Everything the stage found for one photo, written together."""

    clip_model: str | None  # None: no CLIP weights here, only the labellers ran
    image_embedding: np.ndarray | None
    taxonomy_model: str | None = None
    object_model: str | None = None
    outputs: list[ModelOutput] = field(default_factory=list)
    photo_tags: list[PhotoTag] = field(default_factory=list)
    detection_tags: list[DetectionTag] = field(default_factory=list)
    scene_tags: dict[str, list[str]] = field(default_factory=dict)
    faces_tagged: int = 0

    @property
    def models(self) -> list[str]:
        return [m for m in (self.clip_model, self.taxonomy_model, self.object_model) if m]


@dataclass(frozen=True)
class StoredCounts:
    photo_tags: int
    detection_tags: int
    outputs: int


class SceneRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def face_boxes(self, photo_id: int) -> list[FaceBox]:
        with self.db.connection() as conn:
            rows = conn.execute(
                """SELECT id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height
                     FROM person_detection WHERE photo_id = %s AND face_bbox_x IS NOT NULL ORDER BY id""",
                (photo_id,),
            ).fetchall()
        return [FaceBox(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def replace_results(self, photo_id: int, results: SceneResults) -> StoredCounts:
        """Store one photo's results in place of its previous ones (see the module docstring)."""
        with self.db.connection() as conn, conn.transaction():
            if conn.execute("SELECT 1 FROM photo WHERE id = %s FOR UPDATE", (photo_id,)).fetchone() is None:
                raise LookupError(f"photo {photo_id} does not exist")
            previous = conn.execute(
                "SELECT clip_model, taxonomy_model, object_model FROM scene_analysis WHERE photo_id = %s",
                (photo_id,),
            ).fetchone()
            models = sorted({*results.models, *(m for m in (previous or ()) if m)})
            conn.execute("DELETE FROM photo_tag WHERE photo_id = %s AND model_name = ANY(%s)", (photo_id, models))
            conn.execute("DELETE FROM analysis_output WHERE photo_id = %s AND model_name = ANY(%s)", (photo_id, models))
            conn.execute(
                """DELETE FROM detection_tag t USING person_detection d
                    WHERE d.id = t.person_detection_id AND d.photo_id = %s AND t.model_name = ANY(%s)""",
                (photo_id, models),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO analysis_output (photo_id, model_name, model_version, output)
                       VALUES (%s, %s, %s, %s)""",
                    [(photo_id, o.model_name, o.model_version, Jsonb(o.output)) for o in results.outputs],
                )
                cur.executemany(
                    """INSERT INTO photo_tag (photo_id, category, label, confidence, model_name)
                       VALUES (%s, %s, %s, %s, %s)""",
                    [(photo_id, t.category, t.label, _unit(t.confidence), t.model_name) for t in results.photo_tags],
                )
            detection_tags = _insert_detection_tags(conn, photo_id, results.detection_tags)
            if results.clip_model is not None and results.image_embedding is not None:
                conn.execute(
                    """INSERT INTO photo_embedding (photo_id, model_name, embedding_dim, embedding)
                       VALUES (%s, %s, %s, %s)
                       ON CONFLICT (photo_id, model_name) DO UPDATE
                          SET embedding_dim = EXCLUDED.embedding_dim, embedding = EXCLUDED.embedding,
                              created_at = now()""",
                    (
                        photo_id,
                        results.clip_model,
                        int(results.image_embedding.shape[-1]),
                        pad_embedding(results.image_embedding),
                    ),
                )
            conn.execute(
                """INSERT INTO scene_analysis
                       (photo_id, clip_model, taxonomy_model, object_model, scene_tags, faces_tagged)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (photo_id) DO UPDATE
                      SET clip_model = EXCLUDED.clip_model, taxonomy_model = EXCLUDED.taxonomy_model,
                          object_model = EXCLUDED.object_model, scene_tags = EXCLUDED.scene_tags,
                          faces_tagged = EXCLUDED.faces_tagged, processed_at = now()""",
                (
                    photo_id,
                    results.clip_model,
                    results.taxonomy_model,
                    results.object_model,
                    Jsonb(results.scene_tags),
                    results.faces_tagged,
                ),
            )
        return StoredCounts(len(results.photo_tags), detection_tags, len(results.outputs))

    def nearest_photos(
        self, model_name: str, query: np.ndarray, limit: int = 10, collection_id: int | None = None
    ) -> list[tuple[int, float]]:
        """Photos whose image embedding of `model_name` is nearest `query` (a text or image
        embedding of the same model): (photo id, cosine distance), nearest first."""
        with self.db.connection() as conn:
            rows = conn.execute(
                """SELECT e.photo_id, e.embedding <=> %(q)s AS distance
                     FROM photo_embedding e JOIN photo p ON p.id = e.photo_id
                    WHERE e.model_name = %(model)s
                      AND (%(collection)s::bigint IS NULL OR p.collection_id = %(collection)s)
                    ORDER BY e.embedding <=> %(q)s LIMIT %(limit)s""",
                {"q": pad_embedding(query), "model": model_name, "collection": collection_id, "limit": limit},
            ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]


def _unit(value: float) -> float:
    """A probability rounded into [0, 1] (float32 sums may land a hair outside)."""
    return min(max(float(value), 0.0), 1.0)


def _insert_detection_tags(conn: psycopg.Connection, photo_id: int, tags: Sequence[DetectionTag]) -> int:
    """Insert face tags of detections that still belong to the photo; how many were stored."""
    if not tags:
        return 0
    row = conn.execute(
        """WITH t AS (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::text[])
                         AS t(detection_id, category, label, confidence, model_name))
           , ins AS (INSERT INTO detection_tag (person_detection_id, category, label, confidence, model_name)
                     SELECT t.detection_id, t.category, t.label, t.confidence, t.model_name
                       FROM t JOIN person_detection d ON d.id = t.detection_id AND d.photo_id = %s
                     RETURNING 1)
           SELECT count(*) FROM ins""",
        (
            [t.detection_id for t in tags],
            [t.category for t in tags],
            [t.label for t in tags],
            [_unit(t.confidence) for t in tags],
            [t.model_name for t in tags],
            photo_id,
        ),
    ).fetchone()
    return int(row[0])
