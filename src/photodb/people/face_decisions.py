"""Face-level decisions of `photodb people`: move a face, "not this person", must/cannot-links.

A face is a person_detection id. The rules of people.identity hold: one transaction per decision,
locks in the one order (model lock shared, detections, clusters, persons), validation under the
locks before any write, `by` recorded. Moves go through clustering.manual_moves.move_locked_face
(the manual move every tool uses: the face is pinned, sums and counts follow). A rejected face is
re-placed by the incremental assignment path (assign_new_faces) after the decision commits: that
path never puts a face into a cluster holding a face it is cannot-linked with, so it skips the
rejected clusters; with no active run, or no cluster near enough, the face stays unassigned.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import psycopg

from photodb.clustering.incremental import assign_new_faces
from photodb.clustering.manual_moves import move_locked_face
from photodb.database import change_repository as change_db
from photodb.database import face_constraints as links_db
from photodb.database import people_repository as people_db
from photodb.database.clustering import locks as lock_db
from photodb.database.clustering import manual as manual_db
from photodb.database.connection import Database
from photodb.database.people_queries import display_name
from photodb.people.age_gender import refresh_persons
from photodb.people.identity import (
    PeopleError,
    check_collection,
    lock_person,
    named_alike,
    recorded,
    split_name,
    transaction,
    valid_name,
)


def _face(conn: psycopg.Connection, face_id: int, collection_id: int | None) -> links_db.FaceInfo:
    face = links_db.get_faces(conn, [face_id]).get(face_id)
    if face is None:
        raise PeopleError(f"no face {face_id}")
    if face.embedding_model is None:
        raise PeopleError(f"detection {face_id} has no face embedding (a body without a face)")
    check_collection("face", face_id, face.collection_id, collection_id)
    return face


def _lock_face(conn: psycopg.Connection, face: links_db.FaceInfo) -> links_db.FaceInfo:
    """Model lock (shared), then the detection row; the face as it is now."""
    assert face.embedding_model is not None
    lock_db.lock_model(conn, face.collection_id, face.embedding_model, shared=True)
    locked = links_db.get_faces(conn, [face.id], lock=True).get(face.id)
    if locked is None:
        raise PeopleError(f"no face {face.id} (deleted just now by a detection rerun)")
    return locked


Row = TypeVar("Row", people_db.ClusterRow, people_db.PersonRow)


def _of_face_collection(face: links_db.FaceInfo, kind: str, object_id: int, found: dict[int, Row]) -> Row:
    """The cluster or person a face is moved to; it must exist in the face's collection."""
    row = found.get(object_id)
    if row is None:
        raise PeopleError(f"no {kind} {object_id}")
    if row.collection_id != face.collection_id:
        raise PeopleError(f"face {face.id} and {kind} {object_id} belong to different collections")
    return row


def _face_owner(conn: psycopg.Connection, face_id: int) -> int | None:
    """The person a face belongs to: its cluster's, else its own."""
    return people_db.face_persons(conn, [face_id]).get(face_id)


def move_face(
    db: Database,
    face_id: int,
    *,
    cluster_id: int | None = None,
    person_id: int | None = None,
    by: str,
    collection_id: int | None = None,
) -> dict[str, Any]:
    """Move a face by hand into a cluster, to a person (their nearest cluster of the face's model,
    else the person alone), or out of every cluster (both None). The face is pinned ('manual')."""
    where = f"cluster {cluster_id}" if cluster_id is not None else f"person {person_id}" if person_id else "no cluster"
    with recorded(db, f"move face {face_id} to {where}", by=by) as (conn, change):
        result = _move_locked(
            db, conn, face_id, cluster_id=cluster_id, person_id=person_id, by=by, collection_id=collection_id
        )
    return result | {"change_id": change.id}


def move_faces(
    db: Database, face_ids: list[int], *, person_id: int, by: str, collection_id: int | None = None
) -> dict[str, Any]:
    """Several faces to one person (the person page's selection) as one change, so one Undo
    puts them all back."""
    with recorded(db, f"move faces {', '.join(map(str, face_ids))} to person {person_id}", by=by) as (conn, change):
        for face_id in sorted(face_ids):
            _move_locked(db, conn, face_id, cluster_id=None, person_id=person_id, by=by, collection_id=collection_id)
    return {"face_ids": sorted(face_ids), "person_id": person_id, "change_id": change.id}


def name_face(
    db: Database, face_id: int, name: str, *, by: str, new: bool = False, collection_id: int | None = None
) -> dict[str, Any]:
    """Give a face a name: it moves to the person who has that name (their nearest cluster), or,
    when nobody has it (or with `new`), to a new person of that name, alone."""
    name = valid_name(name)
    first, last = split_name(name)
    with recorded(db, f"name face {face_id} {name!r}", by=by) as (conn, change):
        face = _face(conn, face_id, collection_id)
        person_id = named_alike(conn, face.collection_id, name, new=new)
        linked = person_id is not None
        if person_id is None:
            person_id = people_db.create_person(
                conn, face.collection_id, first_name=first, last_name=last, auto_created=False, by=by
            )
        result = _move_locked(
            db, conn, face_id, cluster_id=None, person_id=person_id, by=by, collection_id=collection_id
        )
        change.what = f"name face {face_id} {name!r}: {'linked to' if linked else 'new'} person {person_id}"
        person = people_db.get_persons(conn, [person_id])[person_id]
        name = display_name(person_id, person.first_name, person.last_name, person.named)
        clusters = person.cluster_count
    return result | {
        "name": name,
        "linked": linked,
        "created": not linked,
        "clusters": clusters,
        "change_id": change.id,
    }


def _move_locked(
    db: Database,
    conn: psycopg.Connection,
    face_id: int,
    *,
    cluster_id: int | None,
    person_id: int | None,
    by: str,
    collection_id: int | None,
) -> dict[str, Any]:
    """move_face inside the caller's transaction."""
    face = _face(conn, face_id, collection_id)
    target = cluster_id
    if cluster_id is not None:
        cluster = _of_face_collection(face, "cluster", cluster_id, people_db.get_clusters(conn, [cluster_id]))
        if cluster.embedding_model != face.embedding_model:
            raise PeopleError(
                f"face {face_id} ({face.embedding_model}) cannot join cluster {cluster_id} "
                f"({cluster.embedding_model}): embeddings of different models are never compared"
            )
    if person_id is not None:
        _of_face_collection(face, "person", person_id, people_db.get_persons(conn, [person_id]))
        target = people_db.nearest_person_cluster(conn, person_id, face_id)
    _lock_face(conn, face)
    if target is not None:
        blocks = people_db.blocking_faces(conn, face_id, target)
        if blocks:
            other, why = blocks[0]
            raise PeopleError(f"face {face_id} cannot join cluster {target}: {why} with its face {other}")
    before = _face_owner(conn, face_id)
    try:
        left = move_locked_face(conn, face_id, target)
    except LookupError as error:
        raise PeopleError(str(error)) from None
    own_person = person_id if target is None else None
    after = own_person if target is None else people_db.get_clusters(conn, [target])[target].person_id
    touched = sorted({p for p in (before, after) if p is not None})
    if own_person is not None and own_person not in people_db.lock_persons(conn, touched):
        raise PeopleError(f"no person {own_person} (deleted just now)")
    people_db.set_face_person(conn, face_id, own_person, by=by)
    refresh_persons(conn, face.collection_id, touched, db.settings)
    return {"face_id": face_id, "from_cluster_id": left, "cluster_id": target, "person_id": person_id}


def reject_face(db: Database, face_id: int, *, by: str, collection_id: int | None = None) -> dict[str, Any]:
    """ "Not this person": the face is cannot-linked with every face of its cluster (and, when that
    cluster is a person's, of all that person's clusters of its model) and re-placed without them.

    A face alone in a person's cluster stays there; the cluster is unlinked from the person and
    remembered as not them (cluster_person_cannot_link), which is the same decision one level up.
    """
    with recorded(db, f"face {face_id} is not its person", by=by) as (conn, change):
        seen = _face(conn, face_id, collection_id)
        if seen.cluster_id is None and seen.person_id is None:
            raise PeopleError(f"face {face_id} is in no cluster and has no person")
        home = people_db.get_clusters(conn, [seen.cluster_id]).get(seen.cluster_id) if seen.cluster_id else None
        rejected_person = home.person_id if home is not None else seen.person_id
        rejected = [home.id] if home is not None else []
        if rejected_person is not None:
            rejected += [
                c.id
                for c in people_db.get_clusters(conn, people_db.person_cluster_ids(conn, [rejected_person])).values()
                if c.embedding_model == seen.embedding_model
            ]
        assert seen.embedding_model is not None
        lock_db.lock_model(conn, seen.collection_id, seen.embedding_model, shared=True)
        # the face and the faces it is about to be cannot-linked with, in one id order, then clusters
        links_db.lock_faces_with_clusters(conn, face_id, rejected)
        face = links_db.get_faces(conn, [face_id])[face_id]
        if face.cluster_id != seen.cluster_id:
            raise PeopleError(f"face {face_id} was moved just now; look again")
        live = lock_db.lock_clusters(conn, rejected)
        rejected = sorted(live)
        if home is not None:  # as it is now that it is locked
            home = people_db.get_clusters(conn, [home.id]).get(home.id)
        if rejected_person is not None:
            lock_person(conn, rejected_person, None)
        bound = links_db.faces_in_clusters(conn, links_db.must_link_set(conn, face_id) - {face_id}, rejected)
        if bound:
            raise PeopleError(f"face {face_id} is must-linked to face {bound[0]} of cluster(s) {rejected}")
        added = links_db.cannot_link_to_clusters(conn, face_id, rejected, by=by)
        result: dict[str, Any] = {
            "face_id": face_id,
            "rejected_cluster_id": face.cluster_id,
            "rejected_person_id": rejected_person,
            "cannot_links_added": added,
        }
        alone = home is not None and home.face_count <= 1 and home.person_id is not None
        if alone:
            assert home is not None and home.person_id is not None
            people_db.unlink_clusters(conn, [home.id], by=by)
            people_db.reject_person(conn, home.id, home.person_id, by=by)
            people_db.set_face_person(conn, face_id, None, by=by)
        else:
            if face.cluster_id is not None:
                manual_db.release_faces(conn, [face_id])
                manual_db.delete_cluster_if_empty(conn, face.cluster_id)
            people_db.set_face_person(conn, face_id, None, by=by)
        change.what = f"face {face_id} is not cluster {face.cluster_id} / person {rejected_person}"
    if alone:
        return result | {"cluster_id": home.id, "outcome": "cluster unlinked from the person", "change_id": change.id}
    # re-placed by the assignment path in a transaction of its own (its locks are taken afresh, in
    # the one order), recorded under the same change
    with transaction(db) as conn:
        if change.id is not None:
            change_db.resume(conn, change.id)
        report = assign_new_faces(db, [face_id], force=True, conn=conn)
        touched = sorted({p for p in (rejected_person, _face_owner(conn, face_id)) if p is not None})
        refresh_persons(conn, face.collection_id, touched, db.settings)  # the person it left and joined
        change_db.pause(conn)
    outcome = next(iter(report.outcomes), "unassigned")
    return result | {"cluster_id": report.cluster_of.get(face_id), "outcome": outcome, "change_id": change.id}


LinkKind = Literal["must", "cannot"]


def link_faces(
    db: Database, kind: LinkKind, first: int, second: int, *, by: str, collection_id: int | None = None
) -> dict[str, Any]:
    """Store a must-link or cannot-link between two faces, refusing one that contradicts the other
    kind anywhere in their must-linked sets (or a must-link between two faces of one photo)."""
    if first == second:
        raise PeopleError(f"a face cannot be {kind}-linked to itself ({first})")
    with recorded(db, f"{kind}-link faces {first} and {second}", by=by) as (conn, change):
        faces = {face_id: _face(conn, face_id, collection_id) for face_id in (first, second)}
        a, b = faces[first], faces[second]
        if a.collection_id != b.collection_id:
            raise PeopleError(f"faces {first} and {second} belong to different collections")
        if a.embedding_model != b.embedding_model:
            raise PeopleError(f"faces {first} and {second} come from different embedding models")
        assert a.embedding_model is not None
        lock_db.lock_model(conn, a.collection_id, a.embedding_model, shared=True)
        locked = links_db.get_faces(conn, [first, second], lock=True)
        if len(locked) < 2:
            raise PeopleError(f"face {first} or {second} was deleted just now")
        a, b = locked[first], locked[second]
        set_a, set_b = links_db.must_link_set(conn, first), links_db.must_link_set(conn, second)
        if kind == "must":
            if a.photo_id == b.photo_id:
                raise PeopleError(f"faces {first} and {second} are in one photo: they are two people")
            against = links_db.cannot_links_between(conn, set_a, set_b)
            if against:
                x, y = against[0]
                raise PeopleError(f"faces {first} and {second} contradict the cannot-link between {x} and {y}")
        elif second in set_a:
            raise PeopleError(f"faces {first} and {second} are must-linked (directly or through other faces)")
        created = links_db.add_link(conn, "must_link" if kind == "must" else "cannot_link", first, second, by=by)
    return {
        "kind": f"{kind}-link",
        "face_ids": sorted((first, second)),
        "created": created,
        "clusters": [a.cluster_id, b.cluster_id],
        "change_id": change.id,
    }
