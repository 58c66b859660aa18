"""Generated faces with known identities, inserted as real person_detection + face_embedding rows."""

from __future__ import annotations

import numpy as np
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


def assert_clusters_exact(db: Database) -> None:
    """Every cluster's count and sum are its members' (to float32 rounding), and its centroid is
    within the write tolerance of the normalised sum: what a fresh recount would write."""
    from photodb.database.clustering.centroids import tolerance

    with db.connection() as conn:
        allowed = tolerance(conn)
        clusters = conn.execute("SELECT id, face_count, centroid_sum, centroid FROM cluster").fetchall()
        members: dict[int, list[np.ndarray]] = {}
        for cluster_id, embedding in conn.execute(
            """SELECT d.cluster_id, fe.embedding FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id WHERE d.cluster_id IS NOT NULL"""
        ).fetchall():
            members.setdefault(cluster_id, []).append(np.asarray(embedding.to_numpy(), np.float64))
    assert clusters
    for cluster_id, count, stored_sum, centroid in clusters:
        faces = members.get(cluster_id, [])
        assert count == len(faces), f"cluster {cluster_id}: face_count {count}, {len(faces)} members"
        if not faces:
            assert stored_sum is None and centroid is None
            continue
        exact = np.sum(faces, axis=0)
        assert np.allclose(stored_sum.to_numpy(), exact, rtol=0, atol=1e-4 * max(1.0, np.abs(exact).max()))
        unit = exact / np.linalg.norm(exact)
        stored = np.asarray(centroid.to_numpy(), np.float64)
        assert 1 - stored @ unit / np.linalg.norm(stored) <= allowed * 1.01 + 1e-7
