"""After a bootstrap: the faces HDBSCAN left as noise get the chances a new face would get.

1. Each noise face the quality gate lets through goes through incremental assignment
   (clustering.incremental.assign_new_faces, both tiers, the same blocks), so a face is placed
   the same way whether it was there at the bootstrap or arrived a second after it. HDBSCAN
   leaves a face as noise when it is not dense enough with its neighbours, which is not the
   question tier 2 asks (is the face within a cluster's ball?).
2. The faces still unassigned are grouped by complete linkage: every two faces of a group are
   within the model's `pair` distance of each other (clustering.distances), and no group holds two faces of
   one photo or a cannot-linked pair. Each group of two or more becomes a cluster, so people with
   two photos are found (HDBSCAN's min_cluster_size is larger); auto-association gives such a
   cluster a person (ASSOCIATION_LONE_CLUSTER_MIN_FACES).

Complete linkage needs every distance of a group, so it runs per connected component of the
faces' threshold graph; a component larger than LINKAGE_MAX_FACES is cut along its first
principal direction into pieces of at most that size (a group across a cut stays apart: recall
lost, never precision).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from photodb.clustering.distances import face_distance
from photodb.clustering.incremental import AssignmentReport, assign_new_faces
from photodb.database.clustering import faces as face_db
from photodb.database.clustering import locks as lock_db
from photodb.database.clustering import runs as run_db
from photodb.database.connection import Database

#: Largest set of faces complete linkage sees at once (its distance matrix: ~32 MB of float64).
LINKAGE_MAX_FACES = 2048
#: Distance given to pairs that may never share a group (same photo, cannot-link): above any threshold.
APART = 4.0
#: Rows per block when finding the faces' threshold graph (bounds memory: ~60 MB at 30k faces).
BLOCK_ROWS = 512


def place_noise(db: Database, detection_ids: Sequence[int]) -> AssignmentReport:
    """Incremental assignment of the bootstrap's noise faces (the active run is the new one)."""
    return assign_new_faces(db, list(detection_ids), force=True)


def leftover_groups(
    embeddings: np.ndarray,
    photo_ids: np.ndarray,
    threshold: float,
    cannot: Sequence[tuple[int, int]] = (),
) -> list[list[int]]:
    """Groups (indices into `embeddings`, unit vectors) of two or more faces whose every pair is
    within `threshold` (cosine distance), never two of one photo nor a pair of `cannot`."""
    from scipy.sparse import coo_matrix, csgraph

    n = embeddings.shape[0]
    if n < 2:
        return []
    vectors = embeddings.astype(np.float64)
    single = embeddings.astype(np.float32)
    rows, cols = [], []
    for start in range(0, n, BLOCK_ROWS):
        near = single[start : start + BLOCK_ROWS] @ single.T >= 1.0 - threshold - 1e-5  # linkage decides exactly
        r, c = np.nonzero(near)
        rows.append(r + start)
        cols.append(c)
    graph = coo_matrix((np.ones(sum(r.size for r in rows)), (np.concatenate(rows), np.concatenate(cols))), (n, n))
    count, component = csgraph.connected_components(graph, directed=False)
    apart: dict[int, list[tuple[int, int]]] = {}
    for a, b in cannot:
        if component[a] == component[b]:
            apart.setdefault(int(component[a]), []).append((a, b))
    groups: list[list[int]] = []
    for label in range(count):
        members = np.flatnonzero(component == label)
        if members.size < 2:
            continue
        for piece in _pieces(vectors, members):
            groups.extend(_complete_linkage(vectors, photo_ids, piece, threshold, apart.get(label, [])))
    return groups


def _pieces(vectors: np.ndarray, members: np.ndarray) -> list[np.ndarray]:
    """`members` as is when small enough, else cut along their first principal direction."""
    if members.size <= LINKAGE_MAX_FACES:
        return [members]
    centred = vectors[members] - vectors[members].mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    order = members[np.argsort(centred @ direction, kind="stable")]
    return [order[start : start + LINKAGE_MAX_FACES] for start in range(0, order.size, LINKAGE_MAX_FACES)]


def _complete_linkage(
    vectors: np.ndarray,
    photo_ids: np.ndarray,
    members: np.ndarray,
    threshold: float,
    cannot: Sequence[tuple[int, int]],
) -> list[list[int]]:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if members.size < 2:
        return []
    part = vectors[members]
    distances = np.clip(1.0 - part @ part.T, 0.0, 2.0)
    photos = photo_ids[members]
    distances[photos[:, None] == photos[None, :]] = APART
    position = {int(m): i for i, m in enumerate(members.tolist())}
    for a, b in cannot:
        if a in position and b in position:
            distances[position[a], position[b]] = distances[position[b], position[a]] = APART
    np.fill_diagonal(distances, 0.0)
    labels = fcluster(linkage(squareform(distances, checks=False), method="complete"), threshold, "distance")
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(int(members[i]))
    return [group for group in groups.values() if len(group) >= 2]


def group_leftovers(
    db: Database,
    collection_id: int,
    model: str,
    run_id: int,
    faces: face_db.FaceSet,
    candidates: np.ndarray,
    cannot: Sequence[tuple[int, int]],
) -> int:
    """Clusters of the run for the leftover groups among `candidates` (indices into `faces`) that
    are still unassigned and ungated when locked; returns how many were made."""
    with db.connection() as conn, conn.transaction():
        lock_db.lock_model(conn, collection_id, model, shared=False)
        waiting = set(face_db.lock_unassigned(conn, faces.ids[candidates].tolist()))
        pool = np.array([i for i in candidates.tolist() if int(faces.ids[i]) in waiting], np.int64)
        if pool.size < 2:
            return 0
        position = {int(faces.ids[i]): p for p, i in enumerate(pool.tolist())}
        links = [(position[a], position[b]) for a, b in cannot if a in position and b in position]
        threshold = face_distance(db.settings, model, "pair")
        groups = [pool[g] for g in leftover_groups(faces.embeddings[pool], faces.photo_ids[pool], threshold, links)]
        if not groups:
            return 0
        new = [run_db.NewCluster.of_members(faces.embeddings, faces.ids, members.tolist()) for members in groups]
        cluster_ids = run_db.insert_clusters(conn, collection_id, model, run_id, new)
        face_db.join_clusters(
            conn,
            [int(faces.ids[i]) for members in groups for i in members.tolist()],
            [cid for cid, members in zip(cluster_ids, groups, strict=True) for _ in members.tolist()],
        )
    return len(groups)
