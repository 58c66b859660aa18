"""Tier 2's epsilon ball with the lambdas of a real bootstrap: a cluster reaches a cosine distance of
(1 / lambda_birth)^2 / 2 from its centroid, never more than the model's threshold."""

from __future__ import annotations

import numpy as np

from photodb.clustering import incremental
from photodb.clustering.bootstrap import bootstrap, epsilon_distance
from photodb.clustering.incremental import assign_new_faces
from photodb.database.connection import Database
from tests.clustering.conftest import insert


def at_distance(centroid: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly this cosine distance from the centroid."""
    other = rng.standard_normal(centroid.size)
    other -= (other @ centroid) * centroid
    cos = 1.0 - distance
    return (cos * centroid + np.sqrt(1 - cos**2) * other / np.linalg.norm(other)).astype(np.float32)


def test_epsilon_from_real_lambdas_and_its_cap(db, settings, faces):
    insert(db, faces.embeddings)
    bootstrap(db)
    with db.connection() as conn:
        rows = conn.execute("SELECT id, centroid, lambda_birth FROM cluster WHERE lambda_birth > 0").fetchall()
        conn.execute("UPDATE hdbscan_run SET label_to_cluster_id = '{}'")  # tier 1 never matches: tier 2 decides
    incremental._models.clear()
    reach = {cid: (1.0 / lam) ** 2 / 2 for cid, _, lam in rows}
    sums = {cid: np.asarray(c.to_numpy(), np.float64) for cid, c, _ in rows}  # stored as the members' sum
    centroids = {cid: total / np.linalg.norm(total) for cid, total in sums.items()}
    narrow, wide = min(reach, key=reach.get), max(reach, key=reach.get)
    threshold = (reach[narrow] + reach[wide]) / 2
    assert reach[narrow] < 0.85 * threshold and reach[wide] > 1.15 * threshold
    assert epsilon_distance(1 / np.sqrt(2 * reach[wide]), threshold) == threshold
    assert np.isclose(epsilon_distance(1 / np.sqrt(2 * reach[narrow]), threshold), reach[narrow])
    rng = np.random.default_rng(0)
    # with the default threshold every one of these clusters is capped: past it, no ball holds a face
    default = db.settings.clustering_threshold
    assert min(reach.values()) > default
    (face,) = insert(db, at_distance(centroids[narrow], (default + reach[narrow]) / 2, rng)[None, :])
    assert assign_new_faces(db, [face], force=True).cluster_of[face] != narrow
    probes = [  # (cluster, distance from its centroid, lands in it); outside ones first (a join moves the centroid)
        (narrow, 1.15 * reach[narrow], False),  # past the lambda-derived ball, though well within the threshold
        (wide, (threshold + reach[wide]) / 2, False),  # inside the uncapped ball, past the cap
        (narrow, 0.85 * reach[narrow], True),
        (wide, 0.85 * threshold, True),
    ]
    # a threshold between the real reaches, so that one cluster is capped by it and the other not
    capped = Database(settings.model_copy(update={"clustering_threshold": threshold}))
    try:
        for cluster, distance, lands in probes:
            (face,) = insert(capped, at_distance(centroids[cluster], distance, rng)[None, :])
            report = assign_new_faces(capped, [face], force=True)
            assert (report.cluster_of[face] == cluster) == lands, (cluster, distance, report.outcomes)
            assert "tier1" not in report.outcomes
    finally:
        capped.close()
