"""Two halves of a set of faces: a constrained spherical 2-means on their embeddings.

Must-linked faces move as one unit. Faces that must be apart (a cannot-link, or two faces of one
photo: two people) cost a penalty larger than any distance when they share a half, so the halves
honour them whenever that is possible. Deterministic: the seeds are the unit farthest from the
mean and the unit farthest from that one.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from photodb.clustering.constraints import must_link_units

#: Rounds of reassignment at most; two well-separated groups settle in two or three.
ROUNDS = 50
#: Cost of sharing a half with a face that must be apart (cosine distances are at most 2).
APART_PENALTY = 4.0


class CannotSplit(ValueError):
    """The faces form one unit (too few faces, or all must-linked together)."""


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def two_halves(
    embeddings: np.ndarray,
    photo_ids: Sequence[int],
    must: Sequence[tuple[int, int]] = (),
    apart: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """0/1 per face (index pairs for `must` and `apart`); half 0 is the larger one (ties: the half
    of the first face)."""
    n = embeddings.shape[0]
    roots = np.asarray(must_link_units(n, list(must)), np.int64)
    _, unit_of = np.unique(roots, return_inverse=True)
    units = int(unit_of.max()) + 1 if n else 0
    if units < 2:
        raise CannotSplit("its faces are all must-linked together" if n >= 2 else "it has fewer than two faces")
    weights = np.bincount(unit_of, minlength=units).astype(np.float64)
    sums = np.zeros((units, embeddings.shape[1]))
    np.add.at(sums, unit_of, embeddings.astype(np.float64))
    vectors = _unit_rows(sums)

    partners: dict[int, list[int]] = {}
    photos = np.asarray(photo_ids, np.int64)
    order = np.argsort(photos, kind="stable")
    ordered = photos[order]
    bounds = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    pairs = set()
    for start, end in itertools.pairwise(bounds.tolist()):
        same = order[start:end].tolist()
        pairs |= {(a, b) for i, a in enumerate(same) for b in same[i + 1 :]}
    pairs |= {(int(a), int(b)) for a, b in apart}
    for a, b in pairs:
        ua, ub = int(unit_of[a]), int(unit_of[b])
        if ua != ub:
            partners.setdefault(ua, []).append(ub)
            partners.setdefault(ub, []).append(ua)

    mean = _unit_rows(sums.sum(0, keepdims=True))[0]
    first = int(np.argmin(vectors @ mean))
    second = int(np.argmin(vectors @ vectors[first]))
    halves = (vectors @ vectors[second] > vectors @ vectors[first]).astype(np.int64)
    halves[first], halves[second] = 0, 1
    for _ in range(ROUNDS):
        before = halves.copy()
        centres = np.vstack([_unit_rows(sums[halves == h].sum(0, keepdims=True))[0] for h in (0, 1)])
        cost = weights[:, None] * (1.0 - vectors @ centres.T)
        halves = np.argmin(cost, axis=1)
        for unit in sorted(partners):  # the constrained units, one at a time against the others' halves
            near = np.bincount(halves[partners[unit]], minlength=2)
            halves[unit] = int(np.argmin(cost[unit] + APART_PENALTY * weights[unit] * near))
        if halves.min() == halves.max():  # all in one half: the unit least like the rest leaves
            halves[int(np.argmax(cost[np.arange(units), halves]))] ^= 1
        if np.array_equal(halves, before):
            break
    faces = halves[unit_of]
    count = np.bincount(faces, minlength=2)
    if count[1] > count[0] or (count[1] == count[0] and faces[0] == 1):
        faces = 1 - faces
    return faces
