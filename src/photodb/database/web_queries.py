"""What `photodb web` reads besides the people views: face boxes for thumbnails and a few faces per
cluster. Read-only statements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class FaceBox:
    detection_id: int
    normalized_path: str | None
    x: float
    y: float
    width: float
    height: float


def face_box(conn: psycopg.Connection, detection_id: int) -> FaceBox | None:
    """The face box of a detection (pixels of the normalized PNG) and that PNG's path under IMG_PATH."""
    row = conn.execute(
        """SELECT d.id, ph.normalized_path, d.face_bbox_x, d.face_bbox_y, d.face_bbox_width, d.face_bbox_height
           FROM person_detection d JOIN photo ph ON ph.id = d.photo_id
           WHERE d.id = %s AND d.face_bbox_x IS NOT NULL""",
        (detection_id,),
    ).fetchone()
    return FaceBox(*row) if row else None


def cluster_faces(conn: psycopg.Connection, cluster_ids: Sequence[int], per_cluster: int) -> dict[int, list[int]]:
    """Up to `per_cluster` face ids of each cluster, the medoid first, then by id."""
    rows = conn.execute(
        """SELECT c.id, f.id FROM cluster c
           CROSS JOIN LATERAL (
               SELECT d.id FROM person_detection d WHERE d.cluster_id = c.id
               ORDER BY d.id = c.medoid_detection_id DESC, d.id LIMIT %(n)s) f
           WHERE c.id = ANY(%(c)s) ORDER BY c.id""",
        {"c": list(cluster_ids), "n": per_cluster},
    ).fetchall()
    faces: dict[int, list[int]] = {}
    for cluster_id, face_id in rows:
        faces.setdefault(cluster_id, []).append(face_id)
    return faces
