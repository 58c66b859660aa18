"""Splitting a cluster or a person in two, when one identity holds two people.

The faces are re-clustered locally into two halves (people.halves: must-linked faces stay
together, faces of one photo and cannot-linked faces go apart where possible). The user picks the
half that keeps the cluster id (or the person, with its name); the other half:

- cluster split: becomes a new cluster. Every face of both halves becomes 'manual' (a person's
  decision), so a re-bootstrap keeps the halves; cluster_cannot_link keeps the two clusters apart
  for maintenance, and when the cluster has a person the new cluster may not be linked to it
  (cluster_person_cannot_link).
- person split: goes to a new person 'Unknown' (auto_created: it has no name yet, so automatic
  work may still link clusters to it or merge it with another unnamed person; created_by 'user').
  Clusters wholly in that half are relinked to it, keeping their id and verification; its faces in
  clusters that also hold kept faces move to one new cluster of the new person ('manual'). Every
  kept cluster gets a cannot-link with every cluster of the new person, and each side a
  cluster_person_cannot_link with the other person.

Everything is one transaction in the lock order of database.clustering.locks: the model lock
(shared), the faces' detection rows, the clusters, then the person. Counts and sums are recounted
from the members (database.clustering.centroids).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psycopg

from photodb.database import change_repository as change_db
from photodb.database import people_repository as people_db
from photodb.database import split_repository as split_db
from photodb.database.clustering import centroids as centroid_db
from photodb.database.clustering import locks as lock_db
from photodb.database.connection import Database
from photodb.people.age_gender import refresh_persons
from photodb.people.halves import CannotSplit, two_halves

#: Faces shown per half: those nearest the half's centre.
SAMPLES = 5
#: Attempts when faces join or leave the cluster between reading and locking it.
ATTEMPTS = 3


class SplitError(ValueError):
    """Bad input (unknown id, too few faces, a --keep that is not 1 or 2): nothing was written."""


@dataclass(frozen=True)
class Sample:
    detection_id: int
    photo_id: int
    path: str


@dataclass
class Half:
    number: int  # 1 or 2
    detection_ids: list[int]
    cluster_ids: list[int]  # the clusters its faces are in now
    samples: list[Sample]

    @property
    def face_count(self) -> int:
        return len(self.detection_ids)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"face_count": self.face_count}


@dataclass
class SplitPlan:
    kind: str  # 'cluster' or 'person'
    target_id: int
    collection_id: int
    embedding_model: str
    halves: tuple[Half, Half]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.target_id,
            "collection_id": self.collection_id,
            "embedding_model": self.embedding_model,
            "halves": [h.as_dict() for h in self.halves],
        }


@dataclass
class SplitResult:
    plan: SplitPlan
    kept: int | None  # the half that kept the cluster / person; None for a dry run
    new_cluster_id: int | None = None
    new_person_id: int | None = None
    relinked_clusters: list[int] = field(default_factory=list)
    moved_faces: int = 0
    cannot_links: int = 0
    change_id: int | None = None  # the undo log's record of the split (people.undo)

    def as_dict(self) -> dict[str, Any]:
        return self.plan.as_dict() | {
            "change_id": self.change_id,
            "kept_half": self.kept,
            "new_cluster_id": self.new_cluster_id,
            "new_person_id": self.new_person_id,
            "relinked_clusters": self.relinked_clusters,
            "moved_faces": self.moved_faces,
            "cluster_cannot_links": self.cannot_links,
            "dry_run": self.kept is None,
        }


@dataclass(frozen=True)
class _Target:
    kind: str
    id: int
    collection_id: int
    model: str
    person_id: int | None  # the cluster's person, or the person split


@dataclass(frozen=True)
class _Chosen:
    """What a split writes: the target, its halves (the one kept, the other) and its faces."""

    target: _Target
    plan: SplitPlan
    kept: Half
    other: Half
    members: list[split_db.Member]
    by: str


def _target(conn: psycopg.Connection, cluster_id: int | None, person_id: int | None) -> _Target:
    if (cluster_id is None) == (person_id is None):
        raise SplitError("give one of --cluster or --person")
    if cluster_id is not None:
        row = people_db.get_clusters(conn, [cluster_id]).get(cluster_id)
        if row is None:
            raise SplitError(f"no cluster {cluster_id}")
        return _Target("cluster", cluster_id, row.collection_id, row.embedding_model, row.person_id)
    assert person_id is not None
    collection_id = split_db.person_collection(conn, person_id)
    if collection_id is None:
        raise SplitError(f"no person {person_id}")
    models = split_db.person_models(conn, person_id)
    if len(models) > 1:
        raise SplitError(
            f"person {person_id} has faces of several embedding models ({', '.join(models)}): split one of its clusters"
        )
    if not models:
        raise SplitError(f"person {person_id} cannot be split: it has fewer than two faces")
    return _Target("person", person_id, collection_id, models[0], person_id)


def _plan(conn: psycopg.Connection, target: _Target, members: list[split_db.Member]) -> SplitPlan:
    ids = [m.detection_id for m in members]
    index = {d: i for i, d in enumerate(ids)}
    must = [(index[a], index[b]) for a, b in split_db.links_within(conn, "must_link", ids)]
    apart = [(index[a], index[b]) for a, b in split_db.links_within(conn, "cannot_link", ids)]
    embeddings = np.vstack([m.embedding for m in members]) if members else np.zeros((0, 512), np.float32)
    try:
        halves = two_halves(embeddings, [m.photo_id for m in members], must, apart)
    except CannotSplit as error:
        raise SplitError(f"{target.kind} {target.id} cannot be split: {error}") from error
    built = []
    for half in (0, 1):
        chosen = np.flatnonzero(halves == half)
        centre = embeddings[chosen].sum(0)
        nearest = chosen[np.argsort(-(embeddings[chosen] @ centre), kind="stable")[:SAMPLES]]
        samples = [Sample(members[i].detection_id, members[i].photo_id, members[i].path) for i in nearest]
        clusters = sorted({members[i].cluster_id for i in chosen if members[i].cluster_id is not None})
        built.append(Half(half + 1, [ids[i] for i in chosen], clusters, samples))
    return SplitPlan(target.kind, target.id, target.collection_id, target.model, (built[0], built[1]))


def plan_split(db: Database, *, cluster_id: int | None = None, person_id: int | None = None) -> SplitPlan:
    """The two halves, without writing anything (what --dry-run and the prompt show)."""
    with db.connection() as conn:
        target = _target(conn, cluster_id, person_id)
        return _plan(conn, target, split_db.members(conn, cluster_id=cluster_id, person_id=person_id))


def split(
    db: Database,
    *,
    cluster_id: int | None = None,
    person_id: int | None = None,
    keep: int,
    shown: SplitPlan | None = None,
    by: str = "user",
) -> SplitResult:
    """Split and keep half `keep` (1 or 2) in the cluster or person. With `shown` (the halves the
    user chose from), the split is refused if the faces changed since."""
    if keep not in (1, 2):
        raise SplitError(f"--keep must be 1 or 2, not {keep}")
    what = f"split {'cluster' if cluster_id is not None else 'person'} {cluster_id or person_id}, half {keep} keeps it"
    for _attempt in range(ATTEMPTS):
        with db.connection() as conn, conn.transaction():
            change_id = change_db.begin(conn, what, by)
            target = _target(conn, cluster_id, person_id)
            lock_db.lock_model(conn, target.collection_id, target.model, shared=True)
            members = split_db.members(conn, cluster_id=cluster_id, person_id=person_id, lock=True)
            clusters = {m.cluster_id for m in members if m.cluster_id is not None}
            lock_db.lock_clusters(conn, clusters | ({target.id} if target.kind == "cluster" else set()))
            current = split_db.members(conn, cluster_id=cluster_id, person_id=person_id)
            if [m.detection_id for m in current] != [m.detection_id for m in members]:
                change_db.finish(conn, change_id)  # empty: leaves no record
                continue  # a face joined or left before the clusters were locked: read again
            if target.person_id is not None:
                people_db.lock_persons(conn, [target.person_id])
            plan = _plan(conn, target, members)
            if shown is not None and [h.detection_ids for h in shown.halves] != [h.detection_ids for h in plan.halves]:
                raise SplitError(
                    f"{target.kind} {target.id} changed since its halves were shown: run the command again"
                )
            chosen = _Chosen(target, plan, plan.halves[keep - 1], plan.halves[2 - keep], members, by)
            result = (_split_cluster if target.kind == "cluster" else _split_person)(conn, chosen)
            touched = [p for p in (target.person_id, result.new_person_id) if p is not None]
            refresh_persons(conn, target.collection_id, touched, db.settings)
            result.change_id = change_db.finish(conn, change_id)
            return result
    raise SplitError(f"{'cluster' if cluster_id is not None else 'person'} kept changing while it was split: try again")


def _medoids(members: list[split_db.Member], placed: dict[int, int]) -> dict[int, int]:
    """Cluster -> the member nearest its centre, for the clusters in `placed` (detection -> cluster)."""
    by_cluster: dict[int, list[split_db.Member]] = {}
    for m in members:
        if m.detection_id in placed:
            by_cluster.setdefault(placed[m.detection_id], []).append(m)
    medoids = {}
    for cluster_id, faces in by_cluster.items():
        vectors = np.vstack([f.embedding for f in faces])
        medoids[cluster_id] = faces[int(np.argmax(vectors @ vectors.sum(0)))].detection_id
    return medoids


def _split_cluster(conn: psycopg.Connection, chosen: _Chosen) -> SplitResult:
    target, plan, kept, other, members, by = (
        chosen.target, chosen.plan, chosen.kept, chosen.other, chosen.members, chosen.by
    )  # fmt: skip
    new_cluster = split_db.insert_cluster(conn, target.collection_id, target.model, None, by)
    split_db.place_faces(conn, other.detection_ids, new_cluster)
    split_db.pin_faces(conn, kept.detection_ids)
    centroid_db.recount_clusters(conn, [target.id, new_cluster])
    placed = {d: target.id for d in kept.detection_ids} | {d: new_cluster for d in other.detection_ids}
    split_db.set_medoids(conn, _medoids(members, placed))
    links = split_db.add_cluster_cannot_links(conn, [(target.id, new_cluster)], by)
    if target.person_id is not None:
        split_db.add_cluster_person_cannot_links(conn, [(new_cluster, target.person_id)], by)
    return SplitResult(plan, kept.number, new_cluster_id=new_cluster, moved_faces=other.face_count, cannot_links=links)


def _split_person(conn: psycopg.Connection, chosen: _Chosen) -> SplitResult:
    target, plan, kept, other, members, by = (
        chosen.target, chosen.plan, chosen.kept, chosen.other, chosen.members, chosen.by
    )  # fmt: skip
    person = target.id
    new_person = people_db.create_person(conn, target.collection_id, auto_created=True, by=by)
    kept_ids, other_ids = set(kept.detection_ids), set(other.detection_ids)
    whole = [c for c in other.cluster_ids if c not in kept.cluster_ids]  # every face in the other half
    mixed_faces = [m.detection_id for m in members if m.detection_id in other_ids and m.cluster_id in kept.cluster_ids]
    loose = [m.detection_id for m in members if m.detection_id in other_ids and m.cluster_id is None]
    people_db.link_clusters(conn, new_person, whole, by=by)
    split_db.relink_faces(conn, loose, new_person)
    new_cluster = None
    if mixed_faces:
        new_cluster = split_db.insert_cluster(conn, target.collection_id, target.model, new_person, by)
        split_db.place_faces(conn, mixed_faces, new_cluster)
        sources = sorted({m.cluster_id for m in members if m.detection_id in set(mixed_faces) and m.cluster_id})
        centroid_db.recount_clusters(conn, [*sources, new_cluster])
        placed = {
            m.detection_id: m.cluster_id for m in members if m.cluster_id in sources and m.detection_id in kept_ids
        }
        split_db.set_medoids(conn, _medoids(members, placed | dict.fromkeys(mixed_faces, new_cluster)))
    theirs = whole + ([new_cluster] if new_cluster is not None else [])
    ours = kept.cluster_ids
    links = split_db.add_cluster_cannot_links(conn, [(a, b) for a in ours for b in theirs], by)
    split_db.add_cluster_person_cannot_links(conn, [(c, person) for c in theirs] + [(c, new_person) for c in ours], by)
    conn.execute("UPDATE person SET updated_at = now() WHERE id = %s", (person,))
    return SplitResult(
        plan,
        kept.number,
        new_cluster_id=new_cluster,
        new_person_id=new_person,
        relinked_clusters=whole,
        moved_faces=len(mixed_faces),
        cannot_links=links,
    )
