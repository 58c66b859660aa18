"""Generated identities stored as real detections, and the people commands run in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result

from photodb.database.clustering import centroids
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database
from tests.cli import cli_env


def identity(rng: np.random.Generator, count: int, spread: float = 0.3) -> np.ndarray:
    """`count` unit vectors around one random direction (cosine ~0.9 to it at spread 0.3)."""
    centre = rng.normal(size=512)
    centre /= np.linalg.norm(centre)
    faces = centre + rng.normal(scale=spread / np.sqrt(512), size=(count, 512))
    return (faces / np.linalg.norm(faces, axis=1, keepdims=True)).astype(np.float32)


def store(db: Database, embeddings: np.ndarray, model: str = "arcface") -> list[int]:
    with db.connection() as conn:
        return face_db.insert_faces(conn, 1, embeddings, model)


def make_cluster(
    db: Database, detection_ids: list[int], *, person_id: int | None = None, model: str = "arcface"
) -> int:
    """A cluster holding these faces (as a bootstrap would leave one), sums exact."""
    with db.connection() as conn:
        row = conn.execute(
            "INSERT INTO cluster (collection_id, embedding_model, person_id) VALUES (1, %s, %s) RETURNING id",
            (model, person_id),
        ).fetchone()
        assert row is not None
        conn.execute(
            "UPDATE person_detection SET cluster_id = %s, cluster_status = 'auto' WHERE id = ANY(%s)",
            (row[0], detection_ids),
        )
        centroids.recount_clusters(conn, [row[0]])
        return int(row[0])


def make_person(db: Database, name: str | None = "Grace") -> int:
    with db.connection() as conn:
        row = conn.execute(
            "INSERT INTO person (collection_id, first_name, created_by) VALUES (1, %s, 'user') RETURNING id", (name,)
        ).fetchone()
        assert row is not None
        return int(row[0])


def same_photo(db: Database, detection_ids: list[int]) -> None:
    """Move these faces into the photo of the first one (two people in one picture)."""
    with db.connection() as conn:
        conn.execute(
            """UPDATE person_detection SET photo_id = (SELECT photo_id FROM person_detection WHERE id = %s)
               WHERE id = ANY(%s)""",
            (detection_ids[0], detection_ids[1:]),
        )


def run(command, tmp_path: Path, database_url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(command, list(args), env=cli_env(tmp_path, database_url), input=stdin)


def snapshot(db: Database) -> list[tuple]:
    """Everything a people command may write, to show that a refused one wrote nothing."""
    with db.connection() as conn:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608 (fixed names)
            for table in (
                "cluster",
                "person",
                "person_detection",
                "cluster_cannot_link",
                "cluster_person_cannot_link",
                "cannot_link",
                "face_match_candidate",
            )
        ]
