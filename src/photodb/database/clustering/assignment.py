"""Incremental assignment: one face into the active run's clusters, in one statement.

A face never joins a cluster that holds a face it has a cannot-link with, nor one that holds
another face of its own photo (two faces in one photo are two people): such clusters are taken
out of the choice, so tier 1's cluster falls through to tier 2 and tier 2 takes the next cluster
whose ball holds the face, or leaves it unassigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from photodb.clustering.quality import QualityGate
from photodb.database.clustering.faces import FaceRow, array_of

#: Every floor off: faces_to_assign's verdicts when the caller gives no gate.
NO_GATE = QualityGate(0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class NewFace(FaceRow):
    """A face read (without locks) for incremental assignment, with its model's active run."""

    run_id: int | None
    photo_id: int
    gate_issue: str | None = None  # the quality gate's verdict on the stored measures (not the outlier score)
    stored_issue: str | None = None  # the verdict stored with the face
    stored_outlier: float | None = None  # the bootstrap's GLOSH score, if a bootstrap saw the face


def faces_to_assign(
    conn: psycopg.Connection, detection_ids: Sequence[int], gate: QualityGate = NO_GATE
) -> dict[int, NewFace]:
    """Every face asked for, with its embedding, active run and the quality gate's verdict, in one
    query (no locks), through the database function of the same name (migrations 0006, 0014),
    whose plan PL/pgSQL keeps."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT * FROM faces_to_assign(%s::bigint[], %s, %s, %s)",
            (list(detection_ids), float(gate.min_size), float(gate.min_sharpness), float(gate.min_confidence)),
        )
        return {
            r[0]: NewFace(
                r[0], r[1], r[2], array_of(r[3]).astype(np.float32), r[4], r[5], r[6], r[7], r[8], r[9], r[10]
            )
            for r in cur
        }


@dataclass(frozen=True)
class Assignment:
    found: bool  # the face was still waiting for a cluster when locked
    status: str | None  # 'auto', 'pending' or 'unassigned'; None when nothing was written
    cluster_id: int | None
    tier: int | None  # the tier that decided: 1 (the stored run's cluster) or 2 (nearest centroids)


def assign_face(
    conn: psycopg.Connection,
    face: NewFace,
    *,
    cluster_id: int | None,
    confidence: float | None,
    threshold: float,
    margin: float,
    neighbours: int,
    ef_search: int,
) -> Assignment:
    """Assign one face in one statement, so one round trip and one short transaction.

    The database function assign_face_to_cluster (migration 0006) does the work: with `cluster_id`
    (tier 1) the face joins that cluster unless it is blocked (cannot-link, same photo), hidden or
    gone, and then, as without it, the nearest centroids decide (tier 2). Its statements' plans
    are kept per session by PL/pgSQL, which also works behind PgBouncer (no prepared statements
    on the client). The locks follow database.clustering.locks: model, photo, detection, cluster.
    `conn` must be in autocommit mode: the statement is its own transaction.
    """
    row = conn.execute(
        """SELECT waiting, outcome, joined, tier
           FROM assign_face_to_cluster(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            face.id,
            face.photo_id,
            face.collection_id,
            face.embedding_model,
            cluster_id,
            confidence,
            threshold,
            margin,
            neighbours,
            ef_search,
        ),
    ).fetchone()
    assert row is not None
    return Assignment(bool(row[0]), row[1], row[2], row[3])


def nearest_clusters(
    conn: psycopg.Connection,
    collection_id: int,
    model: str,
    embedding: np.ndarray,
    *,
    threshold: float,
    neighbours: int,
    ef_search: int,
    explain: bool = False,
) -> list[tuple[Any, ...]]:
    """Tier 2's candidate search on its own (the function assign_face_to_cluster runs): (cluster,
    distance to the exact sum, epsilon) rows, nearest indexed centroid first, in one pipelined
    transaction (`conn` in autocommit mode). With `explain`, the plan's lines instead: the
    benchmark checks that it scans the HNSW index."""
    with conn.pipeline(), conn.transaction():
        conn.execute("SELECT cluster_search_settings(%s)", (ef_search,))
        cur = conn.execute(
            _EXPLAIN_CANDIDATES if explain else _CANDIDATES, (embedding, collection_id, model, threshold, neighbours)
        )
    return cur.fetchall()


_CANDIDATES = "SELECT * FROM cluster_candidates(%b, %s, %s, %s, %s)"
_EXPLAIN_CANDIDATES = "EXPLAIN " + _CANDIDATES


def unclustered_detection_ids(conn: psycopg.Connection, collection_id: int | None = None) -> list[int]:
    """Faces with an embedding that no run or assignment has looked at yet (or whose cluster is gone).

    Faces in the unassigned pool are left out: a bootstrap called them noise (or an assignment
    found no cluster) with everything known then; a re-bootstrap, not a looser second look by
    centroid distance, is what revisits them.
    """
    rows = conn.execute(
        """SELECT pd.id FROM person_detection pd
           JOIN face_embedding fe ON fe.person_detection_id = pd.id
           JOIN photo p ON p.id = pd.photo_id
           WHERE pd.cluster_id IS NULL
             AND (pd.cluster_status IS NULL OR pd.cluster_status = 'auto')
             AND (%s::bigint IS NULL OR p.collection_id = %s)
           ORDER BY pd.id""",
        (collection_id, collection_id),
    ).fetchall()
    return [r[0] for r in rows]
