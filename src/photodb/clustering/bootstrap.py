"""Bootstrap: HDBSCAN over every face of one collection and embedding model, persisted as a run.

Manual work survives: faces marked 'manual' and every face of a verified, named or hidden cluster
are pinned (they keep their cluster, which keeps its id, person and verification). A new HDBSCAN
cluster whose faces mostly sat in an old cluster takes over that cluster's id (so ids, and the
"faces moved" count, mean something across runs); clusters nothing maps to are deleted, except
verified or named ones. After HDBSCAN come the constraints, in this order: must-links; faces of
one photo, which are different people (of a photo's faces in one cluster the one nearest its
centre stays, each other goes to the nearest cluster within tier 2's reach that holds no face of
that photo, else to noise); then cannot-links. Faces the quality gate keeps out (too small,
blurred, doubtful to the detector, or scored an outlier by this run: clustering.quality) go to
noise with their reason, unless pinned or must-linked. The run stores plain arrays (run_state), no pickle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from photodb.clustering import constraints, leftovers
from photodb.clustering.distances import face_distance
from photodb.clustering.incremental import check_server
from photodb.clustering.model import Fit, fit_clusters
from photodb.clustering.quality import OUTLIER, QualityGate
from photodb.clustering.staleness import run_parameters
from photodb.database.clustering import faces as face_db
from photodb.database.clustering import locks as lock_db
from photodb.database.clustering import quality as quality_db
from photodb.database.clustering import runs as run_db
from photodb.database.connection import Database

Progress = Callable[[str], None]


@dataclass
class BootstrapReport:
    """What a bootstrap did (or, with --dry-run, would do) for one embedding model."""

    collection_id: int
    embedding_model: str
    faces: int
    clusters: int = 0
    noise: int = 0
    new_clusters: int = 0
    reused_clusters: int = 0
    deleted_clusters: int = 0
    faces_moved: int = 0
    faces_newly_clustered: int = 0
    faces_to_noise: int = 0
    pinned_faces: int = 0
    constrained_faces: int = 0
    gated_faces: dict[str, int] = field(default_factory=dict)  # kept out of clusters, by reason
    noise_placed: int = 0  # noise faces incremental assignment then placed (clustering.leftovers)
    leftover_clusters: int = 0  # clusters made of the faces still unassigned after that
    conflicts: list[str] = field(default_factory=list)
    run_id: int | None = None
    dry_run: bool = False
    seconds: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Plan:
    keys: list[constraints.Key]
    statuses: list[str | None]
    label_key: dict[int, constraints.Key]
    key_labels: dict[constraints.Key, int]
    constrained: set[int]
    issues: dict[int, str]  # face index -> why the quality gate sent it to noise


def _majority(labels: np.ndarray, values: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per label in [0, count): its most common value >= 0 (-1 if none) and how often it occurs."""
    keep = (labels >= 0) & (values >= 0)
    pairs, counts = np.unique(np.stack([labels[keep], values[keep]]), axis=1, return_counts=True)
    best, best_count = np.full(count, -1, np.int64), np.zeros(count, np.int64)
    order = np.lexsort((-counts, pairs[0]))  # by label, most frequent first
    first = order[np.r_[True, pairs[0][order][1:] != pairs[0][order][:-1]]] if order.size else order
    best[pairs[0][first]], best_count[pairs[0][first]] = pairs[1][first], counts[first]
    return best, best_count


def epsilon_distance(lambda_birth: float | None, threshold: float) -> float:
    """Tier 2's reach of a cluster as a cosine distance: (1 / lambda_birth)^2 / 2, capped by the threshold."""
    if lambda_birth is None or not lambda_birth > 0:
        return threshold
    return min((1.0 / lambda_birth) ** 2 / 2, threshold)


def _plan(
    faces: face_db.FaceSet,
    fit: Fit,
    clusters: dict[int, run_db.ClusterInfo],
    links: tuple[list[tuple[int, int]], list[tuple[int, int]]],
    threshold: float,
    conflicts: list[str],
    gate: tuple[QualityGate, dict[int, str]],
) -> tuple[_Plan, np.ndarray]:
    n = faces.ids.size
    previous = faces.cluster_ids
    keep = {cid for cid, c in clusters.items() if c.verified or c.person_id is not None or c.hidden}
    manual = np.array([status == "manual" for status in faces.statuses], bool)
    pinned = manual | np.isin(previous, np.fromiter(keep, np.int64, len(keep)))
    retained = keep | {cid for cid, c in clusters.items() if c.constrained}
    retained |= set(previous[pinned & (previous >= 0)].tolist())

    # Map each HDBSCAN label to an old cluster holding most of its faces (one-to-one unless retained).
    known = np.where(np.isin(previous, np.fromiter(clusters, np.int64, len(clusters))), previous, -1)
    old, count = _majority(fit.labels, known, fit.cluster_count)
    sizes = np.bincount(fit.labels[fit.labels >= 0], minlength=fit.cluster_count)
    label_key: dict[int, constraints.Key] = {label: ("label", label) for label in range(fit.cluster_count)}
    claims = [(int(count[lab]), lab, int(old[lab])) for lab in np.nonzero((old >= 0) & (2 * count > sizes))[0]]
    taken: set[int] = set()
    for _count, label, cluster in sorted(claims, reverse=True):
        if cluster in retained or cluster not in taken:
            label_key[int(label)] = ("cluster", cluster)
            taken.add(cluster)
    keys: list[constraints.Key] = [
        (("cluster", int(previous[i])) if previous[i] >= 0 else None)
        if pinned[i]
        else label_key.get(int(fit.labels[i]))
        for i in range(n)
    ]
    index = {int(d): i for i, d in enumerate(faces.ids)}
    must_i = [(index[a], index[b]) for a, b in links[0] if a in index and b in index]
    cannot_i = [(index[a], index[b]) for a, b in links[1] if a in index and b in index]
    units = constraints.must_link_units(n, must_i)
    unit_sizes = np.bincount(np.asarray(units, np.int64), minlength=n)
    issues = _gated(gate, fit, faces.ids, pinned | (unit_sizes[np.asarray(units, np.int64)] > 1))
    for i in issues:
        keys[i] = None
    moved = constraints.apply_must_links(keys, pinned, units, conflicts)
    anchored = pinned | (unit_sizes[np.asarray(units, np.int64)] > 1)
    label_of_key = {key: label for label, key in label_key.items()}

    def reach(key: constraints.Key) -> float:
        if key in label_of_key:
            return epsilon_distance(fit.lambda_birth.get(label_of_key[key]), threshold)
        cluster = clusters.get(key[1]) if isinstance(key, tuple) and key[0] == "cluster" else None
        return epsilon_distance(cluster.lambda_birth if cluster else None, threshold)

    moved |= constraints.split_same_photo(keys, anchored, faces.embeddings, faces.photo_ids, reach, conflicts)
    moved |= constraints.apply_cannot_links(keys, pinned, units, faces.embeddings, cannot_i, conflicts)
    constraints.drop_far_members(keys, anchored, faces.embeddings, threshold)
    statuses = [
        faces.statuses[i] if pinned[i] else "unassigned" if keys[i] is None else "constrained" if i in moved else "auto"
        for i in range(n)
    ]
    key_labels = {key: label for label, key in label_key.items() if key[0] == "label"}
    for label, key in label_key.items():
        key_labels.setdefault(key, label)
    return _Plan(keys, statuses, label_key, key_labels, moved, issues), pinned


def _gated(gate: tuple[QualityGate, dict[int, str]], fit: Fit, ids: np.ndarray, exempt: np.ndarray) -> dict[int, str]:
    """Face index -> reason, for the faces the quality gate keeps out: the stored measures' verdict
    (by detection id), else an outlier score of this run above the ceiling. Exempt faces (pinned,
    must-linked: a person placed them) never are."""
    rule, stored = gate
    outliers = rule.outliers(fit.outlier_scores)
    issues: dict[int, str] = {}
    for i, detection_id in enumerate(ids.tolist()):
        reason = stored.get(detection_id) or (OUTLIER if outliers[i] else None)
        if reason is not None and not exempt[i]:
            issues[i] = reason
    return issues


def bootstrap_model(
    db: Database,
    collection_id: int,
    model: str,
    *,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> BootstrapReport:
    """Cluster one collection's faces of one embedding model and (unless dry_run) persist the run."""
    settings = db.settings
    started = time.monotonic()
    mcs = min_cluster_size or settings.hdbscan_min_cluster_size
    ms = min_samples or settings.hdbscan_min_samples
    say = progress or (lambda _message: None)
    with db.connection() as conn:
        say(f"{model}: loading faces")
        faces = face_db.load_faces(conn, collection_id, model)
        clusters = run_db.load_clusters(conn, collection_id, model)
        must = face_db.load_links(conn, "must_link", collection_id, model)
        cannot = face_db.load_links(conn, "cannot_link", collection_id, model)
        gate = QualityGate.from_settings(settings)
        stored_issues = quality_db.model_issues(conn, collection_id, model, gate)
    parameters = run_parameters(settings, mcs, ms)
    report = BootstrapReport(collection_id, model, int(faces.ids.size), dry_run=dry_run, parameters=parameters)
    if faces.ids.size <= mcs:
        report.conflicts.append(f"only {faces.ids.size} faces; at least {mcs + 1} are needed to cluster")
        report.seconds = time.monotonic() - started
        return report
    say(f"{model}: reducing {faces.ids.size} faces to {settings.clustering_reduce_dims} dimensions and clustering")
    fit = fit_clusters(
        faces.embeddings,
        min_cluster_size=mcs,
        min_samples=ms,
        dims=settings.clustering_reduce_dims,
        selection_method=settings.hdbscan_cluster_selection_method,
        embedding_model=model,
    )
    say(f"{model}: applying constraints")
    threshold = face_distance(settings, model, "assign")
    plan, pinned = _plan(faces, fit, clusters, (must, cannot), threshold, report.conflicts, (gate, stored_issues))
    for reason in plan.issues.values():
        report.gated_faces[reason] = report.gated_faces.get(reason, 0) + 1

    groups: dict[constraints.Key, list[int]] = {}
    for i, key in enumerate(plan.keys):
        if key is not None:
            groups.setdefault(key, []).append(i)
    existing = {key: key[1] for key in groups if key[0] == "cluster"}
    report.clusters = len(groups)
    report.noise = sum(key is None for key in plan.keys)
    report.reused_clusters = len(existing)
    report.new_clusters = len(groups) - len(existing)
    report.deleted_clusters = sum(
        1
        for cid, c in clusters.items()
        if ("cluster", cid) not in groups and not c.verified and c.person_id is None and not c.hidden
    )
    report.pinned_faces = int(pinned.sum())
    report.constrained_faces = len(plan.constrained)
    for i, key in enumerate(plan.keys):
        before = int(faces.cluster_ids[i])
        after = existing.get(key) if key is not None else None
        if before >= 0 and key is None:
            report.faces_to_noise += 1
        elif before < 0 and key is not None:
            report.faces_newly_clustered += 1
        elif before >= 0 and after != before:
            report.faces_moved += 1
    if dry_run:
        report.seconds = time.monotonic() - started
        return report

    say(f"{model}: writing {len(groups)} clusters")
    summaries: dict[constraints.Key, run_db.NewCluster] = {}
    for key, members in groups.items():
        label = plan.key_labels.get(key)
        summaries[key] = run_db.NewCluster.of_members(
            faces.embeddings,
            faces.ids,
            members,
            fit.lambda_birth.get(label) if label is not None else None,
            fit.persistence.get(label) if label is not None else None,
        )
    with db.connection() as conn, conn.transaction():
        lock_db.lock_model(conn, collection_id, model, shared=False)
        run_id = run_db.insert_run(
            conn,
            collection_id=collection_id,
            model=model,
            embedding_count=int(faces.ids.size),
            cluster_count=len(groups),
            noise_count=report.noise,
            min_cluster_size=mcs,
            min_samples=ms,
            parameters={**parameters, "max_detection_id": int(faces.ids.max())},
            condensed_tree=fit.condensed_tree_json(),
            clusterer_state=fit.state.to_bytes(),
            reducer_state=fit.reducer.to_bytes(),
        )
        live = run_db.load_clusters(conn, collection_id, model)  # a cluster may be gone since loading
        reused = {existing[k]: summaries[k] for k in existing if existing[k] in live}
        fresh = [k for k in groups if k not in existing or existing[k] not in live]
        ids = dict(
            zip(
                fresh,
                run_db.insert_clusters(conn, collection_id, model, run_id, [summaries[k] for k in fresh]),
                strict=True,
            )
        )
        ids.update({k: existing[k] for k in existing if existing[k] in live})
        rows = []
        final = np.full(len(plan.keys), -1, np.int64)
        for i, key in enumerate(plan.keys):
            cluster_id = ids[key] if key is not None else None
            final[i] = -1 if cluster_id is None else cluster_id
            confidence = float(np.clip(fit.probabilities[i], 0, 1)) if plan.statuses[i] == "auto" else None
            lam = float(fit.lambda_vals[i]) if np.isfinite(fit.lambda_vals[i]) else None
            outlier = float(np.clip(fit.outlier_scores[i], 0, 1)) if np.isfinite(fit.outlier_scores[i]) else None
            issue = plan.issues.get(i)
            rows.append((int(faces.ids[i]), cluster_id, plan.statuses[i], confidence, lam, outlier, key is None, issue))
        # detection rows first, then cluster rows: the one lock order (database.clustering.locks)
        run_db.write_assignments(conn, rows)
        run_db.update_clusters(conn, run_id, reused)
        run_db.settle_clusters(conn, collection_id, model)
        report.deleted_clusters = run_db.delete_empty_clusters(conn, collection_id, model)
        landed, _ = _majority(fit.labels, final, fit.cluster_count)
        label_map = {str(label): int(cluster) for label, cluster in enumerate(landed) if cluster >= 0}
        run_db.activate_run(conn, run_id, label_map)
    report.run_id = run_id
    noise = np.array([i for i, key in enumerate(plan.keys) if key is None and i not in plan.issues], np.int64)
    if noise.size:
        # only HDBSCAN's own noise: a face the constraints or the far-member drop took out stays out
        hdbscan_noise = noise[fit.labels[noise] < 0]
        say(f"{model}: placing {hdbscan_noise.size} noise faces as new faces are placed")
        placed = leftovers.place_noise(db, faces.ids[hdbscan_noise].tolist())
        report.noise_placed = sum(cluster is not None for cluster in placed.cluster_of.values())
        say(f"{model}: grouping the faces left unassigned")
        report.leftover_clusters = leftovers.group_leftovers(db, collection_id, model, run_id, faces, noise, cannot)
    report.seconds = time.monotonic() - started
    return report


def bootstrap(
    db: Database,
    *,
    collection_id: int | None = None,
    embedding_model: str | None = None,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> list[BootstrapReport]:
    """Bootstrap every (collection, embedding model) pair asked for, one model at a time."""
    with db.connection() as conn:
        check_server(db, conn)
        collections = [collection_id] if collection_id is not None else face_db.collection_ids(conn)
        work = [
            (c, m)
            for c in collections
            for m in face_db.embedding_models(conn, c)
            if embedding_model is None or m == embedding_model
        ]
    return [
        bootstrap_model(
            db, c, m, min_cluster_size=min_cluster_size, min_samples=min_samples, dry_run=dry_run, progress=progress
        )
        for c, m in work
    ]
