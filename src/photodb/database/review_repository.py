"""SQL of reviewing face_match_candidate rows (photodb.people.review): a face that incremental
assignment found inside two clusters' reach by nearly the same margin waits ('pending') for a
person to say which one, if any, it belongs to."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True)
class CandidateRow:
    candidate_id: int
    detection_id: int
    photo_id: int
    path: str
    cluster_id: int
    cluster_face_count: int
    person_id: int | None
    person_name: str | None
    similarity: float
    status: str
    reviewed_by: str | None
    reviewed_at: datetime | None
    collection_id: int
    embedding_model: str

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["reviewed_at"] = self.reviewed_at.isoformat() if self.reviewed_at else None
        return row


_CANDIDATES = """
    SELECT m.candidate_id, m.detection_id, d.photo_id,
           CASE WHEN k.root_path IS NULL THEN p.filename ELSE rtrim(k.root_path, '/') || '/' || p.filename END,
           m.cluster_id, c.face_count, c.person_id,
           CASE WHEN s.named THEN nullif(concat_ws(' ', s.first_name, s.last_name), '') END,
           m.similarity, m.status, m.reviewed_by, m.reviewed_at, p.collection_id, c.embedding_model
    FROM face_match_candidate m
    JOIN person_detection d ON d.id = m.detection_id
    JOIN photo p ON p.id = d.photo_id
    JOIN collection k ON k.id = p.collection_id
    JOIN cluster c ON c.id = m.cluster_id
    LEFT JOIN person s ON s.id = c.person_id
"""


def pending(conn: psycopg.Connection, collection_id: int | None = None, limit: int | None = None) -> list[CandidateRow]:
    """Pending candidates, face by face (oldest face first), the closest cluster first; the first
    `limit` of them (None: all)."""
    rows = conn.execute(
        _CANDIDATES
        + """WHERE m.status = 'pending' AND (%s::bigint IS NULL OR p.collection_id = %s)
             ORDER BY m.detection_id, m.similarity DESC, m.candidate_id LIMIT %s""",
        (collection_id, collection_id, limit),
    ).fetchall()
    return [CandidateRow(*r) for r in rows]


def candidate(conn: psycopg.Connection, candidate_id: int) -> CandidateRow | None:
    row = conn.execute(_CANDIDATES + "WHERE m.candidate_id = %s", (candidate_id,)).fetchone()
    return CandidateRow(*row) if row else None


def mark(conn: psycopg.Connection, candidate_ids: list[int], status: str, by: str) -> None:
    conn.execute(
        """UPDATE face_match_candidate SET status = %s, reviewed_by = %s, reviewed_at = now()
           WHERE candidate_id = ANY(%s)""",
        (status, by, candidate_ids),
    )


def reject_other_pending(conn: psycopg.Connection, detection_id: int, accepted_id: int, by: str) -> list[int]:
    """The face's other pending candidates are rejected by the acceptance of one."""
    rows = conn.execute(
        """UPDATE face_match_candidate SET status = 'rejected', reviewed_by = %s, reviewed_at = now()
           WHERE detection_id = %s AND candidate_id <> %s AND status = 'pending' RETURNING candidate_id""",
        (by, detection_id, accepted_id),
    ).fetchall()
    return sorted(r[0] for r in rows)


def cannot_link_to_cluster(conn: psycopg.Connection, detection_id: int, cluster_id: int, by: str) -> int:
    """A cannot-link from the face to every face of the cluster: neither assignment nor a
    re-bootstrap puts it there again (and a detection rerun keeps the face, now curated)."""
    cur = conn.execute(
        """INSERT INTO cannot_link (detection_id_1, detection_id_2, created_by)
           SELECT least(%(face)s::bigint, d.id), greatest(%(face)s::bigint, d.id), %(by)s
           FROM person_detection d WHERE d.cluster_id = %(cluster)s AND d.id <> %(face)s
           ON CONFLICT (detection_id_1, detection_id_2) DO NOTHING""",
        {"face": detection_id, "cluster": cluster_id, "by": by},
    )
    return cur.rowcount


def pending_left(conn: psycopg.Connection, detection_id: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM face_match_candidate WHERE detection_id = %s AND status = 'pending'", (detection_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def release_from_review(conn: psycopg.Connection, detection_id: int) -> bool:
    """A face with no candidate left waits for an assignment again (its row is locked)."""
    cur = conn.execute(
        """UPDATE person_detection SET cluster_status = NULL
           WHERE id = %s AND cluster_id IS NULL AND cluster_status = 'pending'""",
        (detection_id,),
    )
    return cur.rowcount > 0
