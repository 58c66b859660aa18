"""auto_associate_clusters: clusters that are one person, grouped into a shared person record.

Per collection and embedding model (embeddings of two models are never compared), in its own
transaction: the centroids of the clusters that take part (not hidden, not left without a person
by a user) are compared pairwise (numpy, exact; the same cosine distance as pgvector's `<=>`, and
faster than one HNSW query per cluster: bench/association.py), pairs within the model's threshold
(`associate` of clustering.distances) whose faces are close too (most face pairs across within
`merge`: clustering.distances.faces_linked) are grouped by complete linkage, and each group joins
one person (association_plan): a new auto-created 'Unknown' person, the one person its clusters
have, or the winner of a merge (verified > cluster count > id). Pairs and persons blocked by
cannot-links or faces of one photo are kept apart. Then every cluster still without a person that
holds at least ASSOCIATION_LONE_CLUSTER_MIN_FACES faces gets one of its own ("lone" persons, as a
photo library shows every face group as a person), unless a user said "leave it" (hidden, unlinked,
not that person: association_repository.lone_cluster_candidates); 0 keeps the spec's rule.

Safe while process-local runs: the model lock is taken shared, then the clusters concerned, then
their persons, in id order (database.clustering.locks); what decides a link is read after the locks.
Afterwards the age/gender aggregation runs again for the persons it touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg

from photodb.clustering.distances import face_distance, faces_linked
from photodb.config import Settings
from photodb.database import association_repository as repo
from photodb.database import maintenance_repository as maintenance_repo
from photodb.database import people_repository as people
from photodb.database.clustering.locks import lock_clusters, lock_model
from photodb.database.connection import Database
from photodb.people.age_gender import AggregationReport, aggregate_people, aggregate_people_in
from photodb.people.association_plan import GroupPlan, Pair, Planner, complete_linkage, find_pairs

logger = logging.getLogger(__name__)

#: Who auto-association's links, persons and merges are recorded as.
BY = "auto:associate"
#: Attempts when persons gain clusters between the read and the locks.
ATTEMPTS = 3


class ThresholdError(ValueError):
    """A threshold that is no cosine distance auto-association can use."""


class _StateMoved(RuntimeError):
    """A person gained a cluster between reading and locking: start the transaction again."""


@dataclass
class ModelReport:
    collection_id: int
    embedding_model: str
    threshold: float
    clusters: int = 0
    pairs: int = 0
    #: centroid pairs within the threshold whose faces are not (too few face pairs within `merge`)
    pairs_not_linked: int = 0
    groups: list[GroupPlan] = field(default_factory=list)
    persons_created: int = 0
    clusters_linked: int = 0
    persons_merged: int = 0
    #: ASSOCIATION_LONE_CLUSTER_MIN_FACES as this run used it (0: lone clusters get no person)
    lone_min_faces: int = 0
    #: clusters no other cluster joined that get (dry run: would get) a person of their own
    lone_clusters: list[int] = field(default_factory=list)
    #: cluster -> its new person (empty for a dry run)
    lone_persons: dict[int, int] = field(default_factory=dict)
    touched_persons: set[int] = field(default_factory=set)

    @property
    def lone_persons_created(self) -> int:
        return len(self.lone_clusters)

    @property
    def conflicts(self) -> list[str]:
        return [c for g in self.groups for c in g.conflicts]

    def as_dict(self) -> dict[str, object]:
        return {
            "collection_id": self.collection_id,
            "embedding_model": self.embedding_model,
            "threshold": self.threshold,
            "clusters": self.clusters,
            "pairs": self.pairs,
            "pairs_not_linked": self.pairs_not_linked,
            "groups": len(self.groups),
            "groups_changed": [g.as_dict() for g in self.groups if g.changed],
            "persons_created": self.persons_created,
            "clusters_linked": self.clusters_linked,
            "persons_merged": self.persons_merged,
            "lone_min_faces": self.lone_min_faces,
            "lone_persons_created": self.lone_persons_created,
            "lone_persons": [{"cluster_id": c, "person_id": self.lone_persons.get(c)} for c in self.lone_clusters],
            "conflicts": self.conflicts,
        }


@dataclass
class AssociationReport:
    dry_run: bool
    models: list[ModelReport] = field(default_factory=list)
    aggregation: AggregationReport | None = None

    @property
    def persons_created(self) -> int:
        return sum(m.persons_created for m in self.models)

    @property
    def clusters_linked(self) -> int:
        return sum(m.clusters_linked for m in self.models)

    @property
    def persons_merged(self) -> int:
        return sum(m.persons_merged for m in self.models)

    @property
    def lone_persons_created(self) -> int:
        return sum(m.lone_persons_created for m in self.models)

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "persons_created": self.persons_created,
            "clusters_linked": self.clusters_linked,
            "persons_merged": self.persons_merged,
            "lone_persons_created": self.lone_persons_created,
            "models": [m.as_dict() for m in self.models],
            "age_gender": self.aggregation.as_dict() if self.aggregation else None,
        }


def check_threshold(threshold: float | None) -> None:
    """Cosine distances lie in [0, 2]; 0 or less would pair nothing, and NaN is not a number."""
    if threshold is not None and not 0 < threshold <= 2:
        raise ThresholdError(f"--threshold must be a cosine distance above 0 and at most 2, not {threshold}")


def auto_associate(
    db: Database,
    collection_id: int | None,
    *,
    threshold: float | None = None,
    dry_run: bool = False,
    clusters: Collection[int] | None = None,
) -> AssociationReport:
    """Group the clusters of a collection (None: every collection) into persons; `threshold`
    overrides every model's own, for centroids and their faces; `dry_run` plans the same groups and
    writes nothing; `clusters` limits the work to pairs with one of them on a side, and lone persons
    to them (the clusters that changed since the last pass: the other pairs were decided then)."""
    check_threshold(threshold)
    lone_min = db.settings.association_lone_cluster_min_faces
    report = AssociationReport(dry_run=dry_run)
    with db.connection() as conn:
        collections = repo.collections_with_clusters(conn, collection_id)
        work = [(c, m) for c in collections for m in repo.cluster_models(conn, c)]
    for collection, model in work:
        limits = (
            (threshold, threshold)
            if threshold is not None
            else (face_distance(db.settings, model, "associate"), face_distance(db.settings, model, "merge"))
        )
        result = db.retrying(
            lambda c=collection, m=model, t=limits: _associate_model(db, c, m, t, lone_min, dry_run, clusters),
            "associate",
        )
        report.models.append(result)
    touched = sorted({p for m in report.models for p in m.touched_persons})
    if touched and not dry_run:
        report.aggregation = aggregate_people(
            db, None, min_confidence=db.settings.age_gender_gender_min_confidence, person_ids=touched
        )
    return report


def associate_collection_in(
    conn: psycopg.Connection, settings: Settings, collection_id: int, models: Sequence[str]
) -> list[ModelReport]:
    """Auto-association of one collection inside the caller's transaction (weekly maintenance,
    which already holds every model lock shared); each model in a savepoint, redone when persons
    moved under it. Touched persons get their age and gender again."""
    reports = []
    for model in models:
        limits = (face_distance(settings, model, "associate"), face_distance(settings, model, "merge"))
        for attempt in range(ATTEMPTS):
            try:
                with conn.transaction():
                    reports.append(
                        _associate_in(
                            conn, collection_id, model, limits, settings.association_lone_cluster_min_faces, False
                        )
                    )
                break
            except _StateMoved:
                logger.info("persons changed while associating %s (attempt %d); again", model, attempt + 1)
        else:
            raise RuntimeError(f"persons of collection {collection_id} kept changing during auto-association")
    touched = sorted({p for m in reports for p in m.touched_persons})
    if touched:
        aggregate_people_in(conn, None, min_confidence=settings.age_gender_gender_min_confidence, person_ids=touched)
    return reports


def _associate_model(
    db: Database,
    collection_id: int,
    model: str,
    limits: tuple[float, float],
    lone_min: int,
    dry_run: bool,
    focus: Collection[int] | None = None,
) -> ModelReport:
    for attempt in range(ATTEMPTS):
        try:
            with db.connection() as conn, conn.transaction():
                return _associate_in(conn, collection_id, model, limits, lone_min, dry_run, focus)
        except _StateMoved:
            logger.info("persons changed while associating %s (attempt %d); again", model, attempt + 1)
    raise RuntimeError(f"persons of collection {collection_id} kept changing during auto-association; run it again")


def _associate_in(
    conn: psycopg.Connection,
    collection_id: int,
    model: str,
    limits: tuple[float, float],
    lone_min: int,
    dry_run: bool,
    focus: Collection[int] | None = None,
) -> ModelReport:
    """One model: groups of close clusters join persons, then lone clusters of at least `lone_min`
    faces (0: none) get their own. The lone candidates are locked with the groups' clusters (step 4).
    `limits`: the centroid threshold, and the `merge` distance most face pairs across a pair of
    clusters must be within (clustering.distances.faces_linked)."""
    threshold, face_limit = limits
    report = ModelReport(collection_id, model, threshold, lone_min_faces=lone_min)
    lock_model(conn, collection_id, model, shared=True)
    ids, vectors = repo.centroids(conn, collection_id, model)
    report.clusters = len(ids)
    pairs = find_pairs(ids, vectors, threshold, focus)
    if pairs:
        faces = maintenance_repo.member_embeddings(conn, sorted({c for p in pairs for c in (p.a, p.b)}))
        empty = np.zeros((0, vectors.shape[1]), np.float32)
        linked = [p for p in pairs if faces_linked(faces.get(p.a, empty), faces.get(p.b, empty), face_limit)]
        report.pairs_not_linked = len(pairs) - len(linked)
        pairs = linked
    report.pairs = len(pairs)
    lone = repo.lone_cluster_candidates(conn, collection_id, model, lone_min) if lone_min > 0 else []
    if focus is not None:
        wanted = set(focus)
        lone = [c for c in lone if c in wanted]
    if not pairs and not lone:
        return report
    involved = sorted({p.a for p in pairs} | {p.b for p in pairs})
    person_ids = repo.person_ids_of(conn, involved)
    concerned = sorted(set(involved).union(*repo.clusters_of_persons(conn, person_ids).values()))
    if not dry_run:
        lock_clusters(conn, set(concerned).union(lone))
        person_ids = repo.person_ids_of(conn, concerned)
        people.lock_persons(conn, person_ids)
    person_clusters = repo.clusters_of_persons(conn, person_ids)
    if not set().union(*person_clusters.values()) <= set(concerned):
        raise _StateMoved
    planner = Planner(
        repo.cluster_states(conn, concerned),
        repo.person_states(conn, person_ids),
        person_clusters,
        repo.blocked_pairs(conn, concerned),
        repo.person_cannot_links(conn, concerned),
    )
    by_cluster = _pairs_by_group(pairs)
    for members in complete_linkage(pairs, planner.blocked):
        report.groups.append(planner.plan(members, by_cluster(members)))
    changed = [g for g in report.groups if g.changed]
    report.persons_created = sum(1 for g in changed if g.person_id is None)
    report.clusters_linked = sum(len(g.link) for g in changed)
    report.persons_merged = sum(len(g.merge) for g in changed)
    if dry_run:
        joined = {c for g in report.groups for c, p in g.joins.items() if p is not None}
        report.lone_clusters = [c for c in lone if c not in joined]
        return report
    _write(conn, collection_id, changed, report)
    made = repo.create_lone_persons(conn, collection_id, lone, lone_min, by=BY)
    report.lone_persons = dict(made)
    report.lone_clusters = [c for c, _ in made]
    report.touched_persons.update(report.lone_persons.values())
    return report


def _pairs_by_group(pairs: list[Pair]) -> Callable[[list[int]], list[Pair]]:
    """The pairs inside a group, looked up in the pair table."""
    table = {(p.a, p.b): p for p in pairs}

    def within(members: list[int]) -> list[Pair]:
        return [table[(a, b)] for i, a in enumerate(members) for b in members[i + 1 :] if (a, b) in table]

    return within


def _write(conn: psycopg.Connection, collection_id: int, groups: list[GroupPlan], report: ModelReport) -> None:
    """Merges first, then new persons and every link in one statement each. The order does not
    change the outcome: groups are disjoint, and a merged person appears in no later group."""
    for group in groups:
        for loser in group.merge:
            assert group.person_id is not None  # a merge always has an existing winner
            people.merge_persons(conn, group.person_id, loser, by=BY)
    created = report.persons_created
    fresh = iter(people.create_auto_persons(conn, collection_id, created, by=BY) if created else [])
    links: list[tuple[int, int]] = []
    for group in groups:
        if group.person_id is None:
            group.person_id = next(fresh)
            group.joins = {c: group.person_id if p is not None and p < 0 else p for c, p in group.joins.items()}
        person_id = group.person_id
        links.extend((c, person_id) for c in group.link)
        report.touched_persons.add(person_id)
    report.clusters_linked = people.link_clusters_to_persons(conn, links, by=BY)
