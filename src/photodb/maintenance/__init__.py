"""Cluster maintenance: the spec's daily and weekly task lists, each task idempotent and in its
own transaction (tasks.run_task), and the health report.

DAILY and WEEKLY are plain ordered lists of Task: a new task is appended where it belongs.
"""

from __future__ import annotations

from photodb.maintenance import association, links, similar, upkeep
from photodb.maintenance.health import Health, health
from photodb.maintenance.tasks import Options, Outcome, Task, TaskResult, run_task, run_tasks

RECOMPUTE_CENTROIDS = Task("recompute-centroids", upkeep.recompute_centroids, "cluster sums and counts from members")
CLEANUP_EMPTY = Task("cleanup-empty", upkeep.cleanup_empty, "delete clusters without faces (not verified or named)")
UPDATE_STATS = Task("update-stats", upkeep.update_stats, "face counts, broken medoids, planner statistics")
PROPAGATE_MUST_LINKS = Task("propagate-must-links", links.propagate_must_links, "transitive closure of must-links")
MERGE_MUST_LINKED = Task("merge-must-linked", links.merge_must_linked, "one cluster for must-linked faces")
CHECK_CONSTRAINTS = Task("check-constraints", links.check_constraints, "report constraint violations")
UPDATE_MEDOIDS = Task("update-medoids", upkeep.update_medoids, "medoids of clusters that changed enough")
MERGE_SIMILAR = Task("merge-similar", similar.merge_similar, "merge clusters with close centroids")
CLEANUP_UNASSIGNED = Task("cleanup-unassigned", upkeep.cleanup_unassigned, "old unassigned faces as singletons")
AUTO_ASSOCIATE = Task("auto-associate", association.auto_associate, "link clusters of one person into persons")

#: The spec's daily tasks, in its order.
DAILY: list[Task] = [
    RECOMPUTE_CENTROIDS,
    CLEANUP_EMPTY,
    UPDATE_STATS,
    PROPAGATE_MUST_LINKS,
    MERGE_MUST_LINKED,
    CHECK_CONSTRAINTS,
]

#: All daily tasks, then the spec's weekly ones, in its order, then auto-association (the spec
#: runs it weekly; last, so that singletons made from the unassigned pool can join persons).
WEEKLY: list[Task] = [
    *DAILY,
    UPDATE_MEDOIDS,
    MERGE_SIMILAR,
    CLEANUP_UNASSIGNED,
    AUTO_ASSOCIATE,
]

TASKS: dict[str, Task] = {task.name: task for task in WEEKLY}

__all__ = [
    "DAILY",
    "TASKS",
    "WEEKLY",
    "Health",
    "Options",
    "Outcome",
    "Task",
    "TaskResult",
    "health",
    "run_task",
    "run_tasks",
]
