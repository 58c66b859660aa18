"""enrich-photos' work: queue photos, send them (one by one or as batches), fetch and store results.

Order of writes for a batch (nothing is lost if the process dies between any two):
1. photos claimed (pending -> processing, with a lease, like every stage);
2. a batch_job row with the photo ids;
3. the provider's batch is created;
4. one transaction: the provider's batch id, and the photos moved to 'submitted' under that job.
Dying after 1 or 2: the lease (or the dead-process check) frees the photos; the job row stays
'pending' without a provider id and --check-batches closes it. Dying after 4: --check-batches
fetches the results. The only unrecoverable window is between the provider's answer in 3 and the
commit of 4 (one round trip); its photos are sent again by the next run, never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.enrich_repository import BatchJob, EnrichRepository, StoredResult
from photodb.database.queue_repository import QueueRepository
from photodb.database.repository import PhotoRepository, Scope
from photodb.enrich.pricing import Usage, cost_cents
from photodb.enrich.provider import (
    AnalysisFailed,
    BatchState,
    ItemResult,
    LLMProvider,
    ProviderError,
)
from photodb.enrich.request import AnalysisRequest, ImageLimits, photo_id_from, system_prompt
from photodb.processors.identity import ProcessIdentity
from photodb.stages.base import StageContext
from photodb.stages.enrich import EnrichStage

log = logging.getLogger(__name__)

_RESULT_CHUNK = 100
_ESTIMATED_OUTPUT_TOKENS = 700  # a typical analysis; only for the estimate before sending


@dataclass(frozen=True)
class EnrichOptions:
    no_batch: bool = False
    retry_failed: bool = False
    force: bool = False
    max_photos: int | None = None
    flush: bool = False


@dataclass
class EnrichSummary:
    provider: str
    model: str
    mode: str
    queued: int = 0
    sent: int = 0
    completed: int = 0
    failed: int = 0
    freed: int = 0
    waiting: int = 0  # pending photos left for a later, full-enough batch
    unknown_results: int = 0
    batches_submitted: list[str] = field(default_factory=list)
    batches_finished: list[str] = field(default_factory=list)
    batches_open: int = 0
    estimated_cost_cents: float | None = 0.0
    actual_cost_cents: float | None = 0.0
    usage: Usage = field(default_factory=Usage)
    errors: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # one line each, for the user

    def add_cost(self, cents: float | None, *, actual: bool) -> None:
        name = "actual_cost_cents" if actual else "estimated_cost_cents"
        current = getattr(self, name)
        setattr(self, name, None if cents is None or current is None else current + cents)


class Reporter(Protocol):
    """Progress for the CLI; every method is optional to act on."""

    def photo_done(self, ok: bool) -> None: ...

    def batch_progress(self, provider_batch_id: str, done: int, total: int) -> None: ...


class _Silent:
    def photo_done(self, ok: bool) -> None:
        return None

    def batch_progress(self, provider_batch_id: str, done: int, total: int) -> None:
        return None


class EnrichRunner:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        provider: LLMProvider,
        image_limits: ImageLimits,
        reporter: Reporter | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.provider = provider
        self.image_limits = image_limits
        self.repo = EnrichRepository(db)
        self.queue = QueueRepository(db)
        self.identity = ProcessIdentity.current()
        self.holder = self.identity.holder(0)
        self.reporter: Reporter = reporter or _Silent()
        self.stop = threading.Event()  # set to end a --wait early

    # -- sending ----------------------------------------------------------------------------

    def run(self, scope: Scope, options: EnrichOptions) -> EnrichSummary:
        mode = "sync" if options.no_batch else "batch"
        summary = EnrichSummary(self.provider.name, self.provider.model, mode)
        if not options.no_batch:
            self.provider.ensure_batch_ready()
        self._recover_claims()
        summary.queued = self.repo.prepare(scope, force=options.force, retry_failed=options.retry_failed)
        collection = PhotoRepository(self.db).get_collection(scope.collection_id)
        stage = EnrichStage(
            StageContext(self.settings, self.db, collection), self.provider, self.image_limits, self.holder
        )
        try:
            if options.no_batch:
                self._run_sync(stage, scope, options, summary)
            else:
                self._run_batches(stage, scope, options, summary)
        finally:
            self.repo.hand_back(self.holder)
        summary.errors = self.repo.recent_errors(scope)
        return summary

    def _budget(self, options: EnrichOptions, summary: EnrichSummary, size: int) -> int:
        if options.max_photos is None:
            return size
        return max(0, min(size, options.max_photos - summary.sent))

    def _run_sync(self, stage: EnrichStage, scope: Scope, options: EnrichOptions, summary: EnrichSummary) -> None:
        while not self.stop.is_set():
            photo_ids = self.repo.claim(self.holder, scope, self._budget(options, summary, 4))
            if not photo_ids:
                return
            self._enrich_each(stage, photo_ids, summary)

    def _enrich_each(self, stage: EnrichStage, photo_ids: Sequence[int], summary: EnrichSummary) -> None:
        """Claimed photos one by one through the stage (a ProviderError stops the run; the rest go back)."""
        for photo_id in photo_ids:
            outcome = stage.enrich(photo_id)
            summary.sent += outcome.sent
            summary.usage += outcome.result.usage
            if outcome.ok:
                summary.add_cost(outcome.result.cost_cents, actual=True)
            summary.completed += outcome.ok
            summary.failed += not outcome.ok
            self.reporter.photo_done(outcome.ok)

    def _run_batches(self, stage: EnrichStage, scope: Scope, options: EnrichOptions, summary: EnrichSummary) -> None:
        floor = self.provider.min_batch_records  # the provider rejects smaller jobs (Bedrock: 100)
        size = max(self.settings.batch_size, floor)
        minimum = max(min(self.settings.min_batch_size, size), floor)
        while not self.stop.is_set():
            budget = self._budget(options, summary, size)
            if budget == 0:
                return
            photo_ids = self.repo.claim(self.holder, scope, budget)
            if not photo_ids:
                return
            if len(photo_ids) < floor:
                if not options.flush:
                    self._wait(photo_ids, summary, f"{self.provider.name} batch jobs need at least {floor} photos")
                    return
                summary.notes.append(
                    f"{len(photo_ids)} photo(s) sent one by one: {self.provider.name} batch jobs need at least "
                    f"{floor} photos (--flush)"
                )
                self._enrich_each(stage, photo_ids, summary)
                continue
            if len(photo_ids) < min(minimum, budget) and not options.flush:  # --max-photos below it is meant
                self._wait(photo_ids, summary, f"MIN_BATCH_SIZE is {minimum}")
                return
            self._submit(stage, photo_ids, summary)

    def _wait(self, photo_ids: Sequence[int], summary: EnrichSummary, why: str) -> None:
        self.repo.hand_back(self.holder, photo_ids)
        summary.waiting = len(photo_ids)
        summary.notes.append(f"{len(photo_ids)} photo(s) wait for a fuller batch: {why} (or use --flush / --no-batch)")

    def _submit(self, stage: EnrichStage, photo_ids: Sequence[int], summary: EnrichSummary) -> None:
        requests: list[AnalysisRequest] = []
        for photo in self.repo.photo_inputs(photo_ids):
            request = stage.request_for(photo)
            if isinstance(request, str):
                summary.failed += 1
            else:
                requests.append(request)
        if not requests:
            return
        estimate = self._estimate(requests)
        job_id = self.repo.create_batch(
            self.provider.name, self.provider.model, [r.photo_id for r in requests], estimate
        )
        try:
            provider_batch_id = self.provider.submit_batch(requests)
        except (ProviderError, AnalysisFailed) as error:
            self.repo.abandon_batch(job_id, self.holder, str(error))
            raise ProviderError(str(error)) from None
        self.repo.mark_submitted(job_id, provider_batch_id, self.holder)
        log.info("batch %s submitted: %d photos (job %d)", provider_batch_id, len(requests), job_id)
        summary.sent += len(requests)
        summary.batches_submitted.append(provider_batch_id)
        summary.add_cost(estimate, actual=False)

    def _estimate(self, requests: Sequence[AnalysisRequest]) -> float | None:
        """Batch cost before sending: image tokens (w x h / 750), the context, the cached static part."""
        static_tokens = len(system_prompt()) // 4
        variable = sum(r.image.width * r.image.height // 750 + len(r.context.render()) // 4 for r in requests)
        usage = Usage(
            input_tokens=variable,
            output_tokens=_ESTIMATED_OUTPUT_TOKENS * len(requests),
            cache_creation_tokens=static_tokens,
            cache_read_tokens=static_tokens * (len(requests) - 1),
        )
        return cost_cents(self.provider.model, usage, batch=True)

    # -- fetching ----------------------------------------------------------------------------

    def check_batches(self, *, wait: bool) -> EnrichSummary:
        """Look at every open batch once (or until all have ended, with `wait`), storing what has ended."""
        summary = EnrichSummary(self.provider.name, self.provider.model, "check")
        self._recover_claims()
        while True:
            still_open = 0
            for job in self.repo.open_batches():
                if job.provider != self.provider.name:
                    continue
                if not self._check(job, summary):
                    still_open += 1
            summary.batches_open = still_open
            if not wait or still_open == 0 or self.stop.wait(self.settings.batch_check_interval):
                return summary

    def _check(self, job: BatchJob, summary: EnrichSummary) -> bool:
        """Whether the job is closed after this look."""
        if job.provider_batch_id is None:
            return self._close_unsent(job)
        status = self.provider.batch_status(job.provider_batch_id)
        self.reporter.batch_progress(job.provider_batch_id, status.done, status.total)
        if status.state == BatchState.IN_PROGRESS:
            self.repo.mark_checked(job.id, "in_progress")
            return False
        if status.state in (BatchState.FAILED, BatchState.EXPIRED, BatchState.CANCELLED):
            freed = self.repo.free_photos(job.id)
            summary.freed += freed
            self.repo.finish_batch(
                job.id, _JOB_STATUS[status.state], usage=Usage(), actual_cost_cents=0.0, error=status.message
            )
            summary.batches_finished.append(job.provider_batch_id)
            log.warning("batch %s %s: %d photos back in the queue", job.provider_batch_id, status.state, freed)
            return True
        self._fetch(job, summary)
        return True

    def _close_unsent(self, job: BatchJob) -> bool:
        """A job whose submission never finished: closed once its photos are no longer held by a live claim."""
        age = time.time() - job.created_at.timestamp()
        if age < self.settings.processing_lease_seconds:
            return False
        self.repo.finish_batch(
            job.id, "failed", usage=Usage(), actual_cost_cents=0.0, error="never submitted: the sender stopped"
        )
        return True

    def _fetch(self, job: BatchJob, summary: EnrichSummary) -> None:
        assert job.provider_batch_id is not None
        members = set(job.photo_ids)
        seen: set[int] = set()
        usage = Usage()
        unknown = 0
        unprocessed: list[int] = []
        chunk: list[StoredResult] = []
        for item in self.provider.batch_results(job.provider_batch_id):
            photo_id = photo_id_from(item.custom_id)
            if photo_id is None or photo_id not in members or photo_id in seen:
                unknown += 1
                log.warning("batch %s: ignoring a result for an unknown request id", job.provider_batch_id)
                continue
            seen.add(photo_id)
            usage += item.usage
            if item.unprocessed:
                unprocessed.append(photo_id)
                continue
            chunk.append(self._stored(item, photo_id))
            if len(chunk) >= _RESULT_CHUNK:
                self._store_chunk(job, chunk, summary)
                chunk = []
        self._store_chunk(job, chunk, summary)
        summary.freed += self.repo.free_photos(job.id, unprocessed)
        missing = sorted(members - seen)
        if missing:
            self._store_chunk(
                job,
                [StoredResult(p, None, "the batch returned no result for this photo", Usage()) for p in missing],
                summary,
            )
        actual = cost_cents(self.provider.model, usage, batch=True)
        summary.add_cost(actual, actual=True)
        summary.usage += usage
        summary.unknown_results += unknown
        self.repo.finish_batch(job.id, "completed", usage=usage, actual_cost_cents=actual, unknown_results=unknown)
        summary.batches_finished.append(job.provider_batch_id)

    def _stored(self, item: ItemResult, photo_id: int) -> StoredResult:
        if item.analysis is None:
            return StoredResult(photo_id, None, item.error or "failed", item.usage)
        cents = cost_cents(self.provider.model, item.usage, batch=True)
        return StoredResult(photo_id, item.analysis.response, None, item.usage, cents)

    def _store_chunk(self, job: BatchJob, chunk: list[StoredResult], summary: EnrichSummary) -> None:
        if not chunk:
            return
        for ok in self.repo.store_batch_results(job.id, chunk, self.provider.name, self.provider.model):
            summary.completed += ok
            summary.failed += not ok
            self.reporter.photo_done(ok)

    # -- claims of stopped processes -----------------------------------------------------------

    def _recover_claims(self) -> None:
        holders = self.queue.claim_holders(self.identity.machine_prefix)
        dead = [
            holder
            for holder in holders
            if (process := ProcessIdentity.parse(holder)) is not None
            and process.machine == self.identity.machine
            and not process.is_alive_here()
        ]
        released = self.queue.release_claims(dead)
        released += self.queue.release_expired_claims(self.settings.processing_lease_seconds)
        if released:
            log.info("re-queued %d unfinished claims of stopped workers", released)


_JOB_STATUS = {BatchState.FAILED: "failed", BatchState.EXPIRED: "expired", BatchState.CANCELLED: "cancelled"}
