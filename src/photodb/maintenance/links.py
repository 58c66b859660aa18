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
from photodb.database.people_repository import blocking_faces, lock_persons
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
    grown: set[int] = field(default_factory=set)  # clusters that gained a face while being locked


def merge_target(rows: Sequence[repo.ClusterRow]) -> repo.ClusterRow:
    """The cluster a group merges into: the verified one (a verified cluster is never merged
    away), then one linked to a person, then the most faces, then the lowest id."""
    return max(rows, key=lambda r: (r.verified, r.person_id is not None, r.face_count, -r.id))


def apply_merges(
    conn: psycopg.Connection,
    collection_id: int,
    groups: Sequence[Sequence[int]],
    *,
    by: str,
    also_lock: tuple[Sequence[int], Sequence[int]] = ((), ()),
) -> MergeReport:
    """Merge each group of clusters into one, in the lock order: the groups' faces, their clusters,
    then their persons. Each group is checked again under the locks (group_conflict): one that may
    not become one cluster is refused with the reason; one that gained a face since its faces were
    locked is left for the next run (busy). `also_lock` (clusters, faces) takes the same locks for
    work the caller does after the merges in this transaction."""
    report = MergeReport()
    involved = sorted({c for group in groups for c in group})
    locked_clusters = sorted(set(involved) | set(also_lock[0]))
    if not locked_clusters and not also_lock[1]:
        return report
    locked_faces = links_db.lock_members(conn, locked_clusters, also_lock[1])
    repo.lock_clusters(conn, locked_clusters)
    rows = repo.clusters(conn, collection_id)
    lock_persons(conn, [rows[c].person_id for c in involved if c in rows and rows[c].person_id is not None])
    grown = report.grown = links_db.clusters_with_new_members(conn, locked_clusters, locked_faces)
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
    _refresh_medoids(conn, collection_id, report.targets)
    return report


def _refresh_medoids(conn: psycopg.Connection, collection_id: int, grown: Sequence[int]) -> None:
    """A cluster that grew enough gets its medoid now, by update-medoids' rule (weekly runs that
    task before merge-similar: so the next run has nothing left to do)."""
    repo.set_medoids(conn, repo.stale_medoid_cluster_ids(conn, collection_id, MEDOID_CHANGE_SHARE, grown))


def merge_must_linked(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Clusters holding must-linked faces become one (per embedding model), unless a verified
    cluster would be merged away, a cannot-link or a shared photo forbids it, or they belong to
    different persons: those are reported. Then a face waiting in the unassigned pool joins the
    one cluster its must-linked faces are in (join_waiting_faces)."""
    lock_collection_models(conn, collection_id)
    pairs = links_db.must_links(conn, collection_id)
    faces = sorted({d for pair in pairs for d in pair})
    where = links_db.cluster_of_faces(conn, faces)
    waiting = links_db.waiting_faces(conn, faces)
    sets = UnionFind()
    for a, b in pairs:
        if a in where and b in where and where[a][1] == where[b][1] and where[a][0] != where[b][0]:
            sets.union(where[a][0], where[b][0])
    components = must_link_components(pairs)
    homes = sorted({where[d][0] for c in components if waiting.keys() & set(c) for d in c if d in where})
    report = apply_merges(
        conn, collection_id, sets.groups(), by=MERGE_MUST_LINKED_BY, also_lock=(homes, sorted(waiting))
    )
    joined, not_joined = join_waiting_faces(conn, collection_id, components, waiting, report.grown)
    changes = {"clusters_merged_away": report.merged_away, "faces_moved": report.faces_moved}
    changes |= {"faces_joined": joined, "refused": len(report.refused) + len(not_joined), "deferred": len(report.busy)}
    return Outcome(changes, report.refused + not_joined)


def join_waiting_faces(
    conn: psycopg.Connection,
    collection_id: int,
    components: Sequence[Sequence[int]],
    waiting: dict[int, str],
    grown: set[int],
) -> tuple[int, list[str]]:
    """A face in the unassigned pool whose must-linked faces are all in one cluster (of its model,
    after the merges) joins it, read again under the locks apply_merges took: unless a face of the
    cluster is cannot-linked with it or on its photo (reported), the cluster is hidden (it takes no
    new faces) or gained a face while being locked (the next run). Faces join one at a time, so
    two of one photo never both join. Returns the faces joined and what was refused."""
    where = links_db.cluster_of_faces(conn, sorted({d for c in components for d in c}))
    still = links_db.waiting_faces(conn, sorted(waiting))
    rows = repo.clusters(conn, collection_id)
    joined: list[int] = []
    refused: list[str] = []
    for component in components:
        homes = {where[d] for d in component if d in where}
        if len(homes) != 1:
            continue  # nowhere to go, or in clusters the merge refused to join
        ((home, model),) = homes
        if home in grown or home not in rows or rows[home].hidden:
            continue
        for face in sorted(d for d in component if still.get(d) == model):
            blocks = blocking_faces(conn, face, home)
            if blocks:
                other, why = blocks[0]
                refused.append(
                    f"face {face} not joined to cluster {home} of its must-linked faces: {why} with face {other}"
                )
                continue
            links_db.join_cluster(conn, face, home)
            joined.append(home)
    repo.recount(conn, set(joined))
    _refresh_medoids(conn, collection_id, sorted(set(joined)))
    return len(joined), refused


def check_constraints(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Report (never repair) cannot-linked faces sharing a cluster, faces of one photo sharing a
    cluster, and must-linked faces left in two clusters."""
    violations = links_db.constraint_violations(conn, collection_id)
    problems = [line for lines in violations.values() for line in lines]
    return Outcome({kind: len(lines) for kind, lines in violations.items()}, problems)
