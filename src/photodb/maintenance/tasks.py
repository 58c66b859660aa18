"""What every maintenance task shares: its options, its outcome, and how one is run.

Each task runs once per collection, each time in its own transaction (a failed task rolls back
alone and the next one still runs), retried on a transient database error (a deadlock, a lost
connection: the transaction is redone from the start, which is safe because every task is
idempotent). Inside, tasks take locks in the one order of database.clustering.locks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from photodb.config import Settings
from photodb.database import maintenance_repository as repo
from photodb.database.clustering import faces as face_db
from photodb.database.clustering import locks
from photodb.database.connection import Database
from photodb.database.faults import describe_error

#: A medoid is recomputed once face_count has moved this share of the count it was found at.
MEDOID_CHANGE_SHARE = 0.2


@dataclass(frozen=True)
class Options:
    """similarity_threshold: merge-similar's largest cosine distance between two centroids and
    between the face pairs across them (None: each model's `merge` distance, clustering.distances).
    unassigned_older_than:
    how long a face waits in the unassigned pool before it becomes a singleton cluster (zero: all)."""

    similarity_threshold: float | None = None
    unassigned_older_than: timedelta = timedelta(days=30)
    medoid_change_share: float = MEDOID_CHANGE_SHARE

    @classmethod
    def from_settings(cls, settings: Settings, similarity_threshold: float | None = None) -> Options:
        return cls(similarity_threshold, timedelta(days=settings.unassigned_singleton_days))


@dataclass
class Outcome:
    """What one task did: counts by name, problems (lines a person should act on: the task is not
    ok) and notes (what it chose not to do and why; the task stays ok)."""

    changes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, other: Outcome) -> None:
        for key, value in other.changes.items():
            self.changes[key] = self.changes.get(key, 0) + value
        self.problems.extend(other.problems)
        self.notes.extend(other.notes)


TaskFunction = Callable[[psycopg.Connection, Settings, int, Options], Outcome]


@dataclass(frozen=True)
class Task:
    name: str
    run: TaskFunction
    summary: str


@dataclass
class TaskResult:
    task: str
    changes: dict[str, int]
    problems: list[str]
    seconds: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "ok": self.ok,
            "changes": self.changes,
            "problems": self.problems,
            "notes": self.notes,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def lock_collection_models(conn: psycopg.Connection, collection_id: int) -> list[str]:
    """Lock order step 1: every model of the collection, shared (assignments and manual moves go
    on; a bootstrap, which takes it exclusively, waits for the task and the task for it)."""
    models = repo.cluster_models(conn, collection_id)
    locks.lock_models(conn, collection_id, models)
    return models


def collections_in_scope(db: Database, collection_id: int | None) -> list[int]:
    if collection_id is not None:
        return [collection_id]
    with db.connection() as conn:
        return face_db.collection_ids(conn)


def run_task(db: Database, task: Task, collection_ids: Iterable[int], options: Options) -> TaskResult:
    """One task over the collections, one transaction each; an error ends this task only."""
    started = time.perf_counter()
    outcome = Outcome()
    error: str | None = None

    def once(collection_id: int) -> Outcome:
        with db.connection() as conn, conn.transaction():
            return task.run(conn, db.settings, collection_id, options)

    try:
        for collection_id in collection_ids:
            outcome.add(db.retrying(lambda c=collection_id: once(c), f"maintenance {task.name}"))
    except Exception as failure:  # reported as this task's failure; the next task still runs
        error = describe_error(failure)
    seconds = time.perf_counter() - started
    return TaskResult(task.name, outcome.changes, outcome.problems, seconds, error, outcome.notes)


def run_tasks(
    db: Database,
    tasks: Iterable[Task],
    collection_id: int | None,
    options: Options,
    on_result: Callable[[TaskResult], None] | None = None,
) -> list[TaskResult]:
    collection_ids = collections_in_scope(db, collection_id)
    results = []
    for task in tasks:
        result = run_task(db, task, collection_ids, options)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
