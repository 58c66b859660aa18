"""merge-similar: clusters of one embedding model that are one person become one, as safely as
the bootstrap groups faces.

Two clusters are candidates when their centroids (normalised sums) are within the model's
``merge`` distance (clustering.distances; --similarity-threshold for every model). That alone
joins look-alikes: a centroid averages a cluster's faces, and a large, spread cluster's centroid
comes close to its neighbours'. So a candidate merges only when at least MIN_LINKED_SHARE
(clustering.distances) of the face pairs across the two clusters are within the same distance, measured on the faces
themselves. (Were every pair within it, the centroids would be too: the candidates miss none.)
Pairs are tried closest first, and a merged cluster is measured again, faces and centroid, until
no candidate may merge: so a second run finds nothing.

Never merged, whatever the distances: two verified clusters, clusters of different persons, a
cluster cannot-linked to the other's person, clusters kept apart by a cannot-link (of the
clusters or of their faces) or holding faces of one photo (two people). Hidden clusters are left
alone. Each refusal of a candidate is reported with its reason (Outcome.notes).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg

from photodb.clustering.distances import MIN_LINKED_SHARE, face_distance, linked_share
from photodb.config import Settings
from photodb.database import maintenance_links as links_db
from photodb.database import maintenance_repository as repo
from photodb.maintenance.links import apply_merges
from photodb.maintenance.tasks import Options, Outcome, lock_collection_models

MERGE_SIMILAR_BY = "auto:merge-similar"
_BLOCK = 1024


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


@dataclass
class MergePlan:
    groups: list[list[int]] = field(default_factory=list)
    #: one line per candidate pair that was not merged, with the reason
    refused: list[str] = field(default_factory=list)
    #: refusals by reason: 'linkage' (too few close face pairs) or 'rules' (a rule above)
    refused_by: dict[str, int] = field(default_factory=lambda: {"linkage": 0, "rules": 0})


def plan_merges(
    ids: Sequence[int],
    sums: np.ndarray,
    rows: dict[int, repo.ClusterRow],
    blocked: set[tuple[int, int]],
    person_blocks: set[tuple[int, int]],
    distance: float,
    faces_of: Callable[[Sequence[int]], dict[int, np.ndarray]],
) -> MergePlan:
    """The groups of cluster ids (two or more) to merge, and the candidates refused.
    `faces_of(cluster_ids)` gives the unit face embeddings of each cluster."""
    plan = MergePlan()
    n = len(ids)
    if n < 2:
        return plan
    sums = np.array(sums, np.float64)
    units = _unit(sums).astype(np.float32)
    limit = 1.0 - distance  # cosine similarity of centroids above which a pair is a candidate
    candidates: list[tuple[float, int, int]] = []
    for start in range(0, n, _BLOCK):
        sims = units[start : start + _BLOCK] @ units.T
        for r, c in zip(*np.nonzero(sims > limit), strict=True):
            i = start + int(r)
            if i < c:
                candidates.append((1.0 - float(sims[r, c]), i, int(c)))
    if not candidates:
        return plan
    faces: dict[int, np.ndarray] = {}

    def load(indexes: Sequence[int]) -> None:
        stored = faces_of([ids[i] for i in indexes])
        for i in indexes:
            faces[i] = stored.get(ids[i], np.zeros((0, units.shape[1]), np.float32))

    load(sorted({i for _, a, b in candidates for i in (a, b)}))
    partners: dict[int, set[int]] = {}
    for a, b in blocked:
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    members = [[ids[i]] for i in range(n)]
    no_go = [set(partners.get(ids[i], ())) for i in range(n)]
    verified = [rows[ids[i]].verified for i in range(n)]
    person = [rows[ids[i]].person_id for i in range(n)]
    alive = np.ones(n, bool)
    version = [0] * n
    heap = [(d, a, b, 0, 0) for d, a, b in candidates]
    heapq.heapify(heap)

    def rule_against(a: int, b: int) -> str | None:
        if verified[a] and verified[b]:
            return "both verified"
        if person[a] is not None and person[b] is not None and person[a] != person[b]:
            return "linked to different persons"
        if any(m in no_go[a] for m in members[b]):
            return "a cannot-link or a photo with a face in each"
        for p, others in ((person[a], members[b]), (person[b], members[a])):
            if p is not None and any((m, p) in person_blocks for m in others):
                return "a cluster is cannot-linked to the other's person"
        return None

    def refuse(a: int, b: int, kind: str, why: str) -> None:
        plan.refused_by[kind] += 1
        names = " and ".join(f"{{{', '.join(map(str, sorted(members[x])))}}}" for x in (a, b))
        plan.refused.append(f"clusters {names} not merged: {why}")

    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            continue
        load([i for i in (a, b) if i not in faces])
        why = rule_against(a, b)
        if why is not None:
            refuse(a, b, "rules", why)
            continue
        share = linked_share(faces[a], faces[b], distance)
        if share < MIN_LINKED_SHARE:
            refuse(
                a, b, "linkage", f"{share:.0%} of their face pairs within {distance:g} (needs {MIN_LINKED_SHARE:.0%})"
            )
            continue
        members[a] += members[b]
        no_go[a] |= no_go[b]
        verified[a] = verified[a] or verified[b]
        person[a] = person[a] if person[a] is not None else person[b]
        faces[a] = np.vstack([faces[a], faces[b]])
        sums[a] += sums[b]
        units[a] = _unit(sums[a]).astype(np.float32)
        alive[b] = False
        version[a] += 1
        sims = units @ units[a]
        for c in np.nonzero((sims > limit) & alive)[0]:
            c = int(c)
            if c != a:
                first, second = (a, c) if a < c else (c, a)
                heapq.heappush(heap, (1.0 - float(sims[c]), first, second, version[first], version[second]))
    plan.groups = [sorted(members[i]) for i in range(n) if alive[i] and len(members[i]) > 1]
    return plan


def merge_similar(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Plan on what the database holds now (no row locks), then merge under the locks, where each
    group is checked again (apply_merges); a group changed meanwhile waits for the next run."""
    models = lock_collection_models(conn, collection_id)
    rows = repo.clusters(conn, collection_id)
    blocked = links_db.blocked_cluster_pairs(conn, collection_id)
    person_blocks = links_db.person_blocks(conn, collection_id)
    plan = MergePlan()
    for model in models:
        distance = options.similarity_threshold
        if distance is None:
            distance = face_distance(settings, model, "merge")
        ids, sums = repo.cluster_sums(conn, collection_id, model)
        found = plan_merges(
            ids, sums, rows, blocked, person_blocks, distance, lambda c: repo.member_embeddings(conn, c)
        )
        plan.groups += found.groups
        plan.refused += found.refused
        for kind, count in found.refused_by.items():
            plan.refused_by[kind] += count
    report = apply_merges(conn, collection_id, plan.groups, by=MERGE_SIMILAR_BY)
    return Outcome(
        {
            "groups": len(plan.groups),
            "clusters_merged_away": report.merged_away,
            "faces_moved": report.faces_moved,
            "deferred": len(report.busy) + len(report.refused),
            "refused_linkage": plan.refused_by["linkage"],
            "refused_rules": plan.refused_by["rules"],
        },
        notes=plan.refused + report.refused,
    )
