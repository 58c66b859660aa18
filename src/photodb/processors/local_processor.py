"""Runs the local stages over a folder: register files, then let worker threads drain the queue.

Registration (walk, stat, hash, upsert) runs in its own thread and feeds the queue in chunks,
so workers start on the first photos while the walk is still going. Workers claim
(photo, stage) rows from PostgreSQL, which is what lets several processes on several hosts
share one library safely.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.faults import DatabaseUnreachable, describe_error, is_transient
from photodb.database.models import Collection, StageCounts
from photodb.database.queue_repository import QueuePlan, QueueRepository
from photodb.database.repository import PhotoRepository, Scope
from photodb.people.refresh import needs_refresh, refresh_people
from photodb.processors.identity import ProcessIdentity
from photodb.processors.progress import ProgressPoller, with_own_progress
from photodb.processors.queue_worker import QueueWorker, RunControl, WorkerContext
from photodb.processors.registration import REGISTRATION_CHUNK, Registrar, chunked
from photodb.processors.summary import RunSummary, StageSummary
from photodb.stages import INIT_ORDER, implemented_stages, stage_class
from photodb.stages.base import BaseStage, StageContext, StageUnavailable
from photodb.utils.files import DiscoveryStats, iter_images

log = logging.getLogger(__name__)


class RunError(RuntimeError):
    """The run cannot start (bad folder, foreign collection root, unavailable stage)."""


class ProgressSink(Protocol):
    def update(self, counts: dict[str, StageCounts], registered: int, discovering: bool) -> None: ...

    def skipping(self, reasons: dict[str, str]) -> None:
        """Told once, before any update: the stages that cannot run here, and why."""


@dataclass
class RunOptions:
    stages: list[str]
    parallel: int = 1
    force: bool = False
    dry_run: bool = False
    max_photos: int | None = None
    retry_failed: bool = False
    collection: str = "default"
    people: bool = True  # bring people up to date after the stages (UPDATE_PEOPLE_AFTER_INDEX, --no-people)


def queue_plan(
    stages: Iterable[str], skipping: dict[str, str] | None = None, partial: dict[str, str] | None = None
) -> QueuePlan:
    """Run order, in-run dependencies, every (transitive) dependency of each implemented stage, the
    stages that cannot run here (`skipping`: stage -> reason) and those that skip each photo after
    part of the work (`partial`: stage -> reason)."""
    names = list(stages)
    direct = {name: stage_class(name).depends_on for name in implemented_stages()}

    def ancestors(name: str) -> tuple[str, ...]:
        found: list[str] = []
        for parent in direct.get(name, ()):
            for item in (parent, *ancestors(parent)):
                if item not in found:
                    found.append(item)
        return tuple(found)

    return QueuePlan(
        stages=tuple(names),
        requires={name: tuple(d for d in direct.get(name, ()) if d in names) for name in names},
        ancestors={name: ancestors(name) for name in direct if ancestors(name)},
        skipping=dict(skipping or {}),
        partial=dict(partial or {}),
    )


class LocalProcessor:
    def __init__(
        self, settings: Settings, db: Database, options: RunOptions, progress: ProgressSink | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.options = options
        self.progress = progress
        self.repo = PhotoRepository(db)
        self.queue = QueueRepository(db)
        self.identity = ProcessIdentity.current()
        self.control = RunControl()
        self._registered = 0
        self._registration_error: BaseException | None = None
        self._scope: Scope | None = None
        self._collection_id: int | None = None
        self._poller = ProgressPoller()
        self._last_counts: dict[str, StageCounts] | None = None
        self._finished_at_poll: dict[tuple[str, str], int] = {}

    # -- set-up --------------------------------------------------------------------------------

    def _resolve(self, root: Path) -> tuple[Collection, Scope]:
        root = root.expanduser()
        if not root.exists():
            raise RunError(f"folder not found: {root}")
        if not root.is_dir():
            raise RunError(f"not a folder: {root}")
        root = root.resolve()
        collection = self.db.call("reading", self.repo.get_or_create_collection, self.options.collection)
        if collection.root_path is None:
            collection = self.db.call("setting the root", self.repo.set_collection_root, collection.id, root)
        assert collection.root_path is not None
        while collection.root_path != root and collection.root_path.is_relative_to(root):
            old = collection.root_path
            moved_under = old.relative_to(root).as_posix()
            if self.db.call("re-rooting", self.repo.reroot_collection, collection.id, old, root, moved_under):
                log.info("collection '%s' now starts at %s (was %s)", collection.name, root, old)
            collection = self.db.call("reading the collection", self.repo.get_collection, collection.id)
            assert collection.root_path is not None
        return collection, self._scope_for(root, collection)

    @staticmethod
    def _scope_for(folder: Path, collection: Collection) -> Scope:
        assert collection.root_path is not None
        try:
            prefix = folder.relative_to(collection.root_path).as_posix()
        except ValueError:
            raise RunError(
                f"collection '{collection.name}' lives in {collection.root_path}; {folder} is outside it. "
                "Use --collection NAME to index another library."
            ) from None
        return Scope(collection.id, None if prefix == "." else prefix)

    def _open_stages(self, collection: Collection) -> tuple[dict[str, BaseStage], dict[str, str]]:
        """Construct the run's stages in INIT_ORDER; return them in processing order.

        A stage that raises StageUnavailable (a missing extra or model file) is left out of a default
        run and stops a run that asked for it. A stage that sets `skip_reason` (a missing model)
        stays in the run and skips its photos; its reason is logged here, once. No model loads here:
        each stage loads its models when it first claims a photo, after those of the stages opened
        before it (`loads_after`), so that models load in INIT_ORDER.
        """
        context = StageContext(self.settings, self.db, collection, parallel=self.options.parallel)
        opened: dict[str, BaseStage] = {}
        unavailable: dict[str, str] = {}
        explicit = set(self.options.stages) != set(implemented_stages())
        for name in sorted(self.options.stages, key=INIT_ORDER.index):
            try:
                stage = stage_class(name)(context)
            except StageUnavailable as error:
                if explicit:
                    for stage in opened.values():
                        stage.close()
                    raise RunError(f"stage '{name}' cannot run: {error}") from error
                log.warning("skipping stage %s: %s", name, error)
                unavailable[name] = str(error)
                continue
            stage.loads_after = list(opened.values())
            opened[name] = stage
            if stage.skip_reason is not None:
                log.warning("%s cannot run here, its photos are recorded as skipped: %s", name, stage.skip_reason)
        return {name: opened[name] for name in self.options.stages if name in opened}, unavailable

    # -- the run -------------------------------------------------------------------------------

    def run(self, root: Path) -> RunSummary:
        started = time.monotonic()
        collection, scope = self._resolve(root)
        self._scope = scope
        self._collection_id = collection.id
        folder = root.expanduser().resolve()
        if self.options.dry_run:
            return self._dry_run(folder, collection, scope, started)

        stages, unavailable = self._open_stages(collection)
        skipping = {name: stage.skip_reason for name, stage in stages.items() if stage.skip_reason is not None}
        summary = RunSummary(
            root=str(root), collection=collection.name,
            stages={name: StageSummary() for name in stages}, unavailable=unavailable, skipping=skipping,
        )  # fmt: skip
        if not stages:
            summary.elapsed_seconds = time.monotonic() - started
            return summary
        partial = {name: stage.partial_reason for name, stage in stages.items() if stage.partial_reason is not None}
        plan = queue_plan(stages, skipping, partial)
        if self.progress is not None and skipping:
            self.progress.skipping(skipping)
        try:
            self._prepare_queue(scope, plan)
            self._run_threads(folder, collection, stages, plan, summary)
        finally:
            for stage in stages.values():
                stage.close()
        failure = self.control.failure
        if isinstance(failure, DatabaseUnreachable):
            raise failure
        if failure is None and self._registration_error is not None:
            failure = self._registration_error
            if isinstance(failure, DatabaseUnreachable):
                raise failure
            raise RunError(f"registering files failed: {describe_error(failure)}") from failure
        if failure is not None:
            summary.stopped_by = (
                f"{self.control.failed_thread} stopped the run: {type(failure).__name__}: {describe_error(failure)}"
            )
        self._summarise(summary, plan)
        summary.elapsed_seconds = time.monotonic() - started
        return summary

    def update_people(self, summary: RunSummary, progress: Callable[[str], None] | None = None) -> None:
        """People brought up to date after the stages (people.refresh): not for a dry run, a run that
        stopped, or when the collection's people have already seen every face."""
        if not self.options.people or summary.dry_run or summary.stopped_by is not None:
            return
        collection_id = self._collection_id
        if collection_id is None or not self.db.call("checking people", needs_refresh, self.db, collection_id):
            return
        try:
            summary.people = refresh_people(self.db, collection_id, by=f"index:{self.identity}", progress=progress)
        except (psycopg.Error, DatabaseUnreachable) as error:
            log.warning("people step failed: %s", describe_error(error))
            summary.people_error = describe_error(error)

    def _prepare_queue(self, scope: Scope, plan: QueuePlan) -> None:
        """Re-queue what this run may retry, block what sits behind a failure, skip what cannot run here."""
        self._recover_claims()
        if self.options.retry_failed:
            self.db.call("re-queueing failures", self.queue.requeue_failed, scope, plan.stages)
        self.db.call("re-queueing skipped photos", self.queue.requeue_skipped, scope, plan.current_skip_reasons())
        self.db.call("finding blocked photos", self.queue.refresh_blocked, plan, scope=scope)
        self.db.call("skipping photos", self.queue.skip_unavailable, plan, scope=scope)

    def _run_threads(
        self, folder: Path, collection: Collection, stages: dict[str, BaseStage], plan: QueuePlan, summary: RunSummary
    ) -> None:
        stats = DiscoveryStats()
        registrar = threading.Thread(
            target=self._register_all, args=(folder, collection, plan, stats, summary),
            name="photodb-register", daemon=True,
        )  # fmt: skip
        context = WorkerContext(
            db=self.db, queue=self.queue, photos=self.repo, stages=stages, plan=plan,
            batch_size=self.settings.claim_batch_size, lease_seconds=self.settings.processing_lease_seconds,
            scope=self._current_scope, recover_claims=self._recover_claims,
        )  # fmt: skip
        workers = [
            threading.Thread(
                target=QueueWorker(context, self.control, self.identity.holder(i)).run,
                name=f"photodb-worker-{i}",
                daemon=True,
            )
            for i in range(max(1, self.options.parallel))
        ]
        registrar.start()
        for worker in workers:
            worker.start()
        try:
            while any(w.is_alive() for w in workers):
                self._report(plan, discovering=registrar.is_alive())
                for worker in workers:
                    worker.join(timeout=0.5 / len(workers))
        finally:
            self.control.stop.set()
            registrar.join(timeout=10)
            for worker in workers:
                worker.join(timeout=60)
            self._hand_back()
        summary.discovered = stats.images
        summary.ignored_files = stats.ignored_files
        summary.symlink_loops = stats.symlink_loops

    def _register_all(
        self, folder: Path, collection: Collection, plan: QueuePlan, stats: DiscoveryStats, summary: RunSummary
    ) -> None:
        def moved(to: Collection) -> None:
            self._scope = self._scope_for(folder, to)

        registrar = Registrar(self.db, collection, moved)
        try:
            force = list(summary.stages) if self.options.force else []
            for chunk in chunked(iter_images(folder, stats, self.options.max_photos), REGISTRATION_CHUNK):
                if self.control.stop.is_set():
                    return
                done = registrar.register(chunk, implemented_stages(), force, plan)
                summary.new += done.new
                summary.changed += done.changed
                summary.unchanged += done.unchanged
                with self.control.lock:
                    self._registered += len(done.names)
        except BaseException as error:  # surfaced by run(); workers must not wait forever
            self._registration_error = error
            self.control.stop.set()
        finally:
            self.control.registration_done.set()

    def _hand_back(self) -> None:
        """Give back whatever this process still holds (tried once when the database is gone)."""
        try:
            released = self.db.call("handing back claims", self.queue.hand_back, str(self.identity))
        except Exception as error:
            log.info("could not hand back this run's claims: %s", describe_error(error))
            return
        if released:
            log.info("handed back %d unfinished (photo, stage) claims", released)

    def _summarise(self, summary: RunSummary, plan: QueuePlan) -> None:
        scope = self._current_scope()
        final = self.db.call("counting results", self.queue.stage_counts, scope, plan.stages)
        if self.progress is not None:
            self.progress.update(final, self._registered, False)
        reasons = self.db.call("reading skip reasons", self.queue.skip_reasons, scope, plan.stages)
        for name, counts in final.items():
            mine = summary.stages[name]
            mine.completed = self.control.finished[(name, "completed")]
            mine.failed = self.control.finished[(name, "failed")]
            mine.unchanged = max(0, counts.completed - mine.completed)
            mine.skipped = counts.skipped
            mine.skip_reasons = reasons[name]
            mine.waiting = counts.pending
            mine.blocked = counts.blocked
        summary.errors = self.db.call("reading errors", self.queue.recent_errors, scope, plan.stages)

    def _current_scope(self) -> Scope:
        assert self._scope is not None
        return self._scope

    def _report(self, plan: QueuePlan, discovering: bool) -> None:
        """Refresh the progress display: counts from the database when due, else our own finishes added."""
        if self.progress is None:
            return
        with self.control.lock:
            finished = dict(self.control.finished)
        if self._poller.due():
            began = time.monotonic()
            try:
                self._last_counts = self.queue.stage_counts(self._current_scope(), plan.stages)
            except Exception as error:  # a blip skips one refresh; the workers decide when to give up
                if not is_transient(error):
                    raise
                log.debug("progress refresh skipped: %s", describe_error(error))
            else:
                self._finished_at_poll = finished
            self._poller.polled(began)
        if self._last_counts is None:
            return
        counts = with_own_progress(self._last_counts, finished, self._finished_at_poll)
        self.progress.update(counts, self._registered, discovering)

    def _recover_claims(self) -> None:
        """Give back claims of crashed processes of this machine now, and any claim older than the lease."""
        holders = self.db.call("finding claims", self.queue.claim_holders, self.identity.machine_prefix)
        dead = []
        for holder in holders:
            process = ProcessIdentity.parse(holder)
            if process is not None and process.machine == self.identity.machine and not process.is_alive_here():
                dead.append(holder)
        released = self.db.call("releasing claims", self.queue.release_claims, dead)
        lease = self.settings.processing_lease_seconds
        released += self.db.call("releasing expired claims", self.queue.release_expired_claims, lease)
        if released:
            log.info("re-queued %d unfinished (photo, stage) claims of stopped workers", released)

    # -- dry run -------------------------------------------------------------------------------

    def _dry_run(self, root: Path, collection: Collection, scope: Scope, started: float) -> RunSummary:
        stats = DiscoveryStats()
        summary = RunSummary(
            root=str(root), collection=collection.name,
            stages={name: StageSummary() for name in self.options.stages}, dry_run=True,
        )  # fmt: skip
        registrar = Registrar(self.db, collection, lambda _: None)
        for chunk in chunked(iter_images(root, stats, self.options.max_photos), REGISTRATION_CHUNK):
            found = registrar.classify(chunk)
            summary.new += found.new
            summary.changed += found.changed
            summary.unchanged += found.unchanged
        counts = self.db.call("counting", self.queue.stage_counts, scope, self.options.stages)
        for name, stage_summary in summary.stages.items():
            existing = counts[name]
            would_redo = (
                existing.total
                if self.options.force
                else existing.pending + (existing.failed if self.options.retry_failed else 0)
            )
            stage_summary.completed = summary.new + summary.changed + would_redo
            stage_summary.unchanged = max(0, existing.completed - (existing.total if self.options.force else 0))
            stage_summary.skipped = existing.skipped
        summary.discovered = stats.images
        summary.ignored_files = stats.ignored_files
        summary.symlink_loops = stats.symlink_loops
        summary.elapsed_seconds = time.monotonic() - started
        return summary


def default_parallel() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
