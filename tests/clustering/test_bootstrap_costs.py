"""The bootstrap's component joining and constraint steps stay within bounded memory and keep
their results: many small components, many cannot-links."""

from __future__ import annotations

import tracemalloc

import numpy as np

from photodb.clustering import constraints
from photodb.clustering.model import _join_components


def test_joining_thousands_of_components_needs_no_count_by_count_by_dims_temporary():
    rng = np.random.default_rng(1)
    count, dims = 2500, 32
    centres = rng.standard_normal((count, dims)).astype(np.float32) * 10
    points = np.repeat(centres, 2, axis=0) + rng.standard_normal((2 * count, dims)).astype(np.float32) * 0.01
    component = np.repeat(np.arange(count), 2)
    core = np.full(points.shape[0], 0.01)
    tracemalloc.start()
    try:
        edges = _join_components(points, core, component, count)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # a count x count x dims float32 temporary alone is 800 MB here
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert edges.shape == (count - 1, 3)
    joined = component[edges[:, :2].astype(np.int64)]
    assert (joined[:, 0] != joined[:, 1]).all()  # every edge links two components
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in joined:
        parent[find(int(a))] = find(int(b))
    assert len({find(c) for c in range(count)}) == 1  # one tree


def test_many_cannot_links_split_groups_in_one_pass():
    rng = np.random.default_rng(2)
    n = 4000
    embeddings = rng.standard_normal((n, 16)).astype(np.float32)
    keys: list[constraints.Key] = [("label", i % 40) for i in range(n)]
    pinned = np.zeros(n, bool)
    units = list(range(n))
    pairs = [(i, i + 40) for i in range(0, n - 40, 7)]  # every pair starts inside one group
    conflicts: list[str] = []
    moved = constraints.apply_cannot_links(keys, pinned, units, embeddings, pairs, conflicts)
    assert all(keys[a] != keys[b] for a, b in pairs)
    assert moved and not conflicts


def test_faces_of_one_photo_leave_a_shared_group_for_the_next_best_or_noise():
    rng = np.random.default_rng(3)

    def around(centre: np.ndarray, count: int, spread: float) -> np.ndarray:
        rows = centre + rng.standard_normal((count, centre.size)) * spread
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    centres = np.eye(3, 64)
    group_a, group_b = around(centres[0], 10, 0.02), around(centres[1], 10, 0.02)
    stranger = around(centres[2], 1, 0.0)  # nothing near it but group a, which it sits in
    lookalike = around(0.55 * centres[0] + 0.45 * centres[1], 1, 0.0)  # a's group, nearer b than most
    embeddings = np.vstack([group_a, group_b, stranger, lookalike]).astype(np.float32)
    keys: list[constraints.Key] = ["a"] * 10 + ["b"] * 10 + ["a", "a"]
    photos = np.arange(22)
    photos[[0, 20, 21]] = 100  # one photo: a face of a, the stranger and the lookalike
    photos[[1, 2]] = 101  # two faces of a in one photo, the first must-linked elsewhere
    anchored = np.zeros(22, bool)
    anchored[1] = True
    conflicts: list[str] = []
    moved = constraints.split_same_photo(keys, anchored, embeddings, photos, lambda _key: 0.6, conflicts)
    assert keys[0] == "a"  # the face nearest the group's centre stays
    assert keys[21] == "b"  # the lookalike goes to the next best group within reach
    assert keys[20] is None  # the stranger has no other group within reach: noise
    assert keys[1] == "a" and keys[2] in ("b", None)  # the anchored face stays, the other leaves
    assert moved == {2, 20, 21} and not conflicts
