"""Bootstrap on generated identities (look-alikes and noise included): quality and what is persisted."""

from __future__ import annotations

import numpy as np

from photodb.clustering.bootstrap import bootstrap
from photodb.clustering.run_state import Reducer, RunState
from photodb.clustering.synthetic import pairwise_f1
from tests.clustering.conftest import clusters_of, insert


def test_bootstrap_finds_identities_and_persists_the_run(db, faces):
    ids = insert(db, faces.embeddings)
    dry = bootstrap(db, dry_run=True)[0]
    assert dry.run_id is None and dry.clusters > 0
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM cluster").fetchone()[0] == 0

    (report,) = bootstrap(db)
    got = clusters_of(db, ids)
    labels = np.array([got[i] if got[i] is not None else -1 for i in ids])
    assert pairwise_f1(faces.identities, labels) > 0.95
    assert report.clusters == dry.clusters and report.noise == dry.noise
    with db.connection() as conn:
        run = conn.execute(
            """SELECT id, is_active, embedding_count, cluster_count, noise_count, min_cluster_size, min_samples,
                      condensed_tree, label_to_cluster_id, clusterer_state, reducer_state FROM hdbscan_run"""
        ).fetchone()
        assert run[1] and run[2] == len(ids) and (run[3], run[4]) == (report.clusters, report.noise)
        assert (run[5], run[6]) == (3, 2)
        assert set(run[7]) == {"parent", "child", "lambda_val", "child_size"}
        assert set(run[8].values()) <= {r[0] for r in conn.execute("SELECT id FROM cluster").fetchall()}
        state, reducer = RunState.from_bytes(bytes(run[9])), Reducer.from_bytes(bytes(run[10]))  # plain arrays
        assert state.points.shape == (len(ids), reducer.dims) and state.embedding_model == "arcface"
        assert state.selected.size == int(state.labels.max()) + 1
        rows = conn.execute(
            """SELECT c.face_count, (SELECT count(*) FROM person_detection d WHERE d.cluster_id = c.id),
                      vector_norm(c.centroid), c.medoid_detection_id IS NOT NULL, c.hdbscan_run_id, c.lambda_birth
               FROM cluster c"""
        ).fetchall()
        for count, members, norm, has_medoid, run_id, _lam in rows:
            assert count == members and abs(norm - 1) < 1e-4 and has_medoid and run_id == run[0]
        assert sum(r[5] is not None for r in rows) >= len(rows) * 0.9
        noise = conn.execute(
            """SELECT count(*) FILTER (WHERE unassigned_since IS NULL), count(*) FROM person_detection
               WHERE cluster_id IS NULL AND cluster_status = 'unassigned'"""
        ).fetchone()
        assert noise == (0, report.noise - report.noise_placed - report.leftover_faces)
        assert (
            conn.execute(
                "SELECT count(*) FROM person_detection WHERE outlier_score IS NULL OR lambda_val IS NULL"
            ).fetchone()[0]
            == 0
        )

    again = bootstrap(db)[0]  # the same data again: ids are reused, hardly anything moves
    assert again.reused_clusters >= report.clusters * 0.9 and again.faces_moved <= len(ids) * 0.05
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM hdbscan_run WHERE is_active").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM hdbscan_run WHERE clusterer_state IS NOT NULL").fetchone()[0] == 1


def test_models_are_clustered_separately(db, faces):
    insert(db, faces.embeddings[:300], "arcface")
    padded = np.zeros((300, 512), np.float32)
    padded[:, :128] = faces.embeddings[300:600, :128]
    padded /= np.linalg.norm(padded, axis=1, keepdims=True)
    insert(db, padded, "dlib")
    with db.connection() as conn:  # as the detection stage stores them: 128 real dimensions, zero-padded
        conn.execute("UPDATE face_embedding SET embedding_dim = 128 WHERE embedding_model = 'dlib'")
    reports = bootstrap(db)
    assert sorted(r.embedding_model for r in reports) == ["arcface", "dlib"]
    with db.connection() as conn:
        mixed = conn.execute(
            """SELECT count(*) FROM person_detection d JOIN face_embedding f ON f.person_detection_id = d.id
               JOIN cluster c ON c.id = d.cluster_id WHERE c.embedding_model <> f.embedding_model"""
        ).fetchone()[0]
    assert mixed == 0
