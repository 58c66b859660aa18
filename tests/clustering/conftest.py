"""Generated faces with known identities, inserted as real person_detection + face_embedding rows."""

from __future__ import annotations

import pytest

from photodb.clustering.synthetic import SyntheticFaces, make_faces
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database


@pytest.fixture
def faces() -> SyntheticFaces:
    return make_faces(700, 40, lookalike_share=0.1, seed=11)


def insert(db: Database, embeddings, model: str = "arcface") -> list[int]:
    with db.connection() as conn:
        return face_db.insert_faces(conn, 1, embeddings, model)


def clusters_of(db: Database, ids: list[int]) -> dict[int, int | None]:
    with db.connection() as conn:
        return dict(conn.execute("SELECT id, cluster_id FROM person_detection WHERE id = ANY(%s)", (ids,)).fetchall())
