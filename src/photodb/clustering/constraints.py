"""Must-link, cannot-link and same-photo constraints applied to a bootstrap's assignment.

Assignments are group keys per face (None = noise). Pinned faces (manual decisions, faces of
verified or named clusters) never move; everything else may, and records that it did. Every
step costs about O(n) plus the size of the groups it changes, never O(violations x n).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

import numpy as np

Key = Hashable | None


class UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def must_link_units(size: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """For each face, the root of the set of faces it is (transitively) must-linked with."""
    sets = UnionFind(size)
    for a, b in pairs:
        sets.union(a, b)
    return [sets.find(i) for i in range(size)]


def apply_must_links(keys: list[Key], pinned: np.ndarray, units: list[int], conflicts: list[str]) -> set[int]:
    """Put every must-linked set in one group: the pinned one if any, else its most common group."""
    moved: set[int] = set()
    members: dict[int, list[int]] = {}
    for i, root in enumerate(units):
        members.setdefault(root, []).append(i)
    for root, faces in members.items():
        if len(faces) < 2:
            continue
        pinned_keys = Counter(keys[i] for i in faces if pinned[i])
        if len(pinned_keys) > 1:
            conflicts.append(f"must-linked faces are pinned to different clusters: {sorted(map(str, pinned_keys))}")
        if pinned_keys:
            target = pinned_keys.most_common(1)[0][0]
        else:
            found = Counter(keys[i] for i in faces if keys[i] is not None)
            target = found.most_common(1)[0][0] if found else ("must", root)
        for i in faces:
            if not pinned[i] and keys[i] != target:
                keys[i] = target
                moved.add(i)
    return moved


def _members(keys: list[Key]) -> dict[Key, list[int]]:
    groups: dict[Key, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            groups.setdefault(key, []).append(i)
    return groups


def apply_cannot_links(
    keys: list[Key],
    pinned: np.ndarray,
    units: list[int],
    embeddings: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    conflicts: list[str],
) -> set[int]:
    """Split every group holding a cannot-linked pair: members go to the nearer of two centroids.

    The face of the pair that may move seeds the new group; must-linked sets move as one. Splits
    never join faces, so one pass over the pairs suffices: a pair once apart stays apart.
    """
    moved: set[int] = set()
    groups = _members(keys)
    for round_, (first, second) in enumerate(sorted({(min(p), max(p)) for p in pairs if p[0] != p[1]})):
        a, b = first, second
        if keys[a] is None or keys[a] != keys[b]:
            continue
        if pinned[b] and not pinned[a]:
            a, b = b, a
        if pinned[b] or units[a] == units[b]:
            conflicts.append(f"cannot-link between faces #{a} and #{b} cannot be honoured (pinned or must-linked)")
            continue
        group = keys[a]
        new_key = ("split", group, round_)
        side_b = _split_group(groups[group], pinned, units, embeddings, a, b)
        groups[group] = [i for i in groups[group] if i not in side_b]
        groups[new_key] = sorted(side_b)
        for i in side_b:
            keys[i] = new_key
            moved.add(i)
    return moved


def _split_group(
    in_group: list[int], pinned: np.ndarray, units: list[int], embeddings: np.ndarray, a: int, b: int
) -> set[int]:
    """The faces of a group that go with `b` (away from `a`): nearer b's side's centre, in two rounds."""
    unit_faces: dict[int, list[int]] = {}
    for i in in_group:
        unit_faces.setdefault(units[i], []).append(i)
    fixed_a = {units[a]} | {units[i] for i in in_group if pinned[i]}
    fixed_b = {units[b]}
    free = [u for u in unit_faces if u not in fixed_a and u not in fixed_b]
    means = np.vstack([embeddings[unit_faces[u]].mean(0) for u in free]) if free else np.empty((0, embeddings.shape[1]))
    centre_a = embeddings[unit_faces[units[a]]].mean(0)
    centre_b = embeddings[unit_faces[units[b]]].mean(0)
    side_b = set(fixed_b)
    for _ in range(2):
        nearer_b = np.linalg.norm(means - centre_b, axis=1) < np.linalg.norm(means - centre_a, axis=1)
        side_b = set(fixed_b) | {u for u, near in zip(free, nearer_b, strict=True) if near}
        faces_b = [i for u in side_b for i in unit_faces[u]]
        faces_a = [i for u, f in unit_faces.items() if u not in side_b for i in f]
        centre_a, centre_b = embeddings[faces_a].mean(0), embeddings[faces_b].mean(0)
    return {i for u in side_b for i in unit_faces[u]}


def split_same_photo(
    keys: list[Key],
    anchored: np.ndarray,
    embeddings: np.ndarray,
    photos: np.ndarray,
    reach: Callable[[Key], float],
    conflicts: list[str],
) -> set[int]:
    """Faces of one photo are different people: no group keeps two of them.

    Of a photo's faces in one group the one nearest the group's centroid stays (anchored faces,
    pinned or must-linked, always stay); each other one goes to the nearest group that holds no
    face of that photo and whose centroid is within `reach(key)` (a cosine distance), else to
    noise. Centroids are the unit means of the groups before any move.
    """
    codes_of: dict[Key, int] = {}
    codes = np.array([-1 if k is None else codes_of.setdefault(k, len(codes_of)) for k in keys], dtype=np.int64)
    faces = np.nonzero(codes >= 0)[0]
    order = faces[np.lexsort((codes[faces], photos[faces]))]
    same = (photos[order][1:] == photos[order][:-1]) & (codes[order][1:] == codes[order][:-1])
    if not same.any():
        return set()
    key_of = list(codes_of)
    sums = _group_sums(codes, faces, len(key_of), embeddings)
    centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    limits = np.array([reach(key) for key in key_of])
    widest = float(limits.max())
    taken: dict[int, set[int]] = {}  # photo -> groups holding one of its faces
    photo_sorted = photos[order]
    for start, end in zip(*_runs(photo_sorted), strict=True):
        if end - start > 1:
            taken[int(photo_sorted[start])] = set(codes[order[start:end]].tolist())
    moved: set[int] = set()
    starts = np.concatenate([[0], np.nonzero(~same)[0] + 1])
    ends = np.concatenate([starts[1:], [order.size]])
    for start, end in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=True):
        group_faces = order[start:end]
        code, photo = int(codes[group_faces[0]]), int(photos[group_faces[0]])
        closeness = embeddings[group_faces] @ centroids[code]
        stay = group_faces[anchored[group_faces]]
        if stay.size > 1:
            conflicts.append(f"{stay.size} pinned or must-linked faces of photo {photo} share one cluster")
        if stay.size == 0:
            stay = group_faces[[int(np.argmax(closeness))]]
        for i in group_faces[np.argsort(-closeness)]:
            if i in stay:
                continue
            distance = 1.0 - centroids @ embeddings[i]
            target = None
            for candidate in np.argsort(distance):
                if distance[candidate] >= widest:
                    break
                if distance[candidate] < limits[candidate] and int(candidate) not in taken[photo]:
                    target = int(candidate)
                    break
            keys[i] = key_of[target] if target is not None else None
            if target is not None:
                taken[photo].add(target)
            moved.add(int(i))
    return moved


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of each run of equal values in a sorted array."""
    starts = np.concatenate([[0], np.nonzero(values[1:] != values[:-1])[0] + 1])
    return starts, np.concatenate([starts[1:], [values.size]])


def drop_far_members(
    keys: list[Key], anchored: np.ndarray, embeddings: np.ndarray, threshold: float, rounds: int = 5
) -> set[int]:
    """Faces farther than `threshold` (cosine distance) from the unit mean of the rest of their group
    leave it for noise; anchored faces stay.

    HDBSCAN keeps points that drop out of a selected cluster as its weakest members, so on well
    separated embeddings a small library's strangers end up inside someone's cluster. The rest of
    the group (leave-one-out) is what incremental assignment would compare the face with.
    """
    dropped: set[int] = set()
    chunk = 8192
    for _ in range(rounds):
        codes_of: dict[Key, int] = {}
        codes = np.array([-1 if k is None else codes_of.setdefault(k, len(codes_of)) for k in keys], dtype=np.int64)
        faces = np.nonzero(codes >= 0)[0]
        if faces.size == 0:
            break
        sums = _group_sums(codes, faces, len(codes_of), embeddings)
        sum_norms = np.einsum("ij,ij->i", sums, sums)
        similarity = np.ones(faces.size)
        for start in range(0, faces.size, chunk):
            part = faces[start : start + chunk]
            vectors = embeddings[part].astype(np.float64)
            dots = np.einsum("ij,ij->i", vectors, sums[codes[part]])
            own = np.einsum("ij,ij->i", vectors, vectors)
            rest = np.sqrt(np.maximum(sum_norms[codes[part]] - 2 * dots + own, 0.0))
            alone = rest < 1e-9
            similarity[start : start + chunk] = np.where(alone, 1.0, (dots - own) / np.where(alone, 1.0, rest))
        far = faces[(1.0 - similarity > threshold) & ~anchored[faces]]
        if far.size == 0:
            break
        for i in far.tolist():
            keys[i] = None
            dropped.add(i)
    return dropped


def _group_sums(codes: np.ndarray, faces: np.ndarray, groups: int, embeddings: np.ndarray) -> np.ndarray:
    """Sum of the embeddings of `faces` per group code (a sparse product: one pass, any size)."""
    from scipy.sparse import csr_matrix  # ~0.2 s of imports that `photodb people list` never needs

    one_hot = csr_matrix((np.ones(faces.size), (codes[faces], faces)), shape=(groups, len(codes)))
    return one_hot @ embeddings
