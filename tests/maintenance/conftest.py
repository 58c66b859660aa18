"""A small library built by hand: identities of generated unit embeddings, real faces and
clusters in PostgreSQL, so each maintenance task's effect can be stated exactly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from photodb.clustering.synthetic import SyntheticFaces, make_faces
from photodb.database import maintenance_repository as repo
from photodb.database.clustering import centroids
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database
from photodb.maintenance import Options, Task, run_task

DIM = 512


@pytest.fixture
def faces() -> SyntheticFaces:
    """The clustering tests' generated library: 700 faces of 40 identities, look-alikes among them."""
    return make_faces(700, 40, lookalike_share=0.1, seed=11)


class Library:
    """Identities (random centres) and faces near them, inserted one photo per face."""

    def __init__(self, db: Database, seed: int = 5) -> None:
        self.db = db
        self.rng = np.random.default_rng(seed)

    def centre(self, like: np.ndarray | None = None, cosine: float = 0.0) -> np.ndarray:
        v = self.rng.standard_normal(DIM)
        v /= np.linalg.norm(v)
        if like is not None:
            v -= (v @ like) * like
            v = cosine * like + np.sqrt(1 - cosine**2) * v / np.linalg.norm(v)
        return v

    def embeddings(self, centre: np.ndarray, n: int, r: float = 0.8) -> np.ndarray:
        noise = self.rng.standard_normal((n, DIM))
        noise -= np.outer(noise @ centre, centre)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        return (r * centre + np.sqrt(1 - r**2) * noise).astype(np.float32)

    def faces(self, centre: np.ndarray, n: int, model: str = "arcface") -> list[int]:
        with self.db.connection() as conn:
            return face_db.insert_faces(conn, 1, self.embeddings(centre, n), model)

    def cluster(
        self, faces: Sequence[int], *, model: str = "arcface", verified: bool = False, status: str = "auto"
    ) -> int:
        """A cluster of these faces with exact sums and a medoid, as a bootstrap leaves it."""
        with self.db.connection() as conn:
            cluster_id = conn.execute(
                """INSERT INTO cluster (collection_id, embedding_model, verified, verified_at)
                   VALUES (1, %s, %s, CASE WHEN %s THEN now() END) RETURNING id""",
                (model, verified, verified),
            ).fetchone()[0]
            conn.execute(
                "UPDATE person_detection SET cluster_id = %s, cluster_status = %s WHERE id = ANY(%s)",
                (cluster_id, status, list(faces)),
            )
            centroids.recount_clusters(conn, [cluster_id])
            repo.set_medoids(conn, [cluster_id])
        return cluster_id

    def identity(self, n: int, **kwargs: Any) -> tuple[np.ndarray, list[int], int]:
        centre = self.centre()
        faces = self.faces(centre, n)
        return centre, faces, self.cluster(faces, **kwargs)


def run(db: Database, task: Task, options: Options | None = None) -> dict[str, int]:
    """Run one task on the default collection; it must succeed; returns its changes."""
    result = run_task(db, task, [1], options or Options())
    assert result.error is None, result.error
    return result.changes


def snapshot(db: Database) -> dict[str, Any]:
    """Everything a task could change, to compare before and after."""
    with db.connection() as conn:
        return {
            "clusters": conn.execute(
                """SELECT id, face_count, centroid_sum::text, centroid::text, medoid_detection_id,
                          representative_detection_id, face_count_at_last_medoid, person_id, verified,
                          person_linked_by, created_by
                   FROM cluster ORDER BY id"""
            ).fetchall(),
            "faces": conn.execute(
                "SELECT id, cluster_id, cluster_status, unassigned_since, person_id FROM person_detection ORDER BY id"
            ).fetchall(),
            "must_link": conn.execute(
                "SELECT detection_id_1, detection_id_2, created_by FROM must_link ORDER BY 1, 2"
            ).fetchall(),
            "cannot_link": conn.execute(
                "SELECT detection_id_1, detection_id_2 FROM cannot_link ORDER BY 1, 2"
            ).fetchall(),
            "cluster_cannot_link": conn.execute(
                "SELECT cluster_id_1, cluster_id_2, created_by FROM cluster_cannot_link ORDER BY 1, 2"
            ).fetchall(),
            "persons": conn.execute("SELECT id, first_name, auto_created FROM person ORDER BY id").fetchall(),
        }


def cluster_of(db: Database, detection_ids: Sequence[int]) -> dict[int, int | None]:
    with db.connection() as conn:
        return dict(
            conn.execute(
                "SELECT id, cluster_id FROM person_detection WHERE id = ANY(%s)", (list(detection_ids),)
            ).fetchall()
        )


def same_photo(db: Database, keep: int, move: int) -> None:
    """Put face `move` on the photo of face `keep` (two people in one photo)."""
    with db.connection() as conn:
        conn.execute(
            """UPDATE person_detection SET photo_id = (SELECT photo_id FROM person_detection WHERE id = %s)
               WHERE id = %s""",
            (keep, move),
        )


def link(db: Database, table: str, a: int, b: int, by: str = "user") -> None:
    assert table in ("must_link", "cannot_link")
    with db.connection() as conn:
        conn.execute(
            f"INSERT INTO {table} (detection_id_1, detection_id_2, created_by) VALUES (%s, %s, %s)",  # noqa: S608
            (min(a, b), max(a, b), by),
        )
