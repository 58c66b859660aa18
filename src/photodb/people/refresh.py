"""People ready when indexing ends: bring a collection's clusters and persons up to date.

After a run that added faces, `refresh_people` does what a user would otherwise run by hand: a
bootstrap for every embedding model whose active run the staleness rule (clustering.staleness)
calls stale or that has none, then auto-association (groups of clusters and lone clusters become
persons) — over the whole collection after a bootstrap, else only for the clusters that gained
faces since the last refresh — and the age/gender of the persons it touched.

Many processes on one library: each one asks (`people_refresh.requested`), then tries the refresh
lock without waiting. The one that gets it works until the record says nothing was asked since it
last looked, and reads that under the record's row lock, which it holds until the lock itself goes:
a process asking meanwhile either is seen or finds the lock free. The others finish at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from photodb.clustering.staleness import check_staleness
from photodb.database import people_refresh as refresh_db
from photodb.database.connection import Database
from photodb.people.age_gender import aggregate_people
from photodb.people.association import auto_associate

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: Rounds of work one holder does for requests that arrive while it works, before it leaves the
#: rest to the next run (a library that never stops growing must not keep one process forever).
MAX_ROUNDS = 3


@dataclass
class PeopleReport:
    """What the people step did, and where the collection's people stand afterwards."""

    collection_id: int
    ran: bool = False  # False: another process holds the refresh (it does this run's faces too)
    bootstrapped: list[str] = field(default_factory=list)  # embedding models clustered anew
    stale_reasons: list[str] = field(default_factory=list)
    clusters_considered: int = 0  # changed clusters a scoped association looked at (0 after a bootstrap: all)
    persons_created: int = 0
    clusters_linked: int = 0
    persons_merged: int = 0
    persons: int = 0
    named: int = 0
    unsorted_faces: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def needs_refresh(db: Database, collection_id: int) -> bool:
    """Whether faces arrived since the last refresh, or one was asked for and not done."""
    with db.connection() as conn:
        state = refresh_db.state(conn, collection_id)
        return (
            state.requested > state.refreshed or refresh_db.latest_face(conn, collection_id) > state.detection_watermark
        )


def refresh_people(db: Database, collection_id: int, *, by: str, progress: Progress | None = None) -> PeopleReport:
    """Clusters and persons of one collection brought up to date (or left to the process doing it)."""
    say = progress or (lambda _message: None)
    started = time.monotonic()
    report = PeopleReport(collection_id)
    db.call("asking for a people refresh", _request, db, collection_id)
    with db.connection() as lock_conn, lock_conn.transaction():
        if refresh_db.try_lock(lock_conn, collection_id):
            report.ran = True
            _work(db, lock_conn, collection_id, report, by, say)
    _count(db, report)
    report.seconds = time.monotonic() - started
    return report


def _request(db: Database, collection_id: int) -> int:
    with db.autocommit() as conn:
        return refresh_db.request(conn, collection_id)


def _work(
    db: Database, lock_conn: psycopg.Connection, collection_id: int, report: PeopleReport, by: str, say: Progress
) -> None:
    """Rounds of refresh under the lock. Each round ends by reading the record under its row lock in
    a savepoint: another round rolls the savepoint back (so nobody asking waits for that round);
    the last one keeps it, and the row lock lasts until the commit that frees the refresh lock."""
    seen = refresh_db.state(lock_conn, collection_id)
    for _ in range(MAX_ROUNDS):
        with db.connection() as conn:
            watermark = refresh_db.latest_face(conn, collection_id)
        _refresh_once(db, collection_id, seen.detection_watermark, report, say)
        with lock_conn.transaction() as savepoint:
            now = refresh_db.state(lock_conn, collection_id, for_update=True)
            if now.requested > seen.requested:
                seen = refresh_db.RefreshState(now.requested, seen.requested, watermark)
                raise psycopg.Rollback(savepoint)
            refresh_db.mark_refreshed(lock_conn, collection_id, requested=seen.requested, watermark=watermark, by=by)
            return
    with lock_conn.transaction():
        refresh_db.mark_refreshed(
            lock_conn, collection_id, requested=seen.refreshed, watermark=seen.detection_watermark, by=by
        )
    logger.info("people: more faces keep arriving; the next run goes on")


def _refresh_once(db: Database, collection_id: int, watermark: int, report: PeopleReport, say: Progress) -> None:
    stale = [r for r in check_staleness(db, collection_id) if r.rebootstrap and r.faces > 0]
    if stale:
        from photodb.clustering.bootstrap import bootstrap_model  # scipy and scikit-learn: only when needed

        for staleness in stale:
            report.stale_reasons.extend(staleness.reasons)
            result = bootstrap_model(db, collection_id, staleness.embedding_model, progress=say)
            if result.run_id is not None:
                report.bootstrapped.append(staleness.embedding_model)
    focus: list[int] | None = None
    if not report.bootstrapped:
        with db.connection() as conn:
            focus = refresh_db.clusters_of_faces_after(conn, collection_id, watermark)
        if not focus:
            return
        report.clusters_considered += len(focus)
    say("people: grouping clusters into persons")
    association = auto_associate(db, collection_id, clusters=focus)
    report.persons_created += association.persons_created + association.lone_persons_created
    report.clusters_linked += association.clusters_linked
    report.persons_merged += association.persons_merged
    if report.bootstrapped:  # faces moved between clusters: every person's age and gender may follow
        say("people: age and gender")
        aggregate_people(db, collection_id, min_confidence=db.settings.age_gender_gender_min_confidence)


def _count(db: Database, report: PeopleReport) -> None:
    with db.connection() as conn:
        counts = refresh_db.people_counts(conn, report.collection_id)
    report.persons, report.named, report.unsorted_faces = counts.persons, counts.named, counts.unsorted_faces
