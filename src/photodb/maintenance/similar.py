"""merge-similar: clusters of one embedding model whose centroids are closer than a threshold
become one.

The threshold is a cosine distance between centroids (1 - cosine similarity of the normalised
sums): by default each model's clustering threshold (Settings.clustering_threshold_for, 0.45 for
ArcFace), or --similarity-threshold for every model. Models are never compared with each other.
Pairs are merged closest first, and a merged cluster is measured again with its new centroid
(centroid linkage), until no pair under the threshold may merge: so a second run finds nothing.
A pair never merges when both clusters are verified, when a cluster cannot-link, a cannot-link
between their faces or a photo with a face in each (two people) keeps them apart, when they
belong to different persons, or when one is cannot-linked to the other's person. Hidden clusters
are left alone.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import psycopg

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


def plan_merges(
    ids: Sequence[int],
    sums: np.ndarray,
    rows: dict[int, repo.ClusterRow],
    blocked: set[tuple[int, int]],
    person_blocks: set[tuple[int, int]],
    threshold: float,
) -> list[list[int]]:
    """Groups of cluster ids (two or more) to merge, by the rules of this module."""
    n = len(ids)
    if n < 2:
        return []
    sums = np.array(sums, np.float64)
    units = _unit(sums).astype(np.float32)
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
    heap: list[tuple[float, int, int, int, int]] = []
    limit = 1.0 - threshold  # cosine similarity above which a pair is a candidate
    for start in range(0, n, _BLOCK):
        sims = units[start : start + _BLOCK] @ units.T
        for r, c in zip(*np.nonzero(sims > limit), strict=True):
            i = start + int(r)
            if i < c:
                heapq.heappush(heap, (1.0 - float(sims[r, c]), i, int(c), 0, 0))

    def allowed(a: int, b: int) -> bool:
        if verified[a] and verified[b]:
            return False
        if person[a] is not None and person[b] is not None and person[a] != person[b]:
            return False
        if any(m in no_go[a] for m in members[b]):
            return False
        for p, others in ((person[a], members[b]), (person[b], members[a])):
            if p is not None and any((m, p) in person_blocks for m in others):
                return False
        return True

    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb or not allowed(a, b):
            continue
        members[a] += members[b]
        no_go[a] |= no_go[b]
        verified[a] = verified[a] or verified[b]
        person[a] = person[a] if person[a] is not None else person[b]
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
    return [sorted(members[i]) for i in range(n) if alive[i] and len(members[i]) > 1]


def merge_similar(conn: psycopg.Connection, settings: Settings, collection_id: int, options: Options) -> Outcome:
    """Plan on what the database holds now (no row locks), then merge under the locks, where each
    group is checked again (apply_merges); a group changed meanwhile waits for the next run."""
    models = lock_collection_models(conn, collection_id)
    rows = repo.clusters(conn, collection_id)
    blocked = links_db.blocked_cluster_pairs(conn, collection_id)
    person_blocks = links_db.person_blocks(conn, collection_id)
    groups: list[list[int]] = []
    for model in models:
        threshold = options.similarity_threshold
        if threshold is None:
            threshold = settings.clustering_threshold_for(model)
        ids, sums = repo.cluster_sums(conn, collection_id, model)
        groups += plan_merges(ids, sums, rows, blocked, person_blocks, threshold)
    report = apply_merges(conn, collection_id, groups, by=MERGE_SIMILAR_BY)
    return Outcome(
        {
            "groups": len(groups),
            "clusters_merged_away": report.merged_away,
            "faces_moved": report.faces_moved,
            "deferred": len(report.busy) + len(report.refused),
        }
    )
