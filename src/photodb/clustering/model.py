"""HDBSCAN that is fast at 100k faces, with what `approximate_predict` needs kept as plain arrays.

Plain `hdbscan.HDBSCAN` on 512-d embeddings falls back to an all-pairs Prim's MST (hours at 100k),
and its kd-tree Boruvka is no faster once the data's intrinsic dimension is high. So:

1. PCA to `dims` components (fitted here, stored with the run, applied to every later face), scaled
   so that Euclidean distances in the reduced space estimate those between the unit vectors.
2. Exact k nearest neighbours in the reduced space by blocked BLAS (scikit-learn's brute-force
   ArgKmin); core distance = distance to the `min_samples`-th point counting the point itself,
   exactly as the hdbscan library defines it.
3. The minimum spanning tree of the mutual-reachability k-NN graph (the maintainers' recommended
   approximation); the graph's separate components (tight groups such as burst shots are each
   one) are joined along a spanning tree of their centroids, each link being the closest pair
   among the points of either side nearest to the other side's centroid.
4. The hdbscan library's own single-linkage -> condensed tree -> cluster selection code
   (hdbscan_compat), whose result is kept as a `RunState`: the reduced points, core distances,
   labels and condensed tree that tier 1 (photodb.clustering.predictor) predicts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix, csgraph
from sklearn.neighbors import NearestNeighbors

from photodb.clustering.hdbscan_compat import internals
from photodb.clustering.run_state import TREE_DTYPE, Reducer, RunState

#: Neighbours per point in the k-NN graph; 15 keeps the MST exact inside dense regions.
GRAPH_NEIGHBOURS = 15
#: Points per component used to find the closest pair when joining two components.
JOIN_CANDIDATES = 64
#: Up to this many components their centroids' spanning tree is exact (a count x count matrix);
#: beyond it, it is taken from the centroids' k-NN graph.
DENSE_COMPONENTS = 2048
#: Distances computed per block when ranking a large component's points (bounds memory: ~40 MB).
BLOCK_ENTRIES = 2_000_000


@dataclass
class Fit:
    """What one bootstrap computed, per point and per cluster label."""

    reducer: Reducer
    state: RunState
    probabilities: np.ndarray
    outlier_scores: np.ndarray
    lambda_vals: np.ndarray
    lambda_birth: dict[int, float | None]
    persistence: dict[int, float | None]

    @property
    def labels(self) -> np.ndarray:
        return self.state.labels

    @property
    def cluster_count(self) -> int:
        return int(self.state.selected.size)

    def condensed_tree_json(self) -> dict[str, list[Any]]:
        tree = self.state.tree
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


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All squared Euclidean distances between rows of a and of b, without an (a, b, d) temporary."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out = np.einsum("ij,ij->i", a64, a64)[:, None] + np.einsum("ij,ij->i", b64, b64)[None, :] - 2 * a64 @ b64.T
    return np.maximum(out, 0)


def _centroid_tree(centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (rows, cols) of a spanning forest of the centroids: exact when few, else over their k-NN."""
    count = centroids.shape[0]
    if count <= DENSE_COMPONENTS:
        graph = np.sqrt(_squared_distances(centroids, centroids)) + 1e-9
        np.fill_diagonal(graph, 0)
        tree = csgraph.minimum_spanning_tree(graph).tocoo()
    else:
        cd, ci = _knn(centroids, 16, 1)
        rows = np.repeat(np.arange(count), ci.shape[1])
        graph = coo_matrix((cd.ravel() + 1e-9, (rows, ci.ravel())), shape=(count, count))
        tree = csgraph.minimum_spanning_tree(graph).tocoo()
    return tree.row.astype(np.int64), tree.col.astype(np.int64)


def _join_candidates(
    points: np.ndarray, members: list[np.ndarray], centroids: np.ndarray, links: tuple[np.ndarray, np.ndarray]
) -> dict[tuple[int, int], np.ndarray]:
    """For each linked (component, partner): the component's points nearest to the partner's centroid.

    A large component is ranked against all its partners block by block (one matrix product per
    block), so a component linked to thousands of small ones costs BLAS time, not a Python loop
    over its points per link.
    """
    partners: dict[int, list[int]] = {}
    for a, b in zip(*links, strict=True):
        partners.setdefault(int(a), []).append(int(b))
        partners.setdefault(int(b), []).append(int(a))
    found: dict[tuple[int, int], np.ndarray] = {}
    for component, others in partners.items():
        own = members[component]
        if own.size <= JOIN_CANDIDATES:
            found.update(((component, other), own) for other in others)
            continue
        mine = points[own]
        norms = np.einsum("ij,ij->i", mine, mine)
        step = max(1, BLOCK_ENTRIES // own.size)
        for start in range(0, len(others), step):
            block = others[start : start + step]
            # squared distance up to a per-column constant, which does not change the ranking
            gaps = norms[:, None] - 2 * (mine @ centroids[block].T.astype(np.float32))
            nearest = np.argpartition(gaps, JOIN_CANDIDATES - 1, axis=0)[:JOIN_CANDIDATES]
            found.update(((component, other), own[nearest[:, j]]) for j, other in enumerate(block))
    return found


def _join_components(points: np.ndarray, core: np.ndarray, component: np.ndarray, count: int) -> np.ndarray:
    """Edges (a, b, weight) that join the k-NN graph's components into one tree.

    Components are linked along a spanning tree of their centroids; each link is the closest pair
    between the two components' points nearest to the other's centroid, weighted by mutual
    reachability. Memory stays O(n + count * JOIN_CANDIDATES) plus one bounded block.
    """
    order = np.argsort(component, kind="stable")
    bounds = np.searchsorted(component[order], np.arange(count + 1))
    members = [order[bounds[c] : bounds[c + 1]] for c in range(count)]
    sums = np.column_stack([np.bincount(component, points[:, d], count) for d in range(points.shape[1])])
    centroids = sums / np.diff(bounds)[:, None]
    links = _centroid_tree(centroids)
    candidates = _join_candidates(points, members, centroids, links)
    edges = []
    for ca, cb in zip(*links, strict=True):
        side_a, side_b = candidates[(int(ca), int(cb))], candidates[(int(cb), int(ca))]
        dist = np.sqrt(_squared_distances(points[side_a], points[side_b]))
        reach = np.maximum(dist, np.maximum(core[side_a][:, None], core[side_b][None, :]))
        i, j = np.unravel_index(np.argmin(reach), reach.shape)
        edges.append((side_a[i], side_b[j], reach[i, j]))
    if len(edges) < count - 1:  # a centroid graph that was itself split: chain what is left
        size = points.shape[0]
        pairs = np.asarray([(e[0], e[1]) for e in edges], dtype=np.int64).reshape(-1, 2)
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(size, size))
        linked = csgraph.connected_components(graph, directed=False)[1]
        firsts = order[bounds[:-1]]
        _, anchor_rows = np.unique(linked[firsts], return_index=True)
        anchors = firsts[np.sort(anchor_rows)]
        top = max((e[2] for e in edges), default=1.0) * 2
        edges.extend((anchors[0], other, top) for other in anchors[1:])
    return np.asarray(edges, dtype=np.float64).reshape(-1, 3)


def _mst(points: np.ndarray, min_samples: int, jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """The mutual-reachability MST's edges sorted by weight, and every point's core distance."""
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
    return edges, core


def selected_nodes(tree: np.ndarray, labels: np.ndarray, clusters: int) -> np.ndarray:
    """The condensed-tree node of each label: the topmost parent among its points, as hdbscan has it."""
    points = tree[tree["child_size"] == 1]
    labelled = labels[points["child"]]
    keep = labelled >= 0
    nodes = np.full(clusters, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(nodes, labelled[keep], points["parent"][keep])
    return nodes


def _cluster_lambdas(tree: np.ndarray, nodes: np.ndarray) -> tuple[dict[int, float | None], dict[int, float | None]]:
    """Per label: the lambda at which its cluster was born, and how long it lived (None if unknown)."""
    child_row = np.full(int(tree["child"].max(initial=0)) + 1, -1, dtype=np.int64)
    child_row[tree["child"]] = np.arange(tree.size)
    parent_order = np.argsort(tree["parent"], kind="stable")
    parents = tree["parent"][parent_order]
    group_starts = np.searchsorted(parents, nodes)
    group_ends = np.searchsorted(parents, nodes, side="right")
    lambdas = tree["lambda_val"][parent_order]
    birth: dict[int, float | None] = {}
    persistence: dict[int, float | None] = {}
    for label, node in enumerate(nodes):
        row = child_row[node] if node < child_row.size else -1
        born = tree["lambda_val"][row] if row >= 0 else np.nan
        start = float(born) if np.isfinite(born) and born > 0 else None
        leaving = lambdas[group_starts[label] : group_ends[label]]
        end = float(leaving.max()) if leaving.size else None
        birth[label] = start
        persistence[label] = end - (start or 0.0) if end is not None and np.isfinite(end) else None
    return birth, persistence


def fit_clusters(
    embeddings: np.ndarray,
    *,
    min_cluster_size: int,
    min_samples: int,
    dims: int,
    selection_method: str = "eom",
    jobs: int = 2,
    embedding_model: str = "",
) -> Fit:
    """Cluster L2-normalized embeddings; every array in the result is indexed like `embeddings`."""
    hdbscan = internals()
    n = embeddings.shape[0]
    if n < 2:
        raise ValueError("clustering needs at least two faces")
    reducer = Reducer.fit(embeddings, dims)
    points = reducer.transform(embeddings)
    edges, core = _mst(points, min_samples, jobs)
    slt = hdbscan.single_linkage(edges)
    labels, probabilities, _, condensed, _ = hdbscan.tree_to_labels(points, slt, min_cluster_size, selection_method)
    labels = np.asarray(labels, dtype=np.int64)
    tree = np.asarray(condensed).astype(TREE_DTYPE)
    nodes = selected_nodes(tree, labels, int(labels.max(initial=-1)) + 1)

    point_rows = tree[tree["child"] < n]
    lambda_vals = np.full(n, np.nan)
    lambda_vals[point_rows["child"]] = point_rows["lambda_val"]
    birth, persistence = _cluster_lambdas(tree, nodes)
    state = RunState(embedding_model, points, core, labels, tree, nodes, min_samples)
    return Fit(
        reducer=reducer,
        state=state,
        probabilities=np.asarray(probabilities, dtype=np.float64),
        outlier_scores=np.asarray(hdbscan.outlier_scores(condensed), dtype=np.float64),
        lambda_vals=lambda_vals,
        lambda_birth=birth,
        persistence=persistence,
    )
