"""Incremental assignment: one face into the active run's clusters, in one statement.

A face never joins a cluster that holds a face it has a cannot-link with, nor one that holds
another face of its own photo (two faces in one photo are two people): such clusters are taken
out of the choice, so tier 1's cluster falls through to tier 2 and tier 2 takes the next cluster
whose ball holds the face, or leaves it unassigned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from photodb.clustering.quality import QualityGate
from photodb.database.clustering.faces import FaceRow, array_of

#: Every floor off: the quality gate when the caller gives none.
NO_GATE = QualityGate(0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class NewFace(FaceRow):
    """A face read (without locks) for incremental assignment, with its model's active run."""

    run_id: int | None
    photo_id: int


def faces_to_assign(conn: psycopg.Connection, detection_ids: Sequence[int]) -> dict[int, NewFace]:
    """Every face asked for, with its embedding and active run, in one query (no locks), through
    the database function of the same name (migrations 0006, 0020), whose plan PL/pgSQL keeps.
    Only faces the caller does not already hold need it (FaceToAssign)."""
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT * FROM faces_to_assign(%s::bigint[])", (list(detection_ids),))
        return {r[0]: NewFace(r[0], r[1], r[2], array_of(r[3]).astype(np.float32), r[4], r[5], r[6], r[7]) for r in cur}


@dataclass(frozen=True)
class FaceToAssign:
    """A face its caller holds (the detection stage, which has just stored it): what assignment
    needs of it, so that it is not read back."""

    id: int
    photo_id: int
    collection_id: int
    embedding_model: str
    embedding: np.ndarray  # as stored (float32): tier 1 places it without reading it back


@dataclass(frozen=True)
class Assignment:
    """What assign_new_face did (migration 0020 lists the outcomes)."""

    outcome: str
    cluster_id: int | None  # the cluster joined ('auto'), or the face's own one ('already')
    tier: int | None  # the tier that decided: 1 (the stored run's cluster) or 2 (nearest centroids)

    @property
    def found(self) -> bool:
        """The face was still waiting for a cluster when locked (and something was written)."""
        return self.outcome in ("auto", "pending", "unassigned", "gated")

    @property
    def status(self) -> str | None:
        """The cluster_status written: 'auto', 'pending' or 'unassigned'; None when none was."""
        if not self.found:
            return None
        return "unassigned" if self.outcome == "gated" else self.outcome


def assign_face(
    conn: psycopg.Connection,
    face: FaceToAssign | NewFace,
    *,
    run_id: int,
    cluster_id: int | None,
    confidence: float | None,
    threshold: float,
    margin: float,
    neighbours: int,
    ef_search: int,
    outlier: float | None = None,
    gate: QualityGate = NO_GATE,
) -> Assignment:
    """Assign one face in one statement, so one round trip and one short transaction.

    The database function assign_new_face (migration 0020) does the work: under the model lock it
    checks that `run_id` is still the active run ('stale' if not), locks the face, applies the
    quality gate (the stored measures, the stored outlier score or else `outlier`, tier 1's), and
    with `cluster_id` (tier 1) the face joins that cluster unless it is blocked (cannot-link, same
    photo), hidden or gone; then, as without it, the nearest centroids decide (tier 2). Its
    statements' plans are kept per session by PL/pgSQL, which also works behind PgBouncer (no
    prepared statements on the client). The locks follow database.clustering.locks: model,
    photo, detection, cluster. `conn` must be in autocommit mode: the statement is its own
    transaction.
    """
    row = conn.execute(
        """SELECT outcome, joined, tier
           FROM assign_new_face(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            face.id,
            face.photo_id,
            face.collection_id,
            face.embedding_model,
            run_id,
            cluster_id,
            confidence,
            None if outlier is None or math.isnan(outlier) else outlier,
            float(gate.min_size),
            float(gate.min_sharpness),
            float(gate.min_confidence),
            float(gate.max_outlier),
            threshold,
            margin,
            neighbours,
            ef_search,
        ),
    ).fetchone()
    assert row is not None
    return Assignment(row[0], row[1], row[2])


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
    """Tier 2's candidate search on its own (the function assign_new_face runs): (cluster,
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
