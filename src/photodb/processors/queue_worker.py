"""The worker threads of a run: settle the last batch and claim the next in one statement, run the stages.

Database blips are retried (the claim, the settle, and a stage's whole `process`, which is
idempotent) and never recorded as a photo's failure. Anything else that goes wrong outside a
stage ends the run with that error: the thread records it, the others stop, and every claim of
the process is handed back, so no worker dies silently holding claims.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from photodb.database.connection import Database
from photodb.database.faults import DatabaseUnreachable, describe_error, is_transient
from photodb.database.models import Claim
from photodb.database.queue_repository import Cycle, Outcome, QueuePlan, QueueRepository, Settled
from photodb.database.repository import PhotoRepository, Scope
from photodb.stages.base import BaseStage, StageFailure, StageSkipped, StageUnavailable

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 2000


@dataclass
class RunControl:
    """What the threads of one run share: when to stop, why, and what each thread finished."""

    stop: threading.Event = field(default_factory=threading.Event)
    registration_done: threading.Event = field(default_factory=threading.Event)
    finished: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, status) settled by us
    failure: BaseException | None = None
    failed_thread: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    skip_reasons_told: set[tuple[str, str]] = field(default_factory=set)  # (stage, reason) logged once

    def fail(self, thread: str, error: BaseException) -> None:
        """Stop the run because of `error`; the first error is the one reported."""
        with self.lock:
            if self.failure is None:
                self.failure, self.failed_thread = error, thread
        self.stop.set()

    def add(self, settled: list[tuple[str, str]]) -> None:
        if settled:
            with self.lock:
                self.finished.update(settled)

    def first_telling(self, stage: str, reason: str) -> bool:
        """True the first time this run meets `reason` for skipping `stage`: it is logged once, not per photo."""
        with self.lock:
            if (stage, reason) in self.skip_reasons_told:
                return False
            self.skip_reasons_told.add((stage, reason))
            return True


@dataclass
class WorkerContext:
    db: Database
    queue: QueueRepository
    photos: PhotoRepository
    stages: dict[str, BaseStage]
    plan: QueuePlan
    batch_size: int
    lease_seconds: int
    scope: Callable[[], Scope]
    recover_claims: Callable[[], None]


class QueueWorker:
    """One thread's loop over the queue."""

    def __init__(self, context: WorkerContext, control: RunControl, holder: str) -> None:
        self.context = context
        self.control = control
        self.holder = holder
        self.outcomes: list[Outcome] = []

    def run(self) -> None:
        name = threading.current_thread().name
        try:
            self._loop()
        except BaseException as error:  # ends the run: recorded, and the claims go back
            if not isinstance(error, DatabaseUnreachable):
                log.debug("worker %s stopped the run", name, exc_info=True)
            self.control.fail(name, error)
            self._settle_once()

    def _loop(self) -> None:
        ctx, control = self.context, self.control
        idle_since: float | None = None
        while not control.stop.is_set():
            settling = bool(self.outcomes)
            # Read before claiming: registration may add (or unlock) its last rows between an empty
            # claim and this check, and an empty claim proves nothing about rows it could not see.
            registered = control.registration_done.is_set()
            claims = self._settle_and_claim(ctx.batch_size)
            if claims:
                idle_since = None
                self._run_batch(claims)
                continue
            if settling:  # the claim could not see what it settled: dependents may be free now
                continue
            if registered and not ctx.db.retrying(
                lambda: ctx.queue.work_in_flight(ctx.scope(), ctx.plan.stages), "checking for work in flight"
            ):
                break
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since > ctx.lease_seconds / 4:
                ctx.recover_claims()
                idle_since = now
            # Back off while others hold the claims this worker waits on: 20 ms up to half a second.
            control.stop.wait(min(0.5, 0.02 + (now - idle_since) / 10))
        if self.outcomes:
            self._settle_and_claim(0)

    def _settle_and_claim(self, limit: int) -> list[Claim]:
        ctx = self.context
        outcomes = self.outcomes
        tries = 0

        def attempt() -> Cycle:
            nonlocal tries
            tries += 1
            return ctx.queue.settle_and_claim(self.holder, outcomes, ctx.scope(), ctx.plan, limit, retry=tries > 1)

        cycle = ctx.db.retrying(attempt, "claiming work")
        self.outcomes = []
        self.control.add(cycle.settled)
        return cycle.claims

    def _settle_once(self) -> None:
        """Record what this thread finished before the run stopped; one try, the database may be gone."""
        if not self.outcomes:
            return
        ctx = self.context
        try:
            cycle = ctx.queue.settle_and_claim(self.holder, self.outcomes, ctx.scope(), ctx.plan, 0)
        except Exception as error:  # the run already stops with the first error
            log.info("could not record %d finished photos: %s", len(self.outcomes), describe_error(error))
            return
        self.outcomes = []
        self.control.add(cycle.settled)

    def _run_batch(self, claims: list[Claim]) -> None:
        for index, claim in enumerate(claims):
            if self.control.stop.is_set():
                self.outcomes += [Outcome(c, "pending") for c in claims[index:]]
                return
            self.outcomes.append(self._run_claim(claim))

    def _run_claim(self, claim: Claim) -> Outcome:
        stage = self.context.stages[claim.stage]

        def attempt() -> tuple[Settled, str | None]:
            try:
                stage.process(self.context.photos.get_photo(claim.photo_id))
            except StageSkipped as skipped:
                return "skipped", str(skipped)
            except StageFailure as failure:
                return "failed", str(failure)
            except (DatabaseUnreachable, StageUnavailable):  # the stage's models do not load: the run stops
                raise
            except Exception as unexpected:  # a photo-specific crash is recorded, a database blip retried
                if is_transient(unexpected):
                    raise
                log.debug("stage %s failed on photo %s", claim.stage, claim.photo_id, exc_info=True)
                return "failed", f"{type(unexpected).__name__}: {unexpected}"
            return "completed", None

        status, message = self.context.db.retrying(attempt, f"{claim.stage} of photo {claim.photo_id}")
        if status == "completed":
            return Outcome(claim, status)
        message = (message or "").replace("\x00", "")[:MAX_ERROR_LENGTH] or f"{status} without a message"
        if status == "failed":
            log.info("%s failed for photo %s: %s", claim.stage, claim.photo_id, message)
        elif self.control.first_telling(claim.stage, message):  # the summary counts them: a log line
            log.info("%s skipped photo %s: %s (logged once per run for this reason)", claim.stage,
                        claim.photo_id, message)  # fmt: skip
        return Outcome(claim, status, message)
