"""What `photodb people list` and `show` print: read-only views (database.people_queries) with the
same one-line errors as the commands that change things."""

from __future__ import annotations

from typing import Any

from photodb.clustering.distances import face_distance
from photodb.database import people_queries as queries
from photodb.database import unsorted_faces as unsorted
from photodb.database.connection import Database
from photodb.database.face_constraints import face_links
from photodb.people.identity import PeopleError, check_collection


def list_people(
    db: Database,
    collection_id: int | None,
    *,
    include_hidden: bool = False,
    with_clusters: bool = False,
    limit: int | None = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """The persons with most faces (unnamed ones as 'Unknown #id'), and with `with_clusters` the
    clusters with most faces, each up to `limit` (None: all; persons from `offset` on), with the totals."""
    with db.connection() as conn:
        persons, total = queries.list_persons(
            conn, collection_id, include_hidden=include_hidden, limit=limit, offset=offset
        )
        out: dict[str, Any] = {"persons": persons, "persons_total": total}
        if with_clusters:
            clusters, total = queries.list_clusters(conn, collection_id, include_hidden=include_hidden, limit=limit)
            out |= {"clusters": clusters, "clusters_total": total}
    return out


#: A person is suggested for an unsorted face up to this multiple of the model's assignment
#: threshold: farther than the automatic rule goes, close enough for a person to judge.
SUGGEST_WITHIN_THRESHOLDS = 1.5


def list_unsorted(db: Database, collection_id: int | None, *, limit: int | None = 50) -> dict[str, Any]:
    """Faces in no cluster and on no person, largest first, each with the nearest person when one
    is near enough to suggest."""
    with db.connection() as conn:
        faces = unsorted.unsorted_faces(conn, collection_id, limit)
        total = unsorted.unsorted_count(conn, collection_id)
    for face in faces:
        near = face["nearest_person"]
        reach = SUGGEST_WITHIN_THRESHOLDS * face_distance(db.settings, face["embedding_model"], "assign")
        if near is not None and near["distance"] > reach:
            face["nearest_person"] = None
    return {"faces": faces, "faces_total": total}


def show_person(db: Database, person_id: int, *, photos: int = 20, collection_id: int | None = None) -> dict[str, Any]:
    with db.connection() as conn:
        person = queries.person_detail(conn, person_id, photo_limit=photos)
    if person is None:
        raise PeopleError(f"no person {person_id}")
    check_collection("person", person_id, person["collection_id"], collection_id)
    return person


def show_cluster(db: Database, cluster_id: int, *, faces: int = 50, collection_id: int | None = None) -> dict[str, Any]:
    with db.connection() as conn:
        cluster = queries.cluster_detail(conn, cluster_id, face_limit=faces)
    if cluster is None:
        raise PeopleError(f"no cluster {cluster_id}")
    check_collection("cluster", cluster_id, cluster["collection_id"], collection_id)
    return cluster


def show_face(db: Database, face_id: int, *, collection_id: int | None = None) -> dict[str, Any]:
    with db.connection() as conn:
        face = queries.face_detail(conn, face_id)
        if face is None:
            raise PeopleError(f"no face {face_id}")
        if not face.pop("is_face"):
            raise PeopleError(f"detection {face_id} is a body without a face, not a face")
        links = face_links(conn, face_id)
    check_collection("face", face_id, face["collection_id"], collection_id)
    return face | {"must_link": links["must_link"], "cannot_link": links["cannot_link"]}
