"""Must-link and cannot-link applied to a bootstrap's assignment, before anything is written.

Assignments are group keys per face (None = noise). Pinned faces (manual decisions, faces of
verified or named clusters) never move; everything else may, and records that it did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

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


def apply_cannot_links(
    keys: list[Key],
    pinned: np.ndarray,
    units: list[int],
    embeddings: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    conflicts: list[str],
) -> set[int]:
    """Split every group holding a cannot-linked pair: members go to the nearer of two centroids.

    The face of the pair that may move seeds the new group; must-linked sets move as one.
    """
    moved: set[int] = set()
    for round_ in range(len(pairs) + 1):
        violation = next(((a, b) for a, b in pairs if keys[a] is not None and keys[a] == keys[b]), None)
        if violation is None:
            return moved
        a, b = violation
        if pinned[b] and not pinned[a]:
            a, b = b, a
        if pinned[b] or units[a] == units[b]:
            conflicts.append(f"cannot-link between faces #{a} and #{b} cannot be honoured (pinned or must-linked)")
            pairs = [p for p in pairs if p != violation and p != (violation[1], violation[0])]
            continue
        group = keys[a]
        new_key = ("split", group, round_)
        in_group = [i for i, k in enumerate(keys) if k == group]
        unit_faces: dict[int, list[int]] = {}
        for i in in_group:
            unit_faces.setdefault(units[i], []).append(i)
        fixed_a = {units[a]} | {units[i] for i in in_group if pinned[i]}
        fixed_b = {units[b]}
        side_b: set[int] = set(fixed_b)
        centre_a = embeddings[unit_faces[units[a]]].mean(0)
        centre_b = embeddings[unit_faces[units[b]]].mean(0)
        for _ in range(2):
            side_b = set(fixed_b)
            for unit, faces in unit_faces.items():
                if unit in fixed_a or unit in fixed_b:
                    continue
                mean = embeddings[faces].mean(0)
                if np.linalg.norm(mean - centre_b) < np.linalg.norm(mean - centre_a):
                    side_b.add(unit)
            faces_b = [i for u in side_b for i in unit_faces[u]]
            faces_a = [i for u, f in unit_faces.items() if u not in side_b for i in f]
            centre_a, centre_b = embeddings[faces_a].mean(0), embeddings[faces_b].mean(0)
        for unit in side_b:
            for i in unit_faces[unit]:
                keys[i] = new_key
                moved.add(i)
    return moved
