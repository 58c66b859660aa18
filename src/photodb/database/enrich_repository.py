"""Every SQL statement of enrich-photos: its queue rows, batch jobs and stored analyses.

Enrich is a stage in processing_status like the others. Rules (docs/DESIGN.md repeats them):
- Photos are claimed `FOR UPDATE SKIP LOCKED` (pending -> processing, holder and lease as in the
  local queue), so two enrich processes never send the same photo.
- A batch is recorded as a batch_job row before it is sent; right after the provider answers, one
  transaction stores the provider's batch id and moves the photos to 'submitted', held by
  'batch:<job id>' (no lease: a batch may take a day). Only that batch's results settle them.
- Settling a result is idempotent: it touches a row only while that batch still holds it, and the
  analysis is an upsert on (photo_id, model_name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from photodb.database.connection import Database
from photodb.database.repository import Scope
from photodb.enrich.pricing import Usage
from photodb.enrich.request import PhotoContext
from photodb.models.photo_analysis import PhotoAnalysisResponse

STAGE = "enrich"
_SCOPE = "p.collection_id = %(collection)s AND (%(pattern)s::text IS NULL OR p.filename LIKE %(pattern)s)"
OPEN_BATCH_STATES = ("pending", "submitted", "in_progress")


@dataclass(frozen=True)
class PhotoInput:
    """What a request for one photo is built from."""

    photo_id: int
    normalized_path: str | None
    context: PhotoContext


@dataclass(frozen=True)
class BatchJob:
    id: int
    provider: str
    provider_batch_id: str | None
    status: str
    model_name: str
    photo_ids: list[int]
    submitted_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class StoredResult:
    """One photo's outcome, ready to store: an analysis or an error message."""

    photo_id: int
    analysis: PhotoAnalysisResponse | None
    error: str | None
    usage: Usage
    cost_cents: float | None = None
    duration_ms: int | None = None


def batch_holder(job_id: int) -> str:
    return f"batch:{job_id}"


class EnrichRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the queue ---------------------------------------------------------------------------

    def prepare(self, scope: Scope, *, force: bool, retry_failed: bool) -> int:
        """Add an enrich row for every normalized photo in scope; --force / --retry-failed re-queue.

        Returns how many rows became pending. Rows in a batch or held by a worker are never touched.
        """
        params = {"collection": scope.collection_id, "pattern": scope.like_pattern}
        requeue = ["failed"] * retry_failed + ["completed", "failed", "skipped"] * force
        with self.db.autocommit() as conn, conn.transaction():
            added = conn.execute(
                f"""INSERT INTO processing_status (photo_id, stage)
                    SELECT p.id, 'enrich' FROM photo p
                    WHERE p.normalized_path IS NOT NULL AND {_SCOPE}
                    ON CONFLICT (photo_id, stage) DO NOTHING""",  # noqa: S608
                params,
            ).rowcount
            requeued = 0
            if requeue:
                requeued = conn.execute(
                    f"""UPDATE processing_status ps SET status = 'pending', error_message = NULL, updated_at = now()
                        FROM photo p
                        WHERE p.id = ps.photo_id AND ps.stage = 'enrich' AND ps.status = ANY(%(requeue)s)
                          AND {_SCOPE}""",  # noqa: S608
                    {**params, "requeue": requeue},
                ).rowcount
        return added + requeued

    def claim(self, holder: str, scope: Scope, limit: int) -> list[int]:
        """Up to `limit` pending photos of scope, in photo order, now held by `holder`."""
        with self.db.autocommit() as conn:
            rows = conn.execute(
                f"""WITH candidate AS (
                        SELECT ps.photo_id FROM processing_status ps
                        WHERE ps.stage = 'enrich' AND ps.status = 'pending'
                          AND (SELECT {_SCOPE} FROM photo p WHERE p.id = ps.photo_id)
                        ORDER BY ps.photo_id LIMIT %(limit)s
                        FOR UPDATE OF ps SKIP LOCKED)
                    UPDATE processing_status ps
                    SET status = 'processing', claimed_by = %(holder)s, claimed_at = now(),
                        attempts = ps.attempts + 1, updated_at = now()
                    FROM candidate c WHERE ps.photo_id = c.photo_id AND ps.stage = 'enrich'
                    RETURNING ps.photo_id""",  # noqa: S608
                {"collection": scope.collection_id, "pattern": scope.like_pattern, "limit": limit, "holder": holder},
            ).fetchall()
        return sorted(r[0] for r in rows)

    def hand_back(self, holder: str, photo_ids: Sequence[int] | None = None) -> int:
        """Claims of `holder` back to pending, no attempt counted (all of them when photo_ids is None)."""
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       attempts = greatest(attempts - 1, 0), updated_at = now()
                   WHERE stage = 'enrich' AND status = 'processing' AND claimed_by = %s
                     AND (%s::bigint[] IS NULL OR photo_id = ANY(%s))""",
                (holder, *[None if photo_ids is None else list(photo_ids)] * 2),
            ).rowcount

    def fail_claimed(self, holder: str, photo_id: int, error: str) -> None:
        """A claimed photo that could not even be sent (unreadable image)."""
        with self.db.autocommit() as conn:
            _settle(conn, photo_id, "failed", error, status="processing", holder=holder)

    def counts(self, scope: Scope) -> dict[str, int]:
        with self.db.autocommit() as conn:
            rows = conn.execute(
                f"""SELECT ps.status, count(*) FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                    WHERE ps.stage = 'enrich' AND {_SCOPE} GROUP BY ps.status""",  # noqa: S608
                {"collection": scope.collection_id, "pattern": scope.like_pattern},
            ).fetchall()
        return {status: count for status, count in rows}

    def recent_errors(self, scope: Scope, limit: int = 5) -> list[tuple[str, str]]:
        with self.db.autocommit() as conn:
            return [
                (r[0], r[1])
                for r in conn.execute(
                    f"""SELECT p.filename, ps.error_message FROM processing_status ps JOIN photo p ON p.id = ps.photo_id
                        WHERE ps.stage = 'enrich' AND ps.status = 'failed' AND {_SCOPE}
                        ORDER BY ps.processed_at DESC NULLS LAST, p.id LIMIT %(limit)s""",  # noqa: S608
                    {"collection": scope.collection_id, "pattern": scope.like_pattern, "limit": limit},
                ).fetchall()
            ]

    # -- what a request is built from ----------------------------------------------------------

    def photo_inputs(self, photo_ids: Sequence[int]) -> list[PhotoInput]:
        """Normalized image and context of each photo: date, GPS, camera, people and their names, tags."""
        with self.db.autocommit() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = cur.execute(
                """SELECT p.id, p.normalized_path, m.captured_at, m.captured_at_offset, m.latitude, m.longitude,
                          nullif(concat_ws(' ', m.camera_make, m.camera_model), '') AS camera,
                          (SELECT count(*) FROM person_detection d WHERE d.photo_id = p.id) AS people_count,
                          (SELECT coalesce(array_agg(DISTINCT n.name ORDER BY n.name), '{}')
                           FROM person_detection d
                           LEFT JOIN cluster c ON c.id = d.cluster_id
                           JOIN person pe ON pe.id = coalesce(d.person_id, c.person_id)
                           CROSS JOIN LATERAL (SELECT nullif(concat_ws(' ', pe.first_name, pe.last_name), '') AS name) n
                           WHERE d.photo_id = p.id AND n.name IS NOT NULL AND pe.named AND NOT pe.hidden) AS names,
                          (SELECT coalesce(array_agg(t.label ORDER BY t.confidence DESC, t.label), '{}')
                           FROM (SELECT DISTINCT ON (label) label, confidence FROM photo_tag
                                 WHERE photo_id = p.id ORDER BY label, confidence DESC) t) AS tags
                   FROM photo p LEFT JOIN metadata m ON m.photo_id = p.id
                   WHERE p.id = ANY(%s) ORDER BY p.id""",
                (list(photo_ids),),
            ).fetchall()
        return [
            PhotoInput(
                r["id"],
                r["normalized_path"],
                PhotoContext(
                    captured_at=r["captured_at"],
                    captured_at_offset=r["captured_at_offset"],
                    latitude=r["latitude"],
                    longitude=r["longitude"],
                    camera=r["camera"],
                    people_count=r["people_count"],
                    person_names=tuple(r["names"]),
                    scene_tags=tuple(r["tags"][:15]),
                ),
            )
            for r in rows
        ]

    # -- sync results ----------------------------------------------------------------------------

    def store_sync(self, holder: str, result: StoredResult, provider: str, model: str) -> bool:
        """One photo's answer and its queue row in one transaction; False if the claim was lost meanwhile."""
        with self.db.autocommit() as conn, conn.transaction():
            status = "completed" if result.analysis is not None else "failed"
            if not _settle(conn, result.photo_id, status, result.error, status="processing", holder=holder):
                return False
            if result.analysis is not None:
                _upsert_analysis(conn, result, provider, model, batch_id=None)
        return True

    # -- batches -----------------------------------------------------------------------------

    def create_batch(
        self, provider: str, model: str, photo_ids: Sequence[int], estimated_cost_cents: float | None
    ) -> int:
        """The batch_job row, written before anything is sent."""
        with self.db.autocommit() as conn:
            row = conn.execute(
                """INSERT INTO batch_job (provider, status, photo_count, photo_ids, model_name,
                                          estimated_cost_cents, batch_discount_applied)
                   VALUES (%s, 'pending', %s, %s, %s, %s, true) RETURNING id""",
                (provider, len(photo_ids), list(photo_ids), model, _decimal(estimated_cost_cents)),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def mark_submitted(self, job_id: int, provider_batch_id: str, holder: str) -> None:
        """The first write after the provider accepted the batch: its id, and the photos now held by it."""
        with self.db.autocommit() as conn, conn.transaction():
            conn.execute(
                """UPDATE batch_job SET provider_batch_id = %s, status = 'submitted', submitted_at = now()
                   WHERE id = %s""",
                (provider_batch_id, job_id),
            )
            conn.execute(
                """UPDATE processing_status ps SET status = 'submitted', claimed_by = %s, claimed_at = NULL,
                       updated_at = now()
                   FROM batch_job b
                   WHERE b.id = %s AND ps.photo_id = ANY(b.photo_ids) AND ps.stage = 'enrich'
                     AND ps.status = 'processing' AND ps.claimed_by = %s""",
                (batch_holder(job_id), job_id, holder),
            )

    def abandon_batch(self, job_id: int, holder: str, error: str) -> None:
        """The provider refused the batch: the job is failed and its photos go back to the queue."""
        with self.db.autocommit() as conn, conn.transaction():
            conn.execute(
                "UPDATE batch_job SET status = 'failed', error_message = %s, completed_at = now() WHERE id = %s",
                (error, job_id),
            )
            conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
                       attempts = greatest(attempts - 1, 0), updated_at = now()
                   WHERE stage = 'enrich' AND status = 'processing' AND claimed_by = %s
                     AND photo_id = ANY(SELECT unnest(photo_ids) FROM batch_job WHERE id = %s)""",
                (holder, job_id),
            )

    def open_batches(self) -> list[BatchJob]:
        with self.db.autocommit() as conn:
            cur = conn.cursor(row_factory=dict_row)
            rows = cur.execute(
                """SELECT id, provider, provider_batch_id, status, model_name, photo_ids, submitted_at, created_at
                   FROM batch_job WHERE status = ANY(%s) ORDER BY id""",
                (list(OPEN_BATCH_STATES),),
            ).fetchall()
        return [BatchJob(**r) for r in rows]

    def mark_checked(self, job_id: int, status: str) -> None:
        with self.db.autocommit() as conn:
            conn.execute(
                "UPDATE batch_job SET status = %s, checked_at = now() WHERE id = %s AND status = ANY(%s)",
                (status, job_id, list(OPEN_BATCH_STATES)),
            )

    def store_batch_results(
        self, job_id: int, results: Sequence[StoredResult], provider: str, model: str
    ) -> list[bool]:
        """A chunk of one batch's results in one transaction; per photo it settled, whether it succeeded.

        A photo no longer held by this batch (a changed file re-queued it, an earlier fetch settled
        it) is left alone, so fetching the same results twice changes nothing.
        """
        settled: list[bool] = []
        with self.db.autocommit() as conn, conn.transaction():
            holder = batch_holder(job_id)
            for result in results:
                status = "completed" if result.analysis is not None else "failed"
                if _settle(conn, result.photo_id, status, result.error, status="submitted", holder=holder):
                    settled.append(result.analysis is not None)
                    if result.analysis is not None:
                        _upsert_analysis(conn, result, provider, model, batch_id=job_id)
        return settled

    def free_photos(self, job_id: int, photo_ids: Sequence[int] | None = None) -> int:
        """Photos of the batch that got no answer (expired, cancelled, missing) back to pending, no attempt counted."""
        with self.db.autocommit() as conn:
            return conn.execute(
                """UPDATE processing_status SET status = 'pending', claimed_by = NULL, error_message = NULL,
                       attempts = greatest(attempts - 1, 0), updated_at = now()
                   WHERE stage = 'enrich' AND status = 'submitted' AND claimed_by = %s
                     AND (%s::bigint[] IS NULL OR photo_id = ANY(%s))""",
                (batch_holder(job_id), *[None if photo_ids is None else list(photo_ids)] * 2),
            ).rowcount

    def finish_batch(
        self,
        job_id: int,
        status: str,
        *,
        usage: Usage,
        actual_cost_cents: float | None,
        unknown_results: int = 0,
        error: str | None = None,
    ) -> None:
        """Counts from the photos' rows, tokens and cost from the results; the job is closed."""
        with self.db.autocommit() as conn:
            conn.execute(
                """UPDATE batch_job b SET status = %(status)s, completed_at = now(), checked_at = now(),
                       processed_count = (SELECT count(*) FROM llm_analysis a WHERE a.batch_id = b.id),
                       failed_count = (SELECT count(*) FROM processing_status ps WHERE ps.stage = 'enrich'
                                       AND ps.photo_id = ANY(b.photo_ids) AND ps.status = 'failed'
                                       AND ps.claimed_by = %(holder)s),
                       freed_count = b.photo_count - (SELECT count(*) FROM llm_analysis a WHERE a.batch_id = b.id)
                                     - (SELECT count(*) FROM processing_status ps WHERE ps.stage = 'enrich'
                                        AND ps.photo_id = ANY(b.photo_ids) AND ps.status = 'failed'
                                        AND ps.claimed_by = %(holder)s),
                       total_input_tokens = %(input)s, total_output_tokens = %(output)s,
                       total_cache_creation_tokens = %(cache_creation)s, total_cache_read_tokens = %(cache_read)s,
                       actual_cost_cents = %(cost)s, unknown_result_count = %(unknown)s, error_message = %(error)s
                   WHERE b.id = %(id)s""",
                {
                    "status": status,
                    "holder": batch_holder(job_id),
                    "input": usage.input_tokens,
                    "output": usage.output_tokens,
                    "cache_creation": usage.cache_creation_tokens,
                    "cache_read": usage.cache_read_tokens,
                    "cost": _decimal(actual_cost_cents),
                    "unknown": unknown_results,
                    "error": error,
                    "id": job_id,
                },
            )

    def batch_job(self, job_id: int) -> dict[str, Any]:
        with self.db.autocommit() as conn:
            cur = conn.cursor(row_factory=dict_row)
            row = cur.execute("SELECT * FROM batch_job WHERE id = %s", (job_id,)).fetchone()
        if row is None:
            raise LookupError(f"batch job {job_id} does not exist")
        return row


def _settle(conn: Connection[Any], photo_id: int, to: str, error: str | None, *, status: str, holder: str) -> bool:
    """Move one enrich row from `status` held by `holder` to `to`; False when it is no longer theirs."""
    row = conn.execute(
        """UPDATE processing_status SET status = %s, error_message = %s, processed_at = now(), claimed_at = NULL,
               updated_at = now()
           WHERE photo_id = %s AND stage = 'enrich' AND status = %s AND claimed_by = %s
           RETURNING photo_id""",
        (to, error, photo_id, status, holder),
    ).fetchone()
    return row is not None


def _upsert_analysis(
    conn: Connection[Any], result: StoredResult, provider: str, model: str, *, batch_id: int | None
) -> None:
    analysis = result.analysis
    assert analysis is not None
    conn.execute(
        """INSERT INTO llm_analysis (photo_id, model_name, provider, batch_id, analysis, description, objects,
                                     people_count, location_description, emotional_tone, confidence_score,
                                     processing_duration_ms, input_tokens, output_tokens, cache_creation_tokens,
                                     cache_read_tokens, cost_cents, error_message, processed_at)
           VALUES (%(photo_id)s, %(model)s, %(provider)s, %(batch_id)s, %(analysis)s, %(description)s, %(objects)s,
                   %(people)s, %(location)s, %(tone)s, %(confidence)s, %(duration)s, %(input)s, %(output)s,
                   %(cache_creation)s, %(cache_read)s, %(cost)s, NULL, now())
           ON CONFLICT (photo_id, model_name) DO UPDATE SET
               provider = EXCLUDED.provider, batch_id = EXCLUDED.batch_id, analysis = EXCLUDED.analysis,
               description = EXCLUDED.description, objects = EXCLUDED.objects, people_count = EXCLUDED.people_count,
               location_description = EXCLUDED.location_description, emotional_tone = EXCLUDED.emotional_tone,
               confidence_score = EXCLUDED.confidence_score, processing_duration_ms = EXCLUDED.processing_duration_ms,
               input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
               cache_creation_tokens = EXCLUDED.cache_creation_tokens, cache_read_tokens = EXCLUDED.cache_read_tokens,
               cost_cents = EXCLUDED.cost_cents, error_message = NULL, processed_at = now()""",
        {
            "photo_id": result.photo_id,
            "model": model,
            "provider": provider,
            "batch_id": batch_id,
            "analysis": Jsonb(analysis.model_dump(mode="json")),
            "description": analysis.description,
            "objects": [o.name for o in analysis.objects],
            "people": analysis.people.count,
            "location": analysis.location.description,
            "tone": analysis.emotional_tone.value,
            "confidence": analysis.confidence,
            "duration": result.duration_ms,
            "input": result.usage.input_tokens,
            "output": result.usage.output_tokens,
            "cache_creation": result.usage.cache_creation_tokens,
            "cache_read": result.usage.cache_read_tokens,
            "cost": _decimal(result.cost_cents),
        },
    )


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(f"{value:.4f}")
