"""The decisions of cluster auto-association, without the database: pair discovery over centroids,
complete-linkage grouping, and which person each group's clusters join (photodb.people.association
reads the state, runs this, and writes the plan, or prints it for --dry-run).

Rules beyond the spec's algorithm, so automatic work never undoes a person's decision:
- a person holding a verified cluster, a cluster a user linked, or hidden by a user is never merged
  into another person (never "merged away"); a group spanning two such persons is reported;
- two persons that both carry a user-given name are never merged: the group is reported;
- no person ends with two clusters that hold faces of one photo or a cannot-link between their
  faces or the clusters themselves (cannot-link pairs and same-photo pairs, `blocked`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from photodb.database.association_repository import ClusterState, PersonState
from photodb.database.people_repository import merge_winner

#: Rows of centroids compared at once in pair discovery (block x all: 2048 x 5k floats = 40 MB).
PAIR_BLOCK_ROWS = 2048
#: Rounding of a float32 dot product of 512-d unit vectors is far below this.
FLOAT32_SLACK = 1e-4


@dataclass(frozen=True)
class Pair:
    a: int  # the lower cluster id
    b: int
    distance: float


def find_pairs(
    ids: np.ndarray, unit_vectors: np.ndarray, threshold: float, focus: Collection[int] | None = None
) -> list[Pair]:
    """Every pair of clusters whose centroids are within `threshold` (cosine distance, as pgvector's
    `<=>` gives it), or only the pairs with a cluster of `focus` on one side; in blocks so memory
    stays bounded at any number of clusters. The products run in float32 (three times faster);
    pairs near the threshold are settled in float64."""
    single = unit_vectors.astype(np.float32)
    if focus is None:
        rows = np.arange(len(ids))
    else:
        rows = np.nonzero(np.isin(ids, np.fromiter(focus, np.int64, len(focus))))[0]
    in_rows = np.zeros(len(ids), bool)
    in_rows[rows] = True
    pairs: list[Pair] = []
    for start in range(0, len(rows), PAIR_BLOCK_ROWS):
        block = rows[start : start + PAIR_BLOCK_ROWS]
        first = int(block[0]) if focus is None else 0  # all rows: the lower triangle was done already
        distances = 1.0 - single[block] @ single[first:].T
        near_rows, cols = np.nonzero(distances <= threshold + FLOAT32_SLACK)
        left, right = block[near_rows], cols + first
        keep = (left != right) & (~in_rows[right] | (right > left))  # each pair once
        left, right = left[keep], right[keep]
        exact = 1.0 - np.einsum("ij,ij->i", unit_vectors[left], unit_vectors[right])
        for i, j, distance in zip(left.tolist(), right.tolist(), exact.tolist(), strict=True):
            if distance <= threshold:
                a, b = int(ids[i]), int(ids[j])
                pairs.append(Pair(min(a, b), max(a, b), max(0.0, distance)))
    pairs.sort(key=lambda p: (p.distance, p.a, p.b))
    return pairs


def complete_linkage(pairs: Sequence[Pair], blocked: set[tuple[int, int]]) -> list[list[int]]:
    """Groups built in distance order (closest first): a pair starts a group, or a cluster joins a
    group (two groups join) only if every pair across them is within the threshold and not
    blocked. Single linkage would chain A-B-C although A and C are far apart; this never does."""
    allowed = {(p.a, p.b) for p in pairs if (p.a, p.b) not in blocked}
    group_of: dict[int, int] = {}
    groups: dict[int, list[int]] = {}
    for number, pair in enumerate(pairs):
        if (pair.a, pair.b) not in allowed:
            continue
        left, right = group_of.get(pair.a), group_of.get(pair.b)
        if left is not None and left == right:
            continue
        side_left = groups[left] if left is not None else [pair.a]
        side_right = groups[right] if right is not None else [pair.b]
        if not all((min(x, y), max(x, y)) in allowed for x in side_left for y in side_right):
            continue
        members = side_left + side_right
        keep = min(g for g in (left, right, number) if g is not None)
        for g in (left, right):
            if g is not None and g != keep:
                groups.pop(g)
        groups[keep] = members
        for member in members:
            group_of[member] = keep
    return [sorted(groups[g]) for g in sorted(groups)]


@dataclass
class GroupPlan:
    """One group and what happens to it. `person_id` None: a new person."""

    clusters: list[int]
    pairs: list[Pair]
    person_id: int | None = None
    link: list[int] = field(default_factory=list)
    merge: list[int] = field(default_factory=list)
    left_out: dict[int, str] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    #: cluster -> the person it ends with (None: no person; negative: the group's new person)
    joins: dict[int, int | None] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.link or self.merge)

    @property
    def diameter(self) -> float:
        return max((p.distance for p in self.pairs), default=0.0)

    def as_dict(self) -> dict[str, object]:
        return {
            "clusters": self.clusters,
            "max_distance": round(self.diameter, 4),
            "pairs": [[p.a, p.b, round(p.distance, 4)] for p in self.pairs],
            "person_id": self.person_id,
            "new_person": self.person_id is None and bool(self.link),
            "link": self.link,
            "merge": self.merge,
            "joins": {str(c): "new" if p is not None and p < 0 else p for c, p in self.joins.items()},
            "left_out": {str(c): why for c, why in self.left_out.items()},
            "conflicts": self.conflicts,
        }


@dataclass
class _Person:
    """A person as the plan goes along (merges and links change counts and clusters)."""

    id: int
    named: bool
    hidden: bool
    verified_clusters: int
    user_linked_clusters: int
    clusters: set[int]

    @property
    def cluster_count(self) -> int:
        return len(self.clusters)

    @property
    def protected(self) -> bool:
        """A user's work lives in it: it may take others in, never be merged into another."""
        return self.hidden or self.verified_clusters > 0 or self.user_linked_clusters > 0


class Planner:
    """Decides, group after group, who each group's clusters belong to, keeping its own view of
    persons current (a merge in one group moves that person's other clusters for later groups)."""

    def __init__(
        self,
        clusters: dict[int, ClusterState],
        persons: dict[int, PersonState],
        person_clusters: dict[int, set[int]],
        blocked: set[tuple[int, int]],
        person_cannot_link: set[tuple[int, int]],
    ) -> None:
        self.clusters = clusters
        self.owner: dict[int, int | None] = {cid: c.person_id for cid, c in clusters.items()}
        self.persons = {
            pid: _Person(
                pid, p.named, p.hidden, p.verified_clusters, p.user_linked_clusters, set(person_clusters.get(pid, ()))
            )
            for pid, p in persons.items()
        }
        self.blocked = blocked
        self.person_cannot_link = person_cannot_link
        self._new_ids = 0

    def _blocked_with(self, cluster_ids: Iterable[int], others: set[int]) -> bool:
        return any((min(c, o), max(c, o)) in self.blocked for c in cluster_ids for o in others if c != o)

    def _why_not_merge(self, loser: _Person, winner: _Person, owned: set[int]) -> str | None:
        if loser.protected:
            return f"person {loser.id} holds a user's decision (verified, user-linked or hidden): not merged"
        if loser.named and winner.named:
            return f"persons {winner.id} and {loser.id} both have a name: not merged"
        if any((c, winner.id) in self.person_cannot_link for c in loser.clusters) or any(
            (c, loser.id) in self.person_cannot_link for c in owned
        ):
            return f"a cluster of person {loser.id} or {winner.id} has a cannot-link to the other: not merged"
        if self._blocked_with(loser.clusters, owned):
            return f"persons {winner.id} and {loser.id} hold faces of one photo or cannot-linked faces: not merged"
        return None

    def plan(self, members: list[int], pairs: list[Pair]) -> GroupPlan:
        group = GroupPlan(clusters=members, pairs=pairs)
        live = [c for c in members if c in self.clusters and not self.clusters[c].hidden]
        for c in set(members) - set(live):
            group.left_out[c] = "hidden or gone"
        person_ids = sorted({p for c in live if (p := self.owner[c]) is not None})
        involved = [self.persons[p] for p in person_ids if p in self.persons]
        winner = merge_winner([p for p in involved if p.protected] or involved) if involved else None
        owned: set[int] = set(winner.clusters) if winner else set()
        if winner is not None:
            for loser in sorted(involved, key=lambda p: (p.verified_clusters > 0, p.cluster_count, p.id), reverse=True):
                if loser is winner:
                    continue
                why = self._why_not_merge(loser, winner, owned)
                if why is None:
                    group.merge.append(loser.id)
                    owned |= loser.clusters
                    continue
                group.conflicts.append(why)
                for c in live:
                    if self.owner[c] == loser.id:
                        group.left_out[c] = why
        for c in sorted(c for c in live if self.owner[c] is None):
            if winner is not None and (c, winner.id) in self.person_cannot_link:
                group.left_out[c] = f"cannot-link to person {winner.id}"
            elif self._blocked_with([c], owned):
                group.left_out[c] = "shares a photo or a cannot-link with the person's clusters"
            else:
                group.link.append(c)
                owned.add(c)
        together = [c for c in live if c not in group.left_out]
        if len(together) < 2:
            group.link, group.merge = [], []
        group.person_id = winner.id if winner else None
        if group.changed:
            self._apply(group, winner)
        group.joins = {c: self.owner.get(c) for c in members}
        return group

    def _apply(self, group: GroupPlan, winner: _Person | None) -> None:
        if winner is None:
            self._new_ids -= 1
            winner = _Person(self._new_ids, False, False, 0, 0, set())
            self.persons[winner.id] = winner
        for loser_id in group.merge:
            loser = self.persons.pop(loser_id)
            for c in loser.clusters:
                self.owner[c] = winner.id
            winner.clusters |= loser.clusters
            winner.verified_clusters += loser.verified_clusters
        for c in group.link:
            self.owner[c] = winner.id
            winner.clusters.add(c)
            if self.clusters[c].verified:
                winner.verified_clusters += 1
