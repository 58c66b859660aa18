"""Reviewing faces that incremental assignment could not place alone (face_match_candidate).

Accept: the face joins that cluster as 'manual' (clustering.manual_moves.move_face_in), and its
other pending candidates are rejected. Reject: a cannot-link from the face to every face of that
cluster, so it is never proposed there again; when no candidate is left the face waits for an
assignment again and is assigned at once (it may land in another cluster, or in review again).
reviewed_by / reviewed_at record who decided. Each decision is one transaction in the lock order
of database.clustering.locks (model lock, the face's row, clusters).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from photodb.clustering.incremental import assign_new_faces
from photodb.clustering.manual_moves import move_face_in
from photodb.database import change_repository as change_db
from photodb.database import people_repository as people_db
from photodb.database import review_repository as review_db
from photodb.database.clustering import locks as lock_db
from photodb.database.clustering import manual as manual_db
from photodb.database.connection import Database
from photodb.database.review_repository import CandidateRow
from photodb.people.age_gender import refresh_persons


class ReviewError(ValueError):
    """Bad input (unknown or already reviewed candidate): nothing was written."""


@dataclass
class ReviewResult:
    candidate_id: int
    detection_id: int
    cluster_id: int
    status: str  # 'accepted' or 'rejected'
    also_rejected: list[int] = field(default_factory=list)
    cannot_links: int = 0
    reassigned: str | None = None  # after the last rejection: what assignment did with the face
    now_in_cluster: int | None = None
    change_id: int | None = None  # the undo log's record of the decision (people.undo)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_pending(db: Database, collection_id: int | None = None, limit: int | None = None) -> list[CandidateRow]:
    with db.connection() as conn:
        return review_db.pending(conn, collection_id, limit)


def _pending(conn: Any, candidate_id: int) -> CandidateRow:
    row = review_db.candidate(conn, candidate_id)
    if row is None:
        raise ReviewError(f"no match candidate {candidate_id}")
    if row.status != "pending":
        raise ReviewError(f"match candidate {candidate_id} was already {row.status} by {row.reviewed_by or 'someone'}")
    return row


def accept(db: Database, candidate_id: int, *, by: str = "user") -> ReviewResult:
    with db.connection() as conn, conn.transaction():
        change_id = change_db.begin(conn, f"accept match candidate {candidate_id}", by)
        row = _pending(conn, candidate_id)
        try:
            move_face_in(
                conn, row.detection_id, row.cluster_id, collection_id=row.collection_id, model=row.embedding_model
            )
        except LookupError as error:
            raise ReviewError(f"match candidate {candidate_id}: {error}") from error
        _pending(conn, candidate_id)  # still pending now that the face is locked
        review_db.mark(conn, [candidate_id], "accepted", by)
        others = review_db.reject_other_pending(conn, row.detection_id, candidate_id, by)
        gained = people_db.face_persons(conn, [row.detection_id]).get(row.detection_id)
        if gained is not None:  # the cluster's person has a face more: its ages and photos' dates
            refresh_persons(conn, row.collection_id, [gained], db.settings)
        change_id = change_db.finish(conn, change_id)
    return ReviewResult(
        candidate_id,
        row.detection_id,
        row.cluster_id,
        "accepted",
        others,
        now_in_cluster=row.cluster_id,
        change_id=change_id,
    )


def reject(db: Database, candidate_id: int, *, by: str = "user") -> ReviewResult:
    with db.connection() as conn, conn.transaction():
        change_id = change_db.begin(conn, f"reject match candidate {candidate_id}", by)
        row = _pending(conn, candidate_id)
        lock_db.lock_model(conn, row.collection_id, row.embedding_model, shared=True)
        if manual_db.lock_face(conn, row.detection_id) is None:
            raise ReviewError(f"no match candidate {candidate_id}")
        row = _pending(conn, candidate_id)
        links = review_db.cannot_link_to_cluster(conn, row.detection_id, row.cluster_id, by)
        review_db.mark(conn, [candidate_id], "rejected", by)
        released = review_db.pending_left(conn, row.detection_id) == 0 and review_db.release_from_review(
            conn, row.detection_id
        )
        change_id = change_db.finish(conn, change_id)
    result = ReviewResult(
        candidate_id, row.detection_id, row.cluster_id, "rejected", cannot_links=links, change_id=change_id
    )
    if released:  # assigned again in a transaction of its own, recorded under the same change
        with db.connection() as conn, conn.transaction():
            if change_id is not None:
                change_db.resume(conn, change_id)
            report = assign_new_faces(db, [row.detection_id], force=True, conn=conn)
            change_db.pause(conn)
        result.reassigned = next(iter(report.outcomes), None)
        result.now_in_cluster = report.cluster_of.get(row.detection_id)
    return result
