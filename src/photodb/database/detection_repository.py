"""Every SQL statement of the detection stage: storing a photo's detections and embeddings.

Rerun policy (`--force`, or a photo whose file changed): `replace_detections` swaps a photo's
detections in one transaction, so readers see either the old set or the new one.

- Detections nobody curated are deleted; their embeddings and match candidates go with them
  (ON DELETE CASCADE), and cluster representative/medoid links are cleared (SET NULL).
- Clusters that lose members have the deleted faces subtracted from their running sum and count
  (database.clustering.centroids: no re-average of the whole cluster); clusters left empty
  are deleted unless they are verified or linked to a person (the rerun's faces can then
  rejoin them; a named identity is never dropped).
- Locks follow the one order of database.clustering.locks: the clustering model lock (shared) of
  every embedding model involved, so a bootstrap never writes while faces are deleted under it;
  the photo row; its detection rows in id order; then the touched clusters in id order.
- Curated detections are kept untouched, with their id, cluster, person and embedding: those
  with `cluster_status = 'manual'` and those named in a must_link or cannot_link constraint.
  A new detection overlapping a kept one (IoU >= 0.5 on the face box, or on the body box for
  body-only rows) is not inserted, so the rerun neither loses manual work nor duplicates a face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from photodb.database.clustering import centroids, locks
from photodb.database.connection import Database
from photodb.ml.boxes import Box

#: A new detection this similar to a kept (curated) one is the same person in the same photo.
DUPLICATE_IOU = 0.5


@dataclass(frozen=True)
class NewDetection:
    """One person in a photo: a face, a body, or both, and the face's embedding if it has one."""

    face: Box | None
    body: Box | None
    embedding: np.ndarray | None = None  # already padded to the column width
    embedding_model: str | None = None
    embedding_dim: int | None = None
    aligned: bool = False
    face_sharpness: float | None = None  # photodb.clustering.quality.face_sharpness of the face box

    def __post_init__(self) -> None:
        if self.face is None and self.body is None:
            raise ValueError("a detection needs a face or a body")
        if self.embedding is not None and (self.face is None or not self.embedding_model or not self.embedding_dim):
            raise ValueError("an embedding needs a face, its model name and its dimension")


@dataclass(frozen=True)
class ReplaceOutcome:
    inserted: int
    deleted: int
    kept: int
    skipped_duplicates: int
    clusters_updated: int
    clusters_deleted: int
    embedded_ids: tuple[int, ...] = ()  # new detections with a face embedding, for incremental clustering
    embedded: tuple[tuple[str, np.ndarray], ...] = ()  # their embedding model and embedding, as stored


@dataclass(frozen=True)
class _Existing:
    id: int
    face: Box | None
    body: Box | None


def _box(values: Sequence[Any]) -> Box | None:
    x, y, w, h = values
    return None if x is None else Box(float(x), float(y), float(w), float(h), 1.0)


def _duplicates(new: NewDetection, kept: Sequence[_Existing]) -> bool:
    for old in kept:
        if new.face is not None and old.face is not None:
            overlap = new.face.iou(old.face)
        elif new.face is None and old.face is None and new.body is not None and old.body is not None:
            overlap = new.body.iou(old.body)
        else:
            continue
        if overlap >= DUPLICATE_IOU:
            return True
    return False


def _box_values(box: Box | None) -> tuple[float | None, ...]:
    if box is None:
        return (None, None, None, None, None)
    return (box.x, box.y, box.width, box.height, min(max(box.confidence, 0.0), 1.0))


class DetectionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def replace_detections(
        self, photo_id: int, detections: Sequence[NewDetection], detector_model: str, detector_version: str
    ) -> ReplaceOutcome:
        with self.db.connection() as conn, conn.transaction():
            photo = conn.execute(
                """SELECT p.collection_id, array(SELECT DISTINCT fe.embedding_model FROM person_detection d
                                                 JOIN face_embedding fe ON fe.person_detection_id = d.id
                                                 WHERE d.photo_id = p.id)
                   FROM photo p WHERE p.id = %s""",
                (photo_id,),
            ).fetchone()
            if photo is None:
                raise LookupError(f"photo {photo_id} does not exist")
            models = set(photo[1]) | {d.embedding_model for d in detections if d.embedding_model}
            locks.lock_models(conn, photo[0], models)
            # One rerun of a photo at a time: the photo row is the lock.
            if conn.execute("SELECT 1 FROM photo WHERE id = %s FOR UPDATE", (photo_id,)).fetchone() is None:
                raise LookupError(f"photo {photo_id} does not exist")
            rows = conn.execute(
                """SELECT d.id, d.cluster_id,
                          d.face_bbox_x, d.face_bbox_y, d.face_bbox_width, d.face_bbox_height,
                          d.body_bbox_x, d.body_bbox_y, d.body_bbox_width, d.body_bbox_height,
                          (d.cluster_status = 'manual'
                           OR EXISTS (SELECT 1 FROM must_link m
                                      WHERE m.detection_id_1 = d.id OR m.detection_id_2 = d.id)
                           OR EXISTS (SELECT 1 FROM cannot_link c
                                      WHERE c.detection_id_1 = d.id OR c.detection_id_2 = d.id)) AS curated
                   FROM person_detection d WHERE d.photo_id = %s ORDER BY d.id FOR UPDATE""",
                (photo_id,),
            ).fetchall()
            kept = [_Existing(r[0], _box(r[2:6]), _box(r[6:10])) for r in rows if r[10]]
            doomed = [r[0] for r in rows if not r[10]]

            clusters_updated = clusters_deleted = 0
            if doomed:
                # the clusters that lose members, and those whose medoid link the delete clears
                touched = {r[1] for r in rows if not r[10] and r[1] is not None}
                touched |= {
                    r[0]
                    for r in conn.execute(
                        """SELECT id FROM cluster
                           WHERE medoid_detection_id = ANY(%s) OR representative_detection_id = ANY(%s)""",
                        (doomed, doomed),
                    ).fetchall()
                }
                locks.lock_clusters(conn, touched)
                clusters_updated = len(centroids.subtract_detections(conn, doomed))
                conn.execute("DELETE FROM person_detection WHERE id = ANY(%s)", (doomed,))
                clusters_deleted = conn.execute(
                    """DELETE FROM cluster c WHERE c.id = ANY(%s) AND c.face_count = 0 AND NOT c.verified
                           AND c.person_id IS NULL
                           AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.cluster_id = c.id)""",
                    (sorted(touched),),
                ).rowcount

            inserted = skipped = 0
            embedded: list[tuple[int, str, np.ndarray]] = []
            for detection in detections:
                if kept and _duplicates(detection, kept):
                    skipped += 1
                    continue
                face_landmarks = (
                    Jsonb([[round(x, 2), round(y, 2)] for x, y in detection.face.landmarks])
                    if detection.face is not None and detection.face.landmarks
                    else None
                )
                row = conn.execute(
                    """INSERT INTO person_detection (
                           photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height, face_confidence,
                           face_landmarks, body_bbox_x, body_bbox_y, body_bbox_width, body_bbox_height,
                           body_confidence, detector_model, detector_version, face_sharpness)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                       RETURNING id""",
                    (
                        photo_id,
                        *_box_values(detection.face),
                        face_landmarks,
                        *_box_values(detection.body),
                        detector_model,
                        detector_version,
                        detection.face_sharpness,
                    ),
                ).fetchone()
                assert row is not None
                if detection.embedding is not None:
                    vector = np.asarray(detection.embedding, dtype=np.float32)
                    conn.execute(
                        """INSERT INTO face_embedding
                               (person_detection_id, embedding_model, embedding_dim, aligned, embedding)
                           VALUES (%s, %s, %s, %s, %s)""",
                        (
                            row[0],
                            detection.embedding_model,
                            detection.embedding_dim,
                            detection.aligned,
                            vector,
                        ),
                    )
                    embedded.append((row[0], str(detection.embedding_model), vector))
                inserted += 1
        return ReplaceOutcome(
            inserted=inserted,
            deleted=len(doomed),
            kept=len(kept),
            skipped_duplicates=skipped,
            clusters_updated=clusters_updated,
            clusters_deleted=clusters_deleted,
            embedded_ids=tuple(e[0] for e in embedded),
            embedded=tuple((e[1], e[2]) for e in embedded),
        )

    def detections_for_photo(self, photo_id: int) -> list[dict[str, Any]]:
        """The photo's detections with their embedding facts, for reports and tests."""
        with self.db.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            return cur.execute(
                """SELECT d.*, fe.embedding_model, fe.embedding_dim, fe.aligned, fe.embedding
                   FROM person_detection d
                   LEFT JOIN face_embedding fe ON fe.person_detection_id = d.id
                   WHERE d.photo_id = %s ORDER BY d.id""",
                (photo_id,),
            ).fetchall()
