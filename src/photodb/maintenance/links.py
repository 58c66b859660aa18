"""Tasks of the constraint tables: must-links closed under transitivity, must-linked clusters
merged, and the report of what breaks a constraint. `apply_merges` is the one way maintenance
merges clusters (merge-similar uses it too)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import psycopg

from photodb.config import Settings
from photodb.database import maintenance_links as links_db
from photodb.database import maintenance_repository as repo
from photodb.database.people_repository import lock_persons
from photodb.maintenance.tasks import MEDOID_CHANGE_SHARE, Options, Outcome, lock_collection_models

MUST_LINK_BY = "auto:must-link"
MERGE_MUST_LINKED_BY = "auto:merge-must-linked"


class UnionFind:
    """Disjoint sets over arbitrary hashable keys (path halving, union by size)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}

    def find(self, key: int) -> int:
        self.parent.setdefault(key, key)
        self.size.setdefault(key, 1)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def groups(self) -> list[list[int]]:
        """Sets of two or more keys, each sorted, in order of their smallest key."""
        out: dict[int, list[int]] = {}
        for key in self.parent:
            out.setdefault(self.find(key), []).append(key)
        return sorted((sorted(g) for g in out.values() if len(g) > 1), key=lambda g: g[0])


def must_link_components(pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    sets = UnionFind()
    for a, b in pairs:
        sets.union(a, b)
    return sets.groups()


def closure_pairs(
    components: Sequence[Sequence[int]], existing: set[tuple[int, int]], cannot: set[tuple[int, int]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The must-links the transitive closure adds (A~B, B~C -> A~C), and the pairs of one
    component that a cannot-link forbids (a contradiction a person has to settle)."""
    missing, contradictions = [], []
    for component in components:
        for pair in combinations(sorted(component), 2):
            if pair in cannot:
                contradictions.append(pair)
            elif pair not in existing:
                missing.append(pair)
    return missing, contradictions


def propagate_must_links(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Store the transitive closure of the must-links (created_by 'auto:must-link'); a pair a
    cannot-link forbids is reported, never stored."""
    lock_collection_models(conn, collection_id)
    existing = links_db.must_links(conn, collection_id)
    cannot = links_db.cannot_links(conn, collection_id)
    missing, contradictions = closure_pairs(must_link_components(existing), set(existing), cannot)
    added = links_db.insert_must_links(conn, missing, by=MUST_LINK_BY)
    problems = [f"faces {a} and {b} are must-linked (through others) but cannot-linked" for a, b in contradictions]
    return Outcome({"added": added, "contradictions": len(contradictions)}, problems)


@dataclass
class MergeReport:
    merged_away: int = 0
    faces_moved: int = 0
    refused: list[str] = field(default_factory=list)
    busy: list[list[int]] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)


def merge_target(rows: Sequence[repo.ClusterRow]) -> repo.ClusterRow:
    """The cluster a group merges into: the verified one (a verified cluster is never merged
    away), then one linked to a person, then the most faces, then the lowest id."""
    return max(rows, key=lambda r: (r.verified, r.person_id is not None, r.face_count, -r.id))


def apply_merges(
    conn: psycopg.Connection, collection_id: int, groups: Sequence[Sequence[int]], *, by: str
) -> MergeReport:
    """Merge each group of clusters into one, in the lock order: the groups' faces, their clusters,
    then their persons. Each group is checked again under the locks (group_conflict): one that may
    not become one cluster is refused with the reason; one that gained a face since its faces were
    locked is left for the next run (busy)."""
    report = MergeReport()
    involved = sorted({c for group in groups for c in group})
    if not involved:
        return report
    locked_faces = links_db.lock_members(conn, involved)
    repo.lock_clusters(conn, involved)
    rows = repo.clusters(conn, collection_id)
    lock_persons(conn, [rows[c].person_id for c in involved if c in rows and rows[c].person_id is not None])
    grown = links_db.clusters_with_new_members(conn, involved, locked_faces)
    for group in groups:
        if grown & set(group):
            report.busy.append(list(group))
            continue
        why = links_db.group_conflict(conn, group)
        if why is not None:
            report.refused.append(f"clusters {', '.join(map(str, group))} not merged: {why}")
            continue
        target = merge_target([rows[c] for c in group])
        losers = [c for c in group if c != target.id]
        report.faces_moved += links_db.merge_clusters(conn, target.id, losers, by=by)
        report.merged_away += len(losers)
        report.targets.append(target.id)
    # a cluster that grew enough gets its medoid now, by update-medoids' rule (weekly runs that
    # task before merge-similar: so the next run has nothing left to do)
    repo.set_medoids(conn, repo.stale_medoid_cluster_ids(conn, collection_id, MEDOID_CHANGE_SHARE, report.targets))
    return report


def merge_must_linked(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Clusters holding must-linked faces become one (per embedding model), unless a verified
    cluster would be merged away, a cannot-link or a shared photo forbids it, or they belong to
    different persons: those are reported."""
    lock_collection_models(conn, collection_id)
    pairs = links_db.must_links(conn, collection_id)
    where = links_db.cluster_of_faces(conn, sorted({d for pair in pairs for d in pair}))
    sets = UnionFind()
    for a, b in pairs:
        if a in where and b in where and where[a][1] == where[b][1] and where[a][0] != where[b][0]:
            sets.union(where[a][0], where[b][0])
    report = apply_merges(conn, collection_id, sets.groups(), by=MERGE_MUST_LINKED_BY)
    changes = {"clusters_merged_away": report.merged_away, "faces_moved": report.faces_moved}
    changes |= {"refused": len(report.refused), "deferred": len(report.busy)}
    return Outcome(changes, report.refused)


def check_constraints(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Report (never repair) cannot-linked faces sharing a cluster, faces of one photo sharing a
    cluster, and must-linked faces left in two clusters."""
    violations = links_db.constraint_violations(conn, collection_id)
    problems = [line for lines in violations.values() for line in lines]
    return Outcome({kind: len(lines) for kind, lines in violations.items()}, problems)
