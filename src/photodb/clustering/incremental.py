"""Incremental assignment of new faces to the active run's clusters, in two tiers.

Tier 1 places the face in the stored condensed tree (hdbscan's `approximate_predict` step, after
the run's PCA, rebuilt from the run's plain arrays: photodb.clustering.run_state). A run whose
stored state cannot be used (an older photodb's pickle, a damaged blob, another model or shape, an
unsupported hdbscan) has tier 1 off, with one warning per process; its faces go to tier 2.
When tier 1 says noise, tier 2 looks up the nearest centroids through pgvector's HNSW index and
accepts a cluster whose epsilon ball holds the face: epsilon = 1 / lambda_birth is a Euclidean
distance between unit vectors, i.e. a cosine distance of epsilon^2 / 2, capped by the model's
threshold (`assign` of clustering.distances), which also serves clusters without a lambda. The
cap matters in small libraries: there a cluster is born at the distance of the nearest other
person, so its uncapped ball reaches exactly to them. A face
inside two balls by nearly the same margin goes to review as face_match_candidate rows.

Faces the quality gate keeps out (clustering.quality: too small, blurred, doubtful to the detector,
or an outlier by the stored GLOSH score, else tier 1's approximation) are not placed: they go
to the unassigned pool with the reason (the assignment function decides, on the locked row).

Tier 1's cluster and tier 2's candidates exclude every cluster that holds a face of the same
photo or a face the new one has a cannot-link with: a blocked tier-1 choice falls through to tier 2.

Each face is one statement, so one short transaction and one network round trip: the database
function assign_new_face (migration 0020) takes the model and photo locks, checks that the run tier 1
used is still the active one, locks the detection row and applies the quality gate, then locks the
cluster row by its update, adds the face to the cluster's sum and count, and records the outcome,
so concurrent workers never lose an update (database.clustering.assignment.assign_face; lock order
in database.clustering.locks). PL/pgSQL keeps the plans of its statements for the session. Faces
the caller holds (the detection stage: assign_held_faces) are not read back first; faces given by
id (assign_new_faces) are, one query per batch.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from photodb.clustering.blas import single_threaded_blas
from photodb.clustering.distances import face_distance
from photodb.clustering.hdbscan_compat import UnsupportedHdbscan
from photodb.clustering.predictor import Predictor
from photodb.clustering.quality import QualityGate
from photodb.clustering.run_state import Reducer, RunState, RunStateError
from photodb.database.clustering import assignment as assign_db
from photodb.database.clustering import runs as run_db
from photodb.database.clustering import server as server_db
from photodb.database.connection import Database

log = logging.getLogger(__name__)

NEIGHBOURS = 5
#: HNSW candidate list for the centroid lookup: exact enough for 5 neighbours among thousands.
EF_SEARCH = 40
#: Attempts per face when a concurrent change makes its statement fail.
RETRIES = 3


@dataclass(frozen=True)
class RunModel:
    run_id: int
    predictor: Predictor
    label_to_cluster: dict[int, int]


@dataclass
class AssignmentReport:
    outcomes: Counter[str] = field(default_factory=Counter)
    cluster_of: dict[int, int | None] = field(default_factory=dict)

    def merge(self, other: AssignmentReport) -> None:
        self.outcomes.update(other.outcomes)
        self.cluster_of.update(other.cluster_of)

    def as_dict(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "faces": len(self.cluster_of)} | {
            "assigned": sum(v is not None for v in self.cluster_of.values())
        }


#: Loaded runs, by (database URL, run id): run ids are only unique within one database. None
#: marks a run whose tier 1 is off (its stored state could not be used; warned once).
_models: dict[tuple[str, int], RunModel | None] = {}
_models_lock = threading.Lock()


#: Databases whose pgvector has been found new enough, by URL.
_checked_servers: set[str] = set()


def check_server(db: Database, conn: psycopg.Connection) -> None:
    """Once per database and process: is its pgvector new enough for clustering's SQL?"""
    if db.url not in _checked_servers:
        server_db.check_pgvector(conn)
        _checked_servers.add(db.url)


def load_run_model(
    db: Database, run_id: int, embedding_model: str | None = None, conn: psycopg.Connection | None = None
) -> RunModel | None:
    """The run's tier-1 predictor, rebuilt once per process from its stored arrays (runs never
    change once written); None when the run has no usable state (tier 1 off for it). A caller that
    holds a pooled connection passes it (`conn`), so that a pool of one does not wait on itself."""
    key = (db.url, run_id)
    with _models_lock:
        if key in _models:
            return _models[key]
        if conn is None:
            with db.connection() as own:
                stored = run_db.run_state(own, run_id)
        else:
            stored = run_db.run_state(conn, run_id)
        if stored is None:
            return None
        clusterer_state, reducer_state, label_map = stored
        model: RunModel | None
        try:
            state = RunState.from_bytes(clusterer_state)
            if embedding_model is not None and state.embedding_model != embedding_model:
                raise RunStateError(f"stored run is for model {state.embedding_model!r}, not {embedding_model!r}")
            predictor = Predictor(state, Reducer.from_bytes(reducer_state))
            model = RunModel(run_id, predictor, _label_map(label_map))
        except (RunStateError, UnsupportedHdbscan) as error:
            _tier1_off(run_id, error)
            model = None
        _models.clear()  # one collection's active run at a time is the common case
        _models[key] = model
        return model


def _label_map(stored: Any) -> dict[int, int]:
    """The run's label -> cluster id map, as stored in JSON: {"0": 17, ...}."""
    try:
        return {int(k): int(v) for k, v in stored.items()}
    except (AttributeError, TypeError, ValueError) as error:
        raise RunStateError(f"stored label map is damaged: {error}") from error


def _tier1_off(run_id: int, error: Exception) -> None:
    log.warning(
        "clustering run %s: tier 1 is off for this run (%s); new faces are matched to cluster centroids "
        "until bootstrap_clusters.py writes a new run",
        run_id,
        str(error).splitlines()[0] if str(error) else type(error).__name__,
    )
    log.debug("tier 1 turned off by", exc_info=error)


def _predict_tier1(
    db: Database, model: RunModel, embeddings: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Tier 1's labels, strengths and outlier scores; None (and tier 1 off for the run) if
    prediction fails.

    Tier 1 only saves work that tier 2 also does, so any failure inside it turns it off rather
    than failing a photo.
    """
    try:
        return model.predictor.predict_scored(embeddings)
    except Exception as error:  # tier 1 is an optimisation: see the docstring
        with _models_lock:
            if _models.get((db.url, model.run_id), model) is not None:  # warn once per run
                _models[(db.url, model.run_id)] = None
                _tier1_off(model.run_id, error)
        return None


def assign_new_faces(
    db: Database, detection_ids: list[int], *, force: bool = False, conn: psycopg.Connection | None = None
) -> AssignmentReport:
    """Assign faces that have no cluster yet, by id (a backlog, a face released by a decision).

    Without `force` it does nothing when CLUSTERING_ASSIGN_ON_DETECTION is off. Faces of a
    collection and model with no active run are left alone (the next bootstrap takes them).
    One pooled connection serves the whole batch: one query reads every face with its active
    run, tier 1 runs in memory for all of them, then each face is one statement (see _place).
    With `conn` the statements run there instead (a decision re-placing a face in its own
    transaction, so the undo log records the placement with the decision).
    """
    report = AssignmentReport()
    if not detection_ids or not (force or db.settings.clustering_assign_on_detection):
        return report
    given = conn
    with nullcontext(given) if given is not None else db.autocommit() as conn:
        check_server(db, conn)
        faces = assign_db.faces_to_assign(conn, detection_ids)
        waiting: list[tuple[assign_db.FaceToAssign | assign_db.NewFace, int]] = []
        for detection_id in detection_ids:
            face = faces.get(detection_id)
            if face is None or face.run_id is None:
                if face is not None:
                    _remember_run(db, face, None)
                report.outcomes["skipped"] += 1
            elif not _waiting(face):
                report.outcomes["already"] += 1
                report.cluster_of[detection_id] = face.cluster_id
            else:
                _remember_run(db, face, face.run_id)
                waiting.append((face, face.run_id))
        tier1 = _tier1(db, waiting, conn)
        stale = _place(db, conn, waiting, tier1, report)
    if stale:  # a bootstrap replaced the run between the read and the assignment: read again
        report.merge(assign_new_faces(db, stale, force=True, conn=given))
    return report


def assign_held_faces(
    db: Database, faces: Sequence[assign_db.FaceToAssign], *, force: bool = False
) -> AssignmentReport:
    """Assign faces the caller has just stored and still holds (the detection stage): each is one
    statement, one round trip, as they are not read back. The active run of their collection and
    model is the one this process last saw, which the assignment function checks under the model
    lock; faces whose run is not known yet or was replaced since go through assign_new_faces."""
    report = AssignmentReport()
    if not faces or not (force or db.settings.clustering_assign_on_detection):
        return report
    known: list[tuple[assign_db.FaceToAssign | assign_db.NewFace, int]] = []
    stale: list[int] = []
    for face in faces:
        run_id = _active_runs.get((db.url, face.collection_id, face.embedding_model))
        if run_id is None:
            stale.append(face.id)
        else:
            known.append((face, run_id))
    if known:
        # tier 1 first: the pool's check on checkout leaves the server process awake for the
        # statement that follows at once (on a busy machine, waking it again costs as much)
        tier1 = _tier1(db, known)
        with db.autocommit() as conn:
            check_server(db, conn)
            stale += _place(db, conn, known, tier1, report)
    if stale:
        report.merge(assign_new_faces(db, stale, force=True))
    return report


#: The active run of each (database URL, collection, model) as this process last saw it.
_active_runs: dict[tuple[str, int, str], int] = {}


def _remember_run(db: Database, face: assign_db.FaceToAssign | assign_db.NewFace, run_id: int | None) -> None:
    key = (db.url, face.collection_id, face.embedding_model)
    if run_id is None:
        _active_runs.pop(key, None)
    else:
        _active_runs[key] = run_id


#: Tier 1's verdicts: cluster and strength of each face it places, outlier score of each it scored.
Tier1 = tuple[dict[int, tuple[int, float]], dict[int, float]]


def _tier1(
    db: Database,
    faces: list[tuple[assign_db.FaceToAssign | assign_db.NewFace, int]],
    conn: psycopg.Connection | None = None,
) -> Tier1:
    """Tier 1 in memory for every face, grouped by run; a run not loaded yet is read through
    `conn` (when the caller holds one) or a connection of its own."""
    tier1: dict[int, tuple[int, float]] = {}
    scores: dict[int, float] = {}
    for run_id in {run for _face, run in faces}:
        ids = [face.id for face, run in faces if run == run_id]
        embeddings = [face.embedding for face, run in faces if run == run_id]
        model = load_run_model(db, run_id, next(face.embedding_model for face, run in faces if run == run_id), conn)
        if model is None:
            continue
        with single_threaded_blas(len(ids)):
            predicted = _predict_tier1(db, model, np.vstack(embeddings))
        if predicted is None:
            continue
        labels, strengths, outlier_scores = predicted
        scores.update(zip(ids, outlier_scores.tolist(), strict=True))
        for d, label, strength in zip(ids, labels, strengths, strict=True):
            if label >= 0 and int(label) in model.label_to_cluster:
                tier1[d] = (model.label_to_cluster[int(label)], float(strength))
    return tier1, scores


def _place(
    db: Database,
    conn: psycopg.Connection,
    faces: list[tuple[assign_db.FaceToAssign | assign_db.NewFace, int]],
    verdicts: Tier1,
    report: AssignmentReport,
) -> list[int]:
    """One assign_new_face statement per face with tier 1's verdicts (its outlier score gates a face
    no bootstrap scored). Returns the faces not placed because their run is no longer active."""
    tier1, scores = verdicts
    gate = QualityGate.from_settings(db.settings)
    stale: list[int] = []
    for face, run_id in faces:
        done = _assign_one(db, conn, face, run_id, tier1.get(face.id), scores.get(face.id), gate)
        if done.outcome == "stale":
            _remember_run(db, face, None)
            stale.append(face.id)
        elif done.outcome == "skipped":  # deleted meanwhile (a detection rerun)
            report.outcomes["skipped"] += 1
        else:
            outcome = f"tier{done.tier}" if done.outcome == "auto" else done.outcome
            report.outcomes[outcome] += 1
            report.cluster_of[face.id] = done.cluster_id if done.outcome in ("auto", "already") else None
    return stale


def _waiting(face: assign_db.NewFace) -> bool:
    return face.cluster_id is None and face.status not in ("manual", "pending")


def _assign_one(
    db: Database,
    conn: psycopg.Connection,
    face: assign_db.FaceToAssign | assign_db.NewFace,
    run_id: int,
    tier1: tuple[int, float] | None,
    outlier: float | None,
    gate: QualityGate,
) -> assign_db.Assignment:
    settings = db.settings
    for attempt in range(RETRIES):
        try:
            return assign_db.assign_face(
                conn,
                face,
                run_id=run_id,
                cluster_id=tier1[0] if tier1 else None,
                confidence=tier1[1] if tier1 else None,
                outlier=outlier,
                gate=gate,
                threshold=face_distance(settings, face.embedding_model, "assign"),
                margin=settings.clustering_ambiguity_margin,
                neighbours=NEIGHBOURS,
                ef_search=EF_SEARCH,
            )
        except (psycopg.errors.ForeignKeyViolation, psycopg.errors.DeadlockDetected):
            # a candidate cluster deleted by a concurrent manual move: look again
            if attempt == RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def assign_unclustered(
    db: Database,
    collection_id: int | None = None,
    *,
    chunk: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> AssignmentReport:
    """Assign every face that has an embedding but no cluster (after an import with assignment off).

    Works in chunks so that a large backlog shows progress and each chunk's faces are read at once;
    `progress(done, total)` is called after each chunk.
    """
    with db.connection() as conn:
        ids = assign_db.unclustered_detection_ids(conn, collection_id)
    report = AssignmentReport()
    for start in range(0, len(ids), chunk):
        report.merge(assign_new_faces(db, ids[start : start + chunk], force=True))
        if progress is not None:
            progress(min(start + chunk, len(ids)), len(ids))
    return report
