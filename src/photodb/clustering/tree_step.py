"""Tier 1's per-point step in the condensed tree, in O(log depth) per face.

hdbscan's `_find_cluster_and_probability` finds the row of the point's nearest neighbour by a
linear scan of the whole condensed tree (~100k rows at 100k faces) and then walks up the cluster
tree one parent at a time while a cluster was born at or above the point's lambda. At 100k faces
that tree is thousands of clusters deep (one big cluster sheds small ones one by one), so the walk
alone cost ~0.5 ms per face, more at the tail. Here the row is looked up in an index built once,
and the walk is a binary-lifting search: a cluster is always born at a lambda at least its
parent's, so the clusters the walk passes are the unbroken run of ancestors born at or above the
lambda, and the highest of them is found in log2(depth) jumps. Same answer, same arithmetic
(tests/clustering/test_predictor_fast_path.py checks it against hdbscan's own step). A tree
whose lambdas do not grow downwards (never written by hdbscan) is walked one parent at a time.
"""

from __future__ import annotations

import numpy as np


def tree_rows_of_points(tree: np.ndarray, points: int) -> np.ndarray:
    """Per point, the first condensed-tree row whose child it is (row 0 for none, as hdbscan's
    get_tree_row_with_child answers)."""
    rows = np.zeros(points, dtype=np.int64)
    children, first = np.unique(tree["child"], return_index=True)
    inside = (children >= 0) & (children < points)
    rows[children[inside]] = first[inside]
    return rows


class ClusterAncestors:
    """The cluster tree's parent links (cluster rows: child -> parent, born at lambda_val), with
    jump tables for the walk up."""

    def __init__(self, cluster_tree: np.ndarray, root: int) -> None:
        self.root = root
        size = int(cluster_tree["child"].max()) - root + 1 if cluster_tree.size else 1
        self.known = np.zeros(size, dtype=bool)
        self.parent = np.zeros(size, dtype=np.int64)  # dense index (node - root); the root is its own parent
        self.birth = np.full(size, -np.inf)  # the root has no row: never born at or above a lambda
        child = cluster_tree["child"].astype(np.int64) - root
        self.known[child] = True
        self.known[0] = False
        self.parent[child] = cluster_tree["parent"].astype(np.int64) - root
        self.birth[child] = cluster_tree["lambda_val"]
        self.monotone = bool((self.birth[self.parent[child]] <= self.birth[child]).all())
        self.jumps = [self.parent]
        if self.monotone:
            while len(self.jumps) < 64 and (self.jumps[-1] != 0).any():
                self.jumps.append(self.jumps[-1][self.jumps[-1]])

    def climb(self, node: int, lambda_: float) -> int:
        """Where hdbscan's walk from `node` stops: the first ancestor-or-self that is the root,
        not a cluster of the tree, or born below `lambda_`."""
        index = node - self.root
        if index <= 0 or index >= self.known.size or not self.known[index] or not self.birth[index] >= lambda_:
            return node
        if not self.monotone:
            while index > 0 and self.known[index] and self.birth[index] >= lambda_:
                index = int(self.parent[index])
            return index + self.root
        for jump in reversed(self.jumps):  # the highest ancestor still born at or above lambda_
            above = int(jump[index])
            if above > 0 and self.birth[above] >= lambda_:
                index = above
        return int(self.parent[index]) + self.root


def place(
    tree: np.ndarray,
    tree_row: int,
    lambda_: float,
    ancestors: ClusterAncestors,
    cluster_map: dict[int, int],
    max_lambdas: dict[int, float],
) -> tuple[int, float]:
    """hdbscan's _find_cluster_and_probability after its find_neighbor_and_lambda: the label and
    membership strength of a point that joins the tree at `lambda_` next to the point whose row
    is `tree_row`."""
    row = tree[tree_row]
    cluster = int(row["parent"])
    if row["lambda_val"] > lambda_:
        cluster = ancestors.climb(cluster, lambda_)
    label = cluster_map.get(cluster, -1)
    if label < 0:
        return -1, 0.0
    max_lambda = max_lambdas[cluster]
    if max_lambda > 0.0:
        return label, min(max_lambda, lambda_) / max_lambda
    return label, 1.0
