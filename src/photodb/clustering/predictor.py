"""Tier 1: hdbscan's `approximate_predict`, rebuilt from a run's stored arrays (a RunState).

Nothing is unpickled: the cluster map and per-cluster lambdas that hdbscan's `PredictionData`
would hold are derived here from the condensed tree and the tree node of each label; the
library's find_neighbor_and_lambda (hdbscan_compat) and clustering.tree_step (hdbscan's walk up
the tree, in O(log depth)) place each new face in the tree. What hdbscan rebuilds per call (a
lookup of the cluster tree, ~40 ms at 5,000 clusters) is built once per run.

The neighbours it needs come from a search restricted to the run's noise points plus the members
of the `PROBE_CLUSTERS` clusters whose centroids are nearest: a brute-force pass over 100k reduced
points costs ~9 ms per face (memory bound), this one well under a millisecond. A face's nearest
neighbours sit in its own cluster (or among noise), whose centroid is among the nearest, so the
answer matches the exhaustive one except in rare borderline cases. Runs up to `EXHAUSTIVE_UP_TO`
points are searched exhaustively. Per face the search is one matrix-vector product over the noise
block (~13k x 96 values at 100k faces) and one over the centroids; everything else is over a few
hundred rows.
"""

from __future__ import annotations

import numpy as np

from photodb.clustering.hdbscan_compat import internals
from photodb.clustering.run_state import Reducer, RunState, RunStateError
from photodb.clustering.tree_step import ClusterAncestors, place, tree_rows_of_points

#: Runs up to this many points are searched exhaustively by tier 1.
EXHAUSTIVE_UP_TO = 20_000
#: Clusters whose members tier 1 searches (besides every noise point), nearest centroids first.
PROBE_CLUSTERS = 32


def cluster_maps(tree: np.ndarray, selected: np.ndarray) -> tuple[dict[int, int], dict[int, float]]:
    """Each cluster node at or below a selected one -> its label, and -> the selected one's top lambda."""
    clusters = tree[tree["child_size"] > 1]
    children: dict[int, list[int]] = {}
    for parent, child in zip(clusters["parent"].tolist(), clusters["child"].tolist(), strict=True):
        children.setdefault(parent, []).append(child)
    order = np.argsort(tree["parent"], kind="stable")
    parents = tree["parent"][order]
    lambdas = tree["lambda_val"][order]
    label_of: dict[int, int] = {}
    max_lambda: dict[int, float] = {}
    for label, node in enumerate(selected.tolist()):
        rows = lambdas[np.searchsorted(parents, node) : np.searchsorted(parents, node, side="right")]
        if rows.size == 0:
            raise RunStateError(f"stored run's cluster {label} has no node in the condensed tree")
        top = float(rows.max())
        below = [node]
        while below:
            current = below.pop()
            label_of[current], max_lambda[current] = label, top
            below.extend(children.get(current, ()))
    return label_of, max_lambda


class Predictor:
    """Labels and membership strengths of new faces in a stored run's condensed tree."""

    def __init__(self, state: RunState, reducer: Reducer) -> None:
        if reducer.dims != state.points.shape[1]:
            dims = state.points.shape[1]
            raise RunStateError(f"stored PCA gives {reducer.dims} dimensions, the run's points have {dims}")
        self._neighbour_and_lambda = internals().find_neighbor_and_lambda
        self.state = state
        self.reducer = reducer
        self.cluster_tree = state.tree[state.tree["child_size"] > 1]
        self.root = int(self.cluster_tree["parent"].min()) if self.cluster_tree.size else None
        self._ancestors = ClusterAncestors(self.cluster_tree, self.root) if self.root is not None else None
        self.cluster_map, self.max_lambdas = cluster_maps(state.tree, state.selected)
        self._exact = _Exact(state.points)
        self._glosh_lambdas = glosh_max_lambdas(state.tree)
        points = state.tree[state.tree["child"] < state.points.shape[0]]
        self._point_parent = np.full(state.points.shape[0], -1, np.int64)
        self._point_lambda = np.zeros(state.points.shape[0])
        self._point_parent[points["child"]] = points["parent"]
        self._point_lambda[points["child"]] = points["lambda_val"]
        self._tree_row = tree_rows_of_points(state.tree, state.points.shape[0])
        self._cells: _Cells | None = None
        if state.points.shape[0] > EXHAUSTIVE_UP_TO and state.selected.size > PROBE_CLUSTERS:
            self._cells = _Cells(state.points, state.labels)

    def neighbours(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cells is None:
            return self._exact.query(points, k)
        return self._cells.query(points, k)

    def predict(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (-1 = noise) and membership strengths of new faces in the run's tree."""
        labels, strengths, _ = self.predict_scored(embeddings)
        return labels, strengths

    def predict_scored(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels, strengths and approximate GLOSH outlier scores (hdbscan's
        approximate_predict_scores: NaN when the run has no cluster) of new faces."""
        points = self.reducer.transform(embeddings).astype(np.float64)
        labels = np.full(points.shape[0], -1, dtype=np.int64)
        strengths = np.zeros(points.shape[0])
        scores = np.full(points.shape[0], np.nan)
        if self.root is None or self._ancestors is None:
            return labels, strengths, scores
        min_samples = self.state.min_samples
        distances, indices = self.neighbours(points, 2 * min_samples)
        for i in range(points.shape[0]):
            neighbour, lambda_ = self._neighbour_and_lambda(
                indices[i], distances[i], self.state.core_distances, min_samples
            )
            scores[i] = self._outlier_score(neighbour, lambda_, distances[i])
            labels[i], strengths[i] = place(
                self.state.tree,
                int(self._tree_row[neighbour]),
                lambda_,
                self._ancestors,
                self.cluster_map,
                self.max_lambdas,
            )
        return labels, strengths, scores

    def _outlier_score(self, neighbour: int, lambda_: float, distances: np.ndarray) -> float:
        """GLOSH of one new point given its nearest mutual-reachability neighbour and lambda
        (find_neighbor_and_lambda): how far below that neighbour's cluster's densest lambda the
        point joins it (0 inside the core, towards 1 far outside)."""
        if distances.min() == 0:  # the point is one of the run's: its own lambda, without rounding
            lambda_ = self._point_lambda[neighbour]
        top = self._glosh_lambdas.get(int(self._point_parent[neighbour]), 0.0)
        return float(np.clip((top - lambda_) / top, 0.0, 1.0)) if top > 0 else 0.0


def glosh_max_lambdas(tree: np.ndarray) -> dict[int, float]:
    """Per cluster node, the largest lambda at which any point below it leaves (what GLOSH
    measures a point against), children before parents as the condensed tree is ordered."""
    top, _ = internals().group_by_parent(tree)
    top = {int(k): float(v) for k, v in top.items()}
    for parent, child in zip(tree["parent"][::-1].tolist(), tree["child"][::-1].tolist(), strict=True):
        if child in top and top[child] > top.get(parent, 0.0):
            top[parent] = top[child]
    return top


class _Exact:
    """Exact nearest neighbours by matrix product: in tens of dimensions BLAS beats any tree."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.squared = np.einsum("ij,ij->i", self.data, self.data)

    def query(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        points = np.atleast_2d(np.asarray(points, dtype=np.float32))
        k = min(k, self.data.shape[0])
        squared = np.maximum(
            np.einsum("ij,ij->i", points, points)[:, None] + self.squared[None, :] - 2 * points @ self.data.T, 0
        )
        if k < squared.shape[1]:
            nearest = np.argpartition(squared, k - 1, axis=1)[:, :k]
        else:
            nearest = np.tile(np.arange(squared.shape[1]), (points.shape[0], 1))
        part = np.take_along_axis(squared, nearest, axis=1)
        order = np.argsort(part, axis=1)
        distances = np.sqrt(np.take_along_axis(part, order, axis=1)).astype(np.float64)
        return distances, np.take_along_axis(nearest, order, axis=1)


class _Cells:
    """The run's points grouped by cluster label (noise in one block), with cluster centroids."""

    def __init__(self, points: np.ndarray, labels: np.ndarray) -> None:
        order = np.argsort(labels, kind="stable")
        self.order = order
        self.data = np.ascontiguousarray(points[order])
        self.squared = np.einsum("ij,ij->i", self.data, self.data)
        sorted_labels = labels[order]
        count = int(labels.max()) + 1
        self.noise_end = int(np.searchsorted(sorted_labels, 0))
        self.starts = np.searchsorted(sorted_labels, np.arange(count))
        self.ends = np.searchsorted(sorted_labels, np.arange(count), side="right")
        sums = np.add.reduceat(self.data[self.noise_end :], self.starts - self.noise_end, axis=0)
        self.centroids = (sums / (self.ends - self.starts)[:, None]).astype(np.float32)
        self.centroid_squared = np.einsum("ij,ij->i", self.centroids, self.centroids)

    def query(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest among the noise block and the members of the PROBE_CLUSTERS cells whose
        centroids are nearest. The members are ranked first; only noise points no farther than the
        k-th of them are ranked after (the k nearest of both are among those 2k), and only the few
        chosen are clamped and square-rooted, which leaves one matrix-vector product over the
        noise block as the main cost of a face."""
        points = np.atleast_2d(np.asarray(points, dtype=np.float32))
        out_d = np.empty((points.shape[0], k))
        out_i = np.empty((points.shape[0], k), dtype=np.int64)
        # squared distance to each cell's centroid, less the query's own norm (the same for every
        # cell of a row): one matrix product, no (points x cells x dims) temporary
        gaps = self.centroid_squared[None, :] - 2 * (points @ self.centroids.T)
        for row, q in enumerate(points):
            near = np.argpartition(gaps[row], PROBE_CLUSTERS)[:PROBE_CLUSTERS]
            members = self._members(near)
            noise = self.squared[: self.noise_end] - 2 * (self.data[: self.noise_end] @ q)
            clustered = self.squared[members] - 2 * (self.data[members] @ q)
            near_members = _smallest(clustered, k)
            # a noise point among the k nearest is no farther than the k-th nearest member
            reach = clustered[near_members].max() if near_members.size == k else np.inf
            near_noise = np.flatnonzero(noise <= reach)
            near_noise = near_noise[_smallest(noise[near_noise], k)]
            rows = np.concatenate([near_noise, members[near_members]])
            squared = np.maximum(np.concatenate([noise[near_noise], clustered[near_members]]) + q @ q, 0)
            take = min(k, rows.size)
            best = np.lexsort((rows, squared))[:take]  # nearest first, ties by row
            out_d[row, :take] = np.sqrt(squared[best])
            out_i[row, :take] = self.order[rows[best]]
            out_d[row, take:], out_i[row, take:] = np.inf, out_i[row, 0]
        return out_d, out_i

    def _members(self, cells: np.ndarray) -> np.ndarray:
        """Rows (in this block's order) of every member of `cells`, cell by cell."""
        lengths = self.ends[cells] - self.starts[cells]
        return np.arange(int(lengths.sum())) + np.repeat(self.starts[cells] - np.cumsum(lengths) + lengths, lengths)


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest values (all of them when there are no more than k), unordered."""
    if values.size <= k:
        return np.arange(values.size)
    return np.argpartition(values, k - 1)[:k]
