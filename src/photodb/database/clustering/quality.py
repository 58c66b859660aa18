"""SQL of the quality gate (photodb.clustering.quality): the database function face_quality_issue
(migration 0014) applied to detections, and the unassigned pool's reasons.

Other tasks that put unassigned faces into clusters use `passes_quality_gate` in their WHERE
clause, so a face the gate keeps out stays out whoever looks at it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from photodb.clustering.quality import QualityGate


def quality_issue_sql(
    gate: QualityGate, *, detection: str = "pd", photo: str = "p", outlier: bool = True
) -> sql.Composed:
    """face_quality_issue(...) for the detection row aliased `detection` joined to its photo
    aliased `photo`: the reason as SQL text, NULL when the face passes. The floors are inlined as
    literals, so the fragment composes into a query with either placeholder style. Without
    `outlier` the stored GLOSH score is not consulted."""
    d, p = sql.Identifier(detection), sql.Identifier(photo)
    return sql.SQL(
        "face_quality_issue({d}.face_bbox_width, {d}.face_bbox_height, {p}.normalized_scale, {d}.face_sharpness,"
        " {d}.face_confidence, {outlier}, {size}, {sharpness}, {confidence}, {ceiling})"
    ).format(
        d=d,
        p=p,
        outlier=sql.SQL("{}.outlier_score").format(d) if outlier else sql.SQL("NULL"),
        size=sql.Literal(float(gate.min_size)),
        sharpness=sql.Literal(float(gate.min_sharpness)),
        confidence=sql.Literal(float(gate.min_confidence)),
        ceiling=sql.Literal(float(gate.max_outlier)),
    )


def passes_quality_gate(gate: QualityGate, *, detection: str = "pd", photo: str = "p") -> sql.Composed:
    """A WHERE condition: the face (alias `detection`, its photo `photo`) passes every floor now.

    Example: sql.SQL("SELECT pd.id FROM person_detection pd JOIN photo p ON p.id = pd.photo_id
    WHERE pd.cluster_status = 'unassigned' AND {}").format(passes_quality_gate(gate))."""
    return sql.SQL("{} IS NULL").format(quality_issue_sql(gate, detection=detection, photo=photo))


def unassigned_by_reason(conn: psycopg.Connection, collection_id: int | None = None) -> dict[str, int]:
    """How many faces of the unassigned pool each reason holds there."""
    rows = conn.execute(
        """SELECT d.quality_issue, count(*) FROM person_detection d JOIN photo p ON p.id = d.photo_id
           WHERE d.quality_issue IS NOT NULL AND d.cluster_id IS NULL
             AND (%s::bigint IS NULL OR p.collection_id = %s) GROUP BY 1 ORDER BY 1""",
        (collection_id, collection_id),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def model_issues(conn: psycopg.Connection, collection_id: int, model: str, gate: QualityGate) -> dict[int, str]:
    """Detection id -> reason for the faces of one collection and embedding model that the stored
    measures keep out (the outlier score is left to the caller's new run)."""
    query = sql.SQL(
        """SELECT pd.id, {issue} FROM face_embedding fe
           JOIN person_detection pd ON pd.id = fe.person_detection_id
           JOIN photo p ON p.id = pd.photo_id
           WHERE p.collection_id = %s AND fe.embedding_model = %s AND {issue} IS NOT NULL"""
    ).format(issue=quality_issue_sql(gate, outlier=False))
    return {r[0]: r[1] for r in conn.execute(query, (collection_id, model)).fetchall()}
