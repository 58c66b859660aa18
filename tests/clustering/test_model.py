"""Tier 1's predictor, rebuilt from plain arrays: it agrees with hdbscan's own approximate_predict,
and its per-cluster cells agree with the exhaustive neighbour search."""

from __future__ import annotations

import hdbscan
import numpy as np

from photodb.clustering import predictor
from photodb.clustering.model import fit_clusters, selected_nodes
from photodb.clustering.run_state import TREE_DTYPE, Reducer, RunState
from photodb.clustering.synthetic import make_faces


def test_predictor_from_arrays_matches_hdbscan_approximate_predict():
    faces = make_faces(1500, 80, seed=3)
    reducer = Reducer.fit(faces.embeddings[:1300], 24)
    points, new = reducer.transform(faces.embeddings[:1300]), reducer.transform(faces.embeddings[1300:])
    fitted = hdbscan.HDBSCAN(min_cluster_size=3, min_samples=2, prediction_data=True).fit(points)
    labels = fitted.labels_.astype(np.int64)
    tree = fitted.condensed_tree_._raw_tree.astype(TREE_DTYPE)
    state = RunState(
        "arcface",
        points,
        fitted.prediction_data_.core_distances,
        labels,
        tree,
        selected_nodes(tree, labels, int(labels.max()) + 1),
        2,
    )
    identity = Reducer(np.zeros(points.shape[1], np.float32), np.eye(points.shape[1], dtype=np.float32), 1.0)
    ours = predictor.Predictor(RunState.from_bytes(state.to_bytes()), Reducer.from_bytes(identity.to_bytes()))
    got_labels, got_strengths = ours.predict(new)
    want_labels, want_strengths = hdbscan.approximate_predict(fitted, new)
    assert (got_labels >= 0).sum() > 50  # the comparison is not between two all-noise answers
    assert (got_labels == want_labels).all()
    assert np.allclose(got_strengths, want_strengths, atol=1e-4)  # float32 distances here, float64 there
    # and the outlier scores (the quality gate's, for new faces) are hdbscan's approximate_predict_scores
    _, _, got_scores = ours.predict_scored(new)
    want_scores = np.clip(hdbscan.approximate_predict_scores(fitted, new), 0, 1)
    assert np.ptp(want_scores) > 0.2
    assert np.allclose(got_scores, want_scores, atol=1e-3)


def test_cell_search_matches_exhaustive_prediction(monkeypatch):
    faces = make_faces(3000, 150, seed=5)
    base, new = faces.embeddings[:2700], faces.embeddings[2700:]
    fit = fit_clusters(base, min_cluster_size=3, min_samples=2, dims=96)
    exhaustive = predictor.Predictor(fit.state, fit.reducer)
    assert exhaustive._cells is None  # small runs are searched exhaustively
    monkeypatch.setattr(predictor, "EXHAUSTIVE_UP_TO", 0)
    cells = predictor.Predictor(fit.state, fit.reducer)
    assert cells._cells is not None
    points = fit.reducer.transform(new).astype(np.float64)
    exact_d, exact_i = exhaustive.neighbours(points, 4)
    cell_d, cell_i = cells.neighbours(points, 4)
    assert (cell_d >= exact_d - 1e-4).all()  # never closer than the true neighbours
    assert (cell_i[:, 0] == exact_i[:, 0]).mean() > 0.97
    labels, strengths = exhaustive.predict(new)
    cell_labels, cell_strengths = cells.predict(new)
    assert (labels == cell_labels).mean() > 0.97
    assert np.allclose(strengths[labels == cell_labels], cell_strengths[labels == cell_labels], atol=1e-6)
