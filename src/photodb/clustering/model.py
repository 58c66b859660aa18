"""HDBSCAN that is fast at 100k faces and still answers `hdbscan.approximate_predict`.

Plain `hdbscan.HDBSCAN` on 512-d embeddings falls back to an all-pairs Prim's MST (hours at 100k),
and its kd-tree Boruvka is no faster once the data's intrinsic dimension is high. So:

1. PCA to `dims` components (fitted here, stored with the run, applied to every later face), scaled
   so that Euclidean distances in the reduced space estimate those between the unit vectors.
2. Exact k nearest neighbours in the reduced space by blocked BLAS (scikit-learn's brute-force
   ArgKmin); core distance = distance to the `min_samples`-th point counting the point itself,
   exactly as the hdbscan library defines it.
3. The minimum spanning tree of the mutual-reachability k-NN graph (the maintainers' recommended
   approximation); the graph's separate components are joined by their closest pairs of points,
   found between the components' representatives.
4. The hdbscan library's own single-linkage -> condensed tree -> cluster selection code, and its
   own `PredictionData` (built on an exact brute-force index instead of a kd-tree), so the
   resulting `HDBSCAN` object pickles and supports `approximate_predict` like a fitted one.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any

import hdbscan
import numpy as np
from hdbscan._hdbscan_linkage import label as single_linkage_from_mst
from hdbscan._hdbscan_tree import outlier_scores
from hdbscan.hdbscan_ import _tree_to_labels
from hdbscan.prediction import PredictionData, _cluster_tree_lookup, _find_cluster_and_probability
from scipy.sparse import coo_matrix, csgraph
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

#: Neighbours per point in the k-NN graph; 15 keeps the MST exact inside dense regions.
GRAPH_NEIGHBOURS = 15
#: Points per component used to find the closest pair when joining two components.
JOIN_CANDIDATES = 64


@dataclass(frozen=True)
class Reducer:
    """PCA as plain arrays: stored with the run (no pickle) and applied to every later face."""

    mean: np.ndarray  # (512,)
    components: np.ndarray  # (dims, 512)
    scale: float

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        reduced = (np.asarray(embeddings, dtype=np.float32) - self.mean) @ self.components.T
        return (reduced * self.scale).astype(np.float32)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, components=self.components, scale=np.float64(self.scale))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Reducer:
        with np.load(io.BytesIO(data)) as arrays:
            return cls(arrays["mean"], arrays["components"], float(arrays["scale"]))

    @classmethod
    def fit(cls, embeddings: np.ndarray, dims: int, seed: int = 0) -> Reducer:
        dims = max(1, min(dims, embeddings.shape[0] - 1, embeddings.shape[1]))
        pca = PCA(n_components=dims, svd_solver="randomized", random_state=seed).fit(embeddings)
        retained = float(pca.explained_variance_ratio_.sum())
        scale = 1.0 / np.sqrt(retained) if retained > 0 else 1.0
        return cls(pca.mean_.astype(np.float32), pca.components_.astype(np.float32), scale)


class ExactIndex:
    """Exact nearest neighbours by matrix product: in tens of dimensions BLAS beats any tree.

    It stands in for the kd-tree of `PredictionData`, so `approximate_predict` on one new face
    costs one matrix-vector product over the run's points (about a millisecond at 100k).
    """

    def __init__(self, data: np.ndarray, metric: str = "euclidean", known: Any = None) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.squared = np.einsum("ij,ij->i", self.data, self.data)
        self._known = known  # (source array, distances, indices) computed by the bootstrap

    def query(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        known, self._known = self._known, None
        if known is not None and points is known[0] and k <= known[1].shape[1]:
            return known[1][:, :k].astype(np.float64), known[2][:, :k]
        points = np.atleast_2d(np.asarray(points, dtype=np.float32))
        k = min(k, self.data.shape[0])
        squared = np.maximum(
            np.einsum("ij,ij->i", points, points)[:, None] + self.squared[None, :] - 2 * points @ self.data.T,
            0,
        )
        nearest = (
            np.argpartition(squared, k - 1, axis=1)[:, :k]
            if k < squared.shape[1]
            else (np.tile(np.arange(squared.shape[1]), (points.shape[0], 1)))
        )
        part = np.take_along_axis(squared, nearest, axis=1)
        order = np.argsort(part, axis=1)
        return np.sqrt(np.take_along_axis(part, order, axis=1)).astype(np.float64), np.take_along_axis(
            nearest, order, axis=1
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "squared": self.squared, "_known": None}


@dataclass
class Fit:
    """What one bootstrap computed, per point and per cluster label."""

    reducer: Reducer
    clusterer: hdbscan.HDBSCAN
    labels: np.ndarray
    probabilities: np.ndarray
    outlier_scores: np.ndarray
    lambda_vals: np.ndarray
    lambda_birth: dict[int, float | None]
    persistence: dict[int, float | None]

    @property
    def cluster_count(self) -> int:
        return int(self.labels.max(initial=-1) + 1)

    def condensed_tree_json(self) -> dict[str, list[Any]]:
        tree = self.clusterer._condensed_tree
        lambdas = [float(v) if np.isfinite(v) else None for v in tree["lambda_val"]]
        return {
            "parent": tree["parent"].tolist(),
            "child": tree["child"].tolist(),
            "lambda_val": lambdas,
            "child_size": tree["child_size"].tolist(),
        }


def _knn(points: np.ndarray, k: int, jobs: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, points.shape[0])
    search = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=jobs).fit(points)
    distances, indices = search.kneighbors(points)
    # A point is its own first neighbour; duplicates can displace it, so put it first explicitly.
    own = np.arange(points.shape[0])
    swap = indices[:, 0] != own
    if swap.any():
        rows = np.nonzero(swap)[0]
        where = np.argmax(indices[rows] == own[rows, None], axis=1)
        has_self = indices[rows, where] == own[rows]
        indices[rows[has_self], where[has_self]] = indices[rows[has_self], 0]
        indices[rows, 0] = own[rows]
        distances[rows, 0] = 0.0
    return distances.astype(np.float32), indices


def _join_components(points: np.ndarray, core: np.ndarray, component: np.ndarray, count: int) -> np.ndarray:
    """Edges (a, b, weight) that join the k-NN graph's components into one tree.

    Components are linked along the MST of their centroids; each link is the closest pair between
    the two components' points nearest to the other's centroid, weighted by mutual reachability.
    """
    centroids = np.vstack([points[component == c].mean(axis=0) for c in range(count)])
    squared = ((centroids[:, None, :] - centroids[None, :, :]) ** 2).sum(-1) if count <= 4000 else None
    if squared is not None:
        tree = csgraph.minimum_spanning_tree(np.sqrt(squared) + 1e-9)
    else:
        cd, ci = _knn(centroids, 16, 1)
        rows = np.repeat(np.arange(count), ci.shape[1])
        graph = coo_matrix((cd.ravel() + 1e-9, (rows, ci.ravel())), shape=(count, count))
        tree = csgraph.minimum_spanning_tree(graph)
    tree = tree.tocoo()
    members = [np.nonzero(component == c)[0] for c in range(count)]
    edges = []
    for ca, cb in zip(tree.row, tree.col, strict=True):
        side_a = members[ca][np.argsort(((points[members[ca]] - centroids[cb]) ** 2).sum(1))[:JOIN_CANDIDATES]]
        side_b = members[cb][np.argsort(((points[members[cb]] - centroids[ca]) ** 2).sum(1))[:JOIN_CANDIDATES]]
        dist = np.sqrt(((points[side_a][:, None, :] - points[side_b][None, :, :]) ** 2).sum(-1))
        reach = np.maximum(dist, np.maximum(core[side_a][:, None], core[side_b][None, :]))
        i, j = np.unravel_index(np.argmin(reach), reach.shape)
        edges.append((side_a[i], side_b[j], reach[i, j]))
    if len(edges) < count - 1:  # a centroid graph that was itself split: chain what is left
        linked = csgraph.connected_components(
            coo_matrix(
                (np.ones(len(edges)), ([e[0] for e in edges], [e[1] for e in edges])), shape=(points.shape[0],) * 2
            ),
            directed=False,
        )[1]
        top = max((e[2] for e in edges), default=1.0) * 2
        roots = {}
        for c in range(count):
            roots.setdefault(linked[members[c][0]], members[c][0])
        anchors = list(roots.values())
        edges.extend((anchors[0], other, top) for other in anchors[1:])
    return np.asarray(edges, dtype=np.float64).reshape(-1, 3)


def _mst(points: np.ndarray, min_samples: int, jobs: int) -> tuple[np.ndarray, tuple]:
    n = points.shape[0]
    distances, indices = _knn(points, max(GRAPH_NEIGHBOURS, min_samples) + 1, jobs)
    core = distances[:, min(min_samples, distances.shape[1]) - 1].astype(np.float64)
    rows = np.repeat(np.arange(n), indices.shape[1] - 1)
    cols = indices[:, 1:].ravel()
    weights = np.maximum(distances[:, 1:].ravel().astype(np.float64), np.maximum(core[rows], core[cols]))
    graph = coo_matrix((np.maximum(weights, 1e-12), (rows, cols)), shape=(n, n)).tocsr()
    tree = csgraph.minimum_spanning_tree(graph).tocoo()
    edges = np.column_stack([tree.row, tree.col, tree.data]).astype(np.float64)
    count, component = csgraph.connected_components(tree, directed=False)
    if count > 1:
        edges = np.vstack([edges, _join_components(points, core, component, count)])
    edges = edges[np.argsort(edges[:, 2], kind="stable")]
    return edges, (points, distances, indices)


def fit_clusters(
    embeddings: np.ndarray,
    *,
    min_cluster_size: int,
    min_samples: int,
    dims: int,
    selection_method: str = "eom",
    jobs: int = 2,
) -> Fit:
    """Cluster L2-normalized embeddings; every array in the result is indexed like `embeddings`."""
    n = embeddings.shape[0]
    if n < 2:
        raise ValueError("clustering needs at least two faces")
    reducer = Reducer.fit(embeddings, dims)
    points = reducer.transform(embeddings)
    edges, known = _mst(points, min_samples, jobs)
    slt = single_linkage_from_mst(edges)
    labels, probabilities, stabilities, condensed, _ = _tree_to_labels(points, slt, min_cluster_size, selection_method)
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        cluster_selection_method=selection_method,
    )
    clusterer.labels_ = labels
    clusterer.probabilities_ = probabilities
    clusterer.cluster_persistence_ = stabilities
    clusterer._condensed_tree = condensed
    clusterer._outlier_scores = outlier_scores(condensed)
    prediction = PredictionData.__new__(PredictionData)
    prediction._tree_type_map = {"exact": functools.partial(ExactIndex, known=known)}
    PredictionData.__init__(prediction, points, clusterer.condensed_tree_, min_samples, tree_type="exact")
    del prediction._tree_type_map
    clusterer._prediction_data = prediction

    point_rows = condensed[condensed["child"] < n]
    lambda_vals = np.full(n, np.nan)
    lambda_vals[point_rows["child"]] = point_rows["lambda_val"]
    birth: dict[int, float | None] = {}
    persistence: dict[int, float | None] = {}
    for lab, node in prediction.reverse_cluster_map.items():
        born = condensed["lambda_val"][condensed["child"] == node]
        start = float(born[0]) if born.size and np.isfinite(born[0]) and born[0] > 0 else None
        leaving = condensed["lambda_val"][condensed["parent"] == node]
        end = float(leaving.max()) if leaving.size else None
        birth[lab] = start
        persistence[lab] = end - (start or 0.0) if end is not None and np.isfinite(end) else None
    return Fit(
        reducer=reducer,
        clusterer=clusterer,
        labels=labels,
        probabilities=probabilities,
        outlier_scores=np.asarray(clusterer._outlier_scores, dtype=np.float64),
        lambda_vals=lambda_vals,
        lambda_birth=birth,
        persistence=persistence,
    )


class Predictor:
    """Tier 1: `approximate_predict` with the tree lookups it rebuilds on every call built once.

    hdbscan's `approximate_predict` spends O(clusters) Python time per call building a dict of
    the cluster tree (~40 ms at 5,000 clusters); per-face calls from the detection stage would
    pay it every time, so this runs the library's own per-point step with a cached lookup.

    The neighbours it needs come from a search restricted to the run's noise points plus the
    members of the `PROBE_CLUSTERS` clusters whose centroids are nearest: a brute-force pass over
    100k reduced points costs ~9 ms per face (memory bound), this one well under a millisecond.
    A face's nearest neighbours sit in its own cluster (or among noise), whose centroid is among
    the nearest, so the answer matches the exhaustive one except in rare borderline cases. Runs
    up to `EXHAUSTIVE_UP_TO` points are searched exhaustively.
    """

    def __init__(self, clusterer: hdbscan.HDBSCAN, reducer: Reducer) -> None:
        self.clusterer = clusterer
        self.reducer = reducer
        data = clusterer.prediction_data_
        self.tree = clusterer.condensed_tree_
        self.lookup = _cluster_tree_lookup(data.cluster_tree)
        self.root = data.cluster_tree["parent"].min() if data.cluster_tree.shape[0] else None
        self.min_samples = clusterer.min_samples or clusterer.min_cluster_size
        self._cells: _Cells | None = None
        raw = np.asarray(data.raw_data, dtype=np.float32)
        if raw.shape[0] > EXHAUSTIVE_UP_TO and int(np.max(clusterer.labels_, initial=-1)) >= PROBE_CLUSTERS:
            self._cells = _Cells(raw, np.asarray(clusterer.labels_))

    def neighbours(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cells is None:
            return self.clusterer.prediction_data_.tree.query(points, k=k)
        return self._cells.query(points, k)

    def predict(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (-1 = noise) and membership strengths of new faces in the run's tree."""
        points = self.reducer.transform(embeddings).astype(np.float64)
        labels = np.full(points.shape[0], -1, dtype=np.int64)
        strengths = np.zeros(points.shape[0])
        if self.root is None:
            return labels, strengths
        data = self.clusterer.prediction_data_
        distances, indices = self.neighbours(points, 2 * self.min_samples)
        for i in range(points.shape[0]):
            labels[i], strengths[i], _ = _find_cluster_and_probability(
                self.tree,
                data.cluster_tree,
                indices[i],
                distances[i],
                data.core_distances,
                data.cluster_map,
                data.max_lambdas,
                self.min_samples,
                self.lookup,
                self.root,
            )
        return labels, strengths


#: Runs up to this many points are searched exhaustively by tier 1.
EXHAUSTIVE_UP_TO = 20_000
#: Clusters whose members tier 1 searches (besides every noise point), nearest centroids first.
PROBE_CLUSTERS = 32


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

    def query(self, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        points = np.atleast_2d(np.asarray(points, dtype=np.float32))
        out_d = np.empty((points.shape[0], k))
        out_i = np.empty((points.shape[0], k), dtype=np.int64)
        gaps = ((self.centroids - points[:, None, :]) ** 2).sum(-1) if points.shape[0] <= 8 else None
        for row, q in enumerate(points):
            gap = gaps[row] if gaps is not None else ((self.centroids - q) ** 2).sum(-1)
            near = np.argpartition(gap, PROBE_CLUSTERS)[:PROBE_CLUSTERS]
            members = np.concatenate([np.arange(self.starts[c], self.ends[c]) for c in near])
            rows = np.concatenate([np.arange(self.noise_end), members])
            noise = self.squared[: self.noise_end] - 2 * (self.data[: self.noise_end] @ q)
            clustered = self.squared[members] - 2 * (self.data[members] @ q)
            squared = np.maximum(np.concatenate([noise, clustered]) + q @ q, 0)
            take = min(k, rows.size)
            best = np.argpartition(squared, take - 1)[:take] if take < rows.size else np.arange(rows.size)
            best = best[np.argsort(squared[best])]
            out_d[row, :take] = np.sqrt(squared[best])
            out_i[row, :take] = self.order[rows[best]]
            out_d[row, take:], out_i[row, take:] = np.inf, out_i[row, 0]
        return out_d, out_i
