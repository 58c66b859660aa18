"""What each page shows, read through the same views as `photodb people list` and `review`."""

from __future__ import annotations

from typing import Any

from photodb.database import web_queries
from photodb.database.connection import Database
from photodb.people import review, views

#: Faces shown per cluster card (the medoid first).
FACES_PER_CLUSTER = 8


def people(db: Database, collection_id: int | None) -> dict[str, Any]:
    """Persons and clusters, most faces first, each cluster with a few of its faces."""
    listing = views.list_people(db, collection_id, with_clusters=True, limit=None)
    clusters = listing["clusters"]
    with db.connection() as conn:
        faces = web_queries.cluster_faces(conn, [c["id"] for c in clusters], FACES_PER_CLUSTER)
    for cluster in clusters:
        cluster["face_ids"] = faces.get(cluster["id"], [])
    by_person: dict[int, list[dict[str, Any]]] = {}
    for cluster in clusters:
        if cluster["person_id"] is not None:
            by_person.setdefault(cluster["person_id"], []).append(cluster)
    for person in listing["persons"]:
        person["cluster_list"] = by_person.get(person["id"], [])
        person["sample_face"] = next((c["face_ids"][0] for c in person["cluster_list"] if c["face_ids"]), None)
    return {
        "persons": listing["persons"],
        "unnamed_clusters": [c for c in clusters if c["person_id"] is None],
        "clusters": clusters,
    }


def review_page(db: Database, collection_id: int | None) -> dict[str, Any]:
    """Pending match candidates, each with a few faces of the cluster it might join."""
    rows = review.list_pending(db, collection_id)
    with db.connection() as conn:
        faces = web_queries.cluster_faces(conn, sorted({r.cluster_id for r in rows}), 4)
    return {"candidates": [r.as_dict() | {"cluster_faces": faces.get(r.cluster_id, [])} for r in rows]}
