"""`photodb-maintenance health`: the spec's figures, a few more, and what is wrong, one line each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from photodb.database import maintenance_links as links_db
from photodb.database import maintenance_repository as repo
from photodb.database.connection import Database

#: The spec's health dict, in its order; health() returns these keys first.
SPEC_KEYS = repo.HEALTH_FIGURES[: repo.HEALTH_FIGURES.index("unassigned_pool_size") + 1]


VIOLATIONS = {
    "cannot_link_in_one_cluster": "cannot-linked faces in one cluster",
    "same_photo_in_one_cluster": "faces of one photo in one cluster",
    "must_link_split": "must-linked faces in two clusters",
}


@dataclass(frozen=True)
class Health:
    figures: dict[str, Any]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**self.figures, "ok": self.ok, "problems": self.problems}


def _problems(figures: dict[str, Any], violations: dict[str, list[str]]) -> list[str]:
    """Each wrong figure as one line that says what to run (kept empty clusters, verified or
    linked to a person, are a person's choice, not a fault)."""
    checks = [
        ("removable_empty_clusters", "clusters without faces", "cleanup-empty deletes them"),
        ("clusters_without_centroids", "clusters with faces but no centroid", "recompute-centroids"),
        ("face_count_mismatches", "clusters whose face_count is not their number of faces", "recompute-centroids"),
        ("clusters_without_medoids", "clusters with faces but no medoid", "update-medoids"),
    ]
    lines = [f"{what}: {figures[key]} ({fix})" for key, what, fix in checks if figures[key]]
    for kind, found in violations.items():
        if found:
            more = f" and {len(found) - 1} more" if len(found) > 1 else ""
            lines.append(f"{VIOLATIONS[kind]}: {len(found)}, e.g. {found[0]}{more}")
    return lines


def health(db: Database, collection_id: int | None) -> Health:
    with db.connection() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        figures = repo.health_figures(conn, collection_id)
        violations = links_db.constraint_violations(conn, collection_id)
    ordered = {key: figures[key] for key in SPEC_KEYS}
    ordered |= {key: value for key, value in figures.items() if key not in ordered}
    ordered["constraint_violations"] = {kind: len(found) for kind, found in violations.items()}
    return Health(ordered, _problems(figures, violations))
