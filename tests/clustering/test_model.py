"""Tier 1's neighbour search: the per-cluster cells agree with the exhaustive search."""

from __future__ import annotations

import numpy as np

from photodb.clustering import model
from photodb.clustering.synthetic import make_faces


def test_cell_search_matches_exhaustive_prediction(monkeypatch):
    faces = make_faces(3000, 150, seed=5)
    base, new = faces.embeddings[:2700], faces.embeddings[2700:]
    fit = model.fit_clusters(base, min_cluster_size=3, min_samples=2, dims=96)
    exhaustive = model.Predictor(fit.clusterer, fit.reducer)
    assert exhaustive._cells is None  # small runs are searched exhaustively
    monkeypatch.setattr(model, "EXHAUSTIVE_UP_TO", 0)
    cells = model.Predictor(fit.clusterer, fit.reducer)
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
