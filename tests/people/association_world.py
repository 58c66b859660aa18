"""Clusters with centroids at chosen cosine distances, as real rows: photo, detection, embedding,
cluster (its sum, count and centroid those of its faces), persons and constraints."""

from __future__ import annotations

import math

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

MBF = "arcface:w600k_mbf"  # threshold 0.60 (clustering.distances.MEASURED)


def at_angles(*degrees: float, axis: int = 0) -> list[np.ndarray]:
    """Unit vectors in the plane of axes `axis` and `axis + 1`: cosine distance 1 - cos(angle difference)."""
    vectors = []
    for angle in degrees:
        v = np.zeros(512, np.float32)
        v[axis], v[axis + 1] = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        vectors.append(v)
    return vectors


def angle_for(distance: float) -> float:
    """The angle between two unit vectors this cosine distance apart."""
    return math.degrees(math.acos(1 - distance))


class World:
    def __init__(self, conn: psycopg.Connection) -> None:
        register_vector(conn)
        self.conn = conn
        self.collection = conn.execute("SELECT id FROM collection WHERE name = 'default'").fetchone()[0]
        self._axis = 100

    def far(self) -> np.ndarray:
        """A direction unrelated to everything made so far (cosine distance 1)."""
        self._axis += 1
        v = np.zeros(512, np.float32)
        v[self._axis] = 1
        return v

    def photo(self) -> int:
        return self.conn.execute(
            "INSERT INTO photo (collection_id, filename) VALUES (%s, gen_random_uuid()::text) RETURNING id",
            (self.collection,),
        ).fetchone()[0]

    def face(self, vector: np.ndarray, model: str, *, photo: int | None = None, cluster: int | None = None) -> int:
        detection = self.conn.execute(
            """INSERT INTO person_detection (photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height,
                   face_confidence, cluster_id, cluster_status, age_estimate, gender, gender_confidence)
               VALUES (%s, 0, 0, 100, 100, 0.9, %s, 'auto', 40, 'F', 0.9) RETURNING id""",
            (photo if photo is not None else self.photo(), cluster),
        ).fetchone()[0]
        self.conn.execute(
            """INSERT INTO face_embedding (person_detection_id, embedding_model, embedding_dim, embedding)
               VALUES (%s, %s, 512, %s)""",
            (detection, model, np.asarray(vector, np.float32)),
        )
        return detection

    def cluster(
        self,
        vector: np.ndarray,
        *,
        model: str = MBF,
        photo: int | None = None,
        person: int | None = None,
        linked_by: str | None = None,
        verified: bool = False,
        hidden: bool = False,
        faces: int = 1,
    ) -> int:
        """A cluster of `faces` faces (each in its own photo, the first in `photo`), all at `vector`."""
        cluster = self.conn.execute(
            """INSERT INTO cluster (collection_id, embedding_model, face_count, centroid, centroid_sum, person_id,
                   person_linked_by, verified, verified_at, hidden)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, %s) RETURNING id""",
            (
                self.collection,
                model,
                faces,
                np.asarray(vector, np.float32),
                np.asarray(vector, np.float32) * faces,
                person,
                linked_by if linked_by or person is None else "auto:associate",
                verified,
                verified,
                hidden,
            ),
        ).fetchone()[0]
        self.face(vector, model, photo=photo, cluster=cluster)
        for _ in range(faces - 1):
            self.face(vector, model, cluster=cluster)
        return cluster

    def person(self, *, name: str | None = None, hidden: bool = False) -> int:
        """A named person (a user's) or an auto-created 'Unknown' one."""
        return self.conn.execute(
            """INSERT INTO person (collection_id, first_name, auto_created, created_by, hidden)
               VALUES (%s, %s, %s, %s, %s) RETURNING id""",
            (self.collection, name or "Unknown", name is None, "user" if name else "auto:associate", hidden),
        ).fetchone()[0]

    def faces_of(self, cluster: int) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT id FROM person_detection WHERE cluster_id = %s", (cluster,))]

    def person_of(self, cluster: int) -> int | None:
        return self.conn.execute("SELECT person_id FROM cluster WHERE id = %s", (cluster,)).fetchone()[0]

    def snapshot(self) -> tuple[list[tuple], list[tuple]]:
        """Every cluster's person link and every person row: what auto-association may change."""
        clusters = self.conn.execute(
            "SELECT id, person_id, person_linked_by, person_linked_at FROM cluster ORDER BY id"
        ).fetchall()
        persons = self.conn.execute("SELECT * FROM person ORDER BY id").fetchall()
        return clusters, persons
