"""Is the active clustering run still a fair picture of the collection? Says whether to re-bootstrap."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from photodb.config import Settings
from photodb.database.clustering import faces as face_db
from photodb.database.clustering import runs as run_db
from photodb.database.clustering import staleness as stale_db
from photodb.database.connection import Database


@dataclass
class StalenessReport:
    collection_id: int
    embedding_model: str
    faces: int
    run_id: int | None = None
    run_created_at: str | None = None
    faces_in_run: int = 0
    new_faces: int = 0
    new_share: float = 0.0
    unassigned_faces: int = 0
    parameter_drift: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name: (run, now)
    reasons: list[str] = field(default_factory=list)

    @property
    def rebootstrap(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"rebootstrap": self.rebootstrap}


def run_parameters(settings: Settings, min_cluster_size: int, min_samples: int) -> dict[str, Any]:
    """What a run records of how it was made; a run whose record differs from today's is stale."""
    return {
        "min_cluster_size": min_cluster_size,
        "min_samples": min_samples,
        "reduce_dims": settings.clustering_reduce_dims,
        "cluster_selection_method": settings.hdbscan_cluster_selection_method,
        "algorithm": "pca+exact-knn-mst",
    }


def check_staleness(db: Database, collection_id: int | None = None) -> list[StalenessReport]:
    """One report per (collection, embedding model) with faces or an active run."""
    settings = db.settings
    reports = []
    with db.connection() as conn:
        collections = [collection_id] if collection_id is not None else face_db.collection_ids(conn)
        for cid in collections:
            models = face_db.embedding_models(conn, cid)
            runs = {run.embedding_model: run for run in run_db.active_runs(conn, cid)}
            for model in sorted(set(models) | set(runs)):
                report = StalenessReport(cid, model, models.get(model, 0))
                run = runs.get(model)
                if run is None:
                    report.reasons.append(
                        f"no active run for embedding model {model!r}"
                        + (" (embedding model changed since the last bootstrap)" if runs else "")
                    )
                    reports.append(report)
                    continue
                report.run_id = run.id
                report.run_created_at = run.created_at.isoformat()
                report.faces_in_run = run.embedding_count
                if report.faces == 0:
                    report.reasons.append(f"active run {run.id} is for {model!r}, which no face uses any more")
                report.new_faces = stale_db.faces_after(
                    conn, cid, model, int(run.parameters.get("max_detection_id", 0))
                )
                report.new_share = report.new_faces / max(run.embedding_count, 1)
                report.unassigned_faces = stale_db.unassigned_count(conn, cid, model)
                if report.new_share >= settings.clustering_staleness_share:
                    report.reasons.append(f"{report.new_faces} faces ({report.new_share:.0%}) added since run {run.id}")
                now = run_parameters(settings, settings.hdbscan_min_cluster_size, settings.hdbscan_min_samples)
                was = {"min_cluster_size": run.min_cluster_size, "min_samples": run.min_samples} | {
                    k: v for k, v in run.parameters.items() if k in now and k not in ("min_cluster_size", "min_samples")
                }
                report.parameter_drift = {k: (was.get(k), v) for k, v in now.items() if was.get(k) != v}
                if report.parameter_drift:
                    report.reasons.append(f"parameters changed: {sorted(report.parameter_drift)}")
                reports.append(report)
    return reports
