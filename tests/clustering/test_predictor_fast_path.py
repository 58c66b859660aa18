"""Tier 1's per-face fast path (issue 10, §4) decides exactly as the scan it replaced.

The reference below is the previous implementation, kept here only as the yardstick: the cell
search ranked the whole noise block together with the probed members, and hdbscan's own per-point
step (`_find_cluster_and_probability`, which scans the whole condensed tree for the neighbour's row
and walks up the cluster tree one parent at a time) placed the face.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hdbscan.prediction import _cluster_tree_lookup, _find_cluster_and_probability

from photodb.clustering import predictor
from photodb.clustering.model import fit_clusters
from photodb.clustering.synthetic import make_faces
from photodb.clustering.tree_step import ClusterAncestors, place, tree_rows_of_points


def reference_cell_query(cells: predictor._Cells, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    points = np.atleast_2d(np.asarray(points, dtype=np.float32))
    out_d = np.empty((points.shape[0], k))
    out_i = np.empty((points.shape[0], k), dtype=np.int64)
    gaps = cells.centroid_squared[None, :] - 2 * (points @ cells.centroids.T)
    for row, q in enumerate(points):
        near = np.argpartition(gaps[row], predictor.PROBE_CLUSTERS)[: predictor.PROBE_CLUSTERS]
        members = np.concatenate([np.arange(cells.starts[c], cells.ends[c]) for c in near])
        rows = np.concatenate([np.arange(cells.noise_end), members])
        noise = cells.squared[: cells.noise_end] - 2 * (cells.data[: cells.noise_end] @ q)
        clustered = cells.squared[members] - 2 * (cells.data[members] @ q)
        squared = np.maximum(np.concatenate([noise, clustered]) + q @ q, 0)
        take = min(k, rows.size)
        best = np.argpartition(squared, take - 1)[:take] if take < rows.size else np.arange(rows.size)
        best = best[np.argsort(squared[best])]
        out_d[row, :take] = np.sqrt(squared[best])
        out_i[row, :take] = cells.order[rows[best]]
        out_d[row, take:], out_i[row, take:] = np.inf, out_i[row, 0]
    return out_d, out_i


def reference_predict(ours: predictor.Predictor, embeddings: np.ndarray) -> tuple[np.ndarray, ...]:
    points = ours.reducer.transform(embeddings).astype(np.float64)
    k = 2 * ours.state.min_samples
    if ours._cells is None:
        distances, indices = ours._exact.query(points, k)
    else:
        distances, indices = reference_cell_query(ours._cells, points, k)
    whole_tree = SimpleNamespace(_raw_tree=ours.state.tree)
    lookup = _cluster_tree_lookup(ours.cluster_tree)
    labels, strengths, scores = [], [], []
    for i in range(points.shape[0]):
        neighbour, lambda_ = ours._neighbour_and_lambda(
            indices[i], distances[i], ours.state.core_distances, ours.state.min_samples
        )
        scores.append(ours._outlier_score(neighbour, lambda_, distances[i]))
        label, strength, _ = _find_cluster_and_probability(
            whole_tree,
            ours.cluster_tree,
            indices[i],
            distances[i],
            ours.state.core_distances,
            ours.cluster_map,
            ours.max_lambdas,
            ours.state.min_samples,
            lookup,
            ours.root,
        )
        labels.append(label)
        strengths.append(strength)
    return np.array(labels), np.array(strengths), np.array(scores), distances, indices


@pytest.mark.parametrize("cells", [False, True], ids=["exhaustive", "cells"])
def test_fast_path_decides_as_the_full_scan(monkeypatch: pytest.MonkeyPatch, cells: bool) -> None:
    faces = make_faces(6000, 300, seed=11)
    base, new = faces.embeddings[:5400], faces.embeddings[5400:]
    fit = fit_clusters(base, min_cluster_size=3, min_samples=2, dims=96)
    if cells:
        monkeypatch.setattr(predictor, "EXHAUSTIVE_UP_TO", 0)
    ours = predictor.Predictor(fit.state, fit.reducer)
    assert (ours._cells is not None) == cells
    assert ours._cells is None or ours._cells.noise_end > 100  # the noise block is really searched
    # the new faces, some of the run's own points (distance 0) and pure noise
    queries = np.vstack([new, base[:50], faces.embeddings[faces.identities < 0][:50]])
    labels, strengths, scores = ours.predict_scored(queries)
    want_labels, want_strengths, want_scores, want_d, want_i = reference_predict(ours, queries)
    assert (want_labels >= 0).sum() > 300 and (want_labels < 0).sum() > 20  # both kinds of answer occur
    assert (labels == want_labels).all()
    assert np.array_equal(strengths, want_strengths)
    assert np.array_equal(scores, want_scores)
    points = ours.reducer.transform(queries).astype(np.float64)
    got_d, got_i = ours.neighbours(points, 2 * ours.state.min_samples)
    assert np.array_equal(got_d, want_d)
    assert np.array_equal(got_i, want_i)


def test_tree_row_of_each_point_is_the_one_the_scan_finds() -> None:
    faces = make_faces(800, 40, seed=3)
    fit = fit_clusters(faces.embeddings, min_cluster_size=3, min_samples=2, dims=32)
    tree = fit.state.tree
    rows = tree_rows_of_points(tree, fit.state.points.shape[0])
    for point in range(0, fit.state.points.shape[0], 7):
        assert tree[rows[point]]["child"] == point
        assert rows[point] == np.nonzero(tree["child"] == point)[0][0]


def test_the_walk_up_stops_where_hdbscans_does() -> None:
    """Every cluster node and a spread of lambdas, against hdbscan's step on a deep tree (the
    member's own row, so that only the walk decides)."""
    faces = make_faces(4000, 200, seed=8)
    fit = fit_clusters(faces.embeddings, min_cluster_size=3, min_samples=2, dims=64)
    tree = fit.state.tree
    ours = predictor.Predictor(fit.state, fit.reducer)
    ancestors = ClusterAncestors(ours.cluster_tree, ours.root)
    assert ancestors.monotone and len(ancestors.jumps) > 3  # a tree deep enough to jump in
    lookup = _cluster_tree_lookup(ours.cluster_tree)
    rows = tree_rows_of_points(tree, fit.state.points.shape[0])
    births = np.unique(ours.cluster_tree["lambda_val"])
    lambdas = np.concatenate([births[:: max(1, births.size // 40)], [0.0, births.max() * 2, np.nan]])
    core = np.zeros(fit.state.points.shape[0])
    compared = 0
    for point in range(0, fit.state.points.shape[0], 13):
        for lambda_ in lambdas:
            # one neighbour at distance 1 / lambda_ with core distance 0: hdbscan's lambda is lambda_
            distance = np.array([1.0 / lambda_ if lambda_ > 0 else np.inf] * 3)
            want = _find_cluster_and_probability(
                SimpleNamespace(_raw_tree=tree),
                ours.cluster_tree,
                np.array([point] * 3),
                distance,
                core,
                ours.cluster_map,
                ours.max_lambdas,
                2,
                lookup,
                ours.root,
            )
            got = place(tree, int(rows[point]), 1.0 / distance[0], ancestors, ours.cluster_map, ours.max_lambdas)
            assert (got[0], got[1]) == (want[0], want[1])
            compared += want[0] >= 0
    assert compared > 100
