"""Runs the local stages over a folder: register files, then let worker threads drain the queue.

Registration (walk, stat, hash, upsert) runs in its own thread and feeds the queue in chunks,
so workers start on the first photos while the walk is still going. Workers claim
(photo, stage) rows from PostgreSQL, which is what lets several processes on several hosts
share one library safely.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Protocol, TypeVar

import psutil

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.models import Claim, Collection, StageCounts, StageError
from photodb.database.repository import FileFacts, PhotoRepository, Scope
from photodb.stages import implemented_stages, stage_class
from photodb.stages.base import BaseStage, StageContext, StageFailure, StageUnavailable
from photodb.utils.files import DiscoveryStats, content_hash, file_stat, iter_images, relative_name

log = logging.getLogger(__name__)

REGISTRATION_CHUNK = 256
MAX_ERROR_LENGTH = 2000
T = TypeVar("T")


class RunError(RuntimeError):
    """The run cannot start (bad folder, foreign collection root, unavailable stage)."""


class ProgressSink(Protocol):
    def update(self, counts: dict[str, StageCounts], registered: int, discovering: bool) -> None: ...


@dataclass
class RunOptions:
    stages: list[str]
    parallel: int = 1
    force: bool = False
    dry_run: bool = False
    max_photos: int | None = None
    retry_failed: bool = False
    collection: str = "default"


@dataclass
class StageSummary:
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    blocked: int = 0


@dataclass
class RunSummary:
    root: str
    collection: str
    stages: dict[str, StageSummary]
    discovered: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    ignored_files: int = 0
    symlink_loops: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)
    errors: list[StageError] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    dry_run: bool = False


def worker_identity() -> str:
    """host:pid:start-time, which tells a live claim holder from a dead one with a recycled pid."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{int(me.create_time() * 1000)}"


def holder_is_alive(holder: str) -> bool:
    try:
        _, pid, started = holder.rsplit(":", 2)
        return int(psutil.Process(int(pid)).create_time() * 1000) == int(started)
    except (ValueError, psutil.Error):
        return False


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class LocalProcessor:
    def __init__(
        self, settings: Settings, db: Database, options: RunOptions, progress: ProgressSink | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.options = options
        self.progress = progress
        self.repo = PhotoRepository(db)
        self.worker_id = worker_identity()
        self._stop = threading.Event()
        self._registration_done = threading.Event()
        self._done_by_me: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._registered = 0
        self._registration_error: BaseException | None = None

    # -- set-up --------------------------------------------------------------------------------

    def _resolve(self, root: Path) -> tuple[Collection, Scope]:
        root = root.expanduser()
        if not root.exists():
            raise RunError(f"folder not found: {root}")
        if not root.is_dir():
            raise RunError(f"not a folder: {root}")
        root = root.resolve()
        collection = self.repo.get_or_create_collection(self.options.collection)
        if collection.root_path is None:
            collection = self.repo.set_collection_root(collection.id, root)
        assert collection.root_path is not None
        if collection.root_path != root and collection.root_path.is_relative_to(root):
            moved_under = collection.root_path.relative_to(root).as_posix()
            log.info("collection '%s' now starts at %s (was %s)", collection.name, root, collection.root_path)
            collection = self.repo.reroot_collection(collection.id, root, moved_under)
        assert collection.root_path is not None
        try:
            prefix = root.relative_to(collection.root_path).as_posix()
        except ValueError:
            raise RunError(
                f"collection '{collection.name}' lives in {collection.root_path}; {root} is outside it. "
                "Use --collection NAME to index another library."
            ) from None
        return collection, Scope(collection.id, None if prefix == "." else prefix)

    def _open_stages(self, collection: Collection) -> tuple[dict[str, BaseStage], dict[str, str]]:
        context = StageContext(self.settings, self.db, collection, parallel=self.options.parallel)
        opened: dict[str, BaseStage] = {}
        unavailable: dict[str, str] = {}
        explicit = set(self.options.stages) != set(implemented_stages())
        for name in self.options.stages:
            try:
                opened[name] = stage_class(name)(context)
            except StageUnavailable as error:
                if explicit:
                    for stage in opened.values():
                        stage.close()
                    raise RunError(f"stage '{name}' cannot run: {error}") from error
                log.warning("skipping stage %s: %s", name, error)
                unavailable[name] = str(error)
        return opened, unavailable

    # -- the run -------------------------------------------------------------------------------

    def run(self, root: Path) -> RunSummary:
        started = time.monotonic()
        collection, scope = self._resolve(root)
        assert collection.root_path is not None
        if self.options.dry_run:
            return self._dry_run(root.expanduser().resolve(), collection, scope, started)

        stages, unavailable = self._open_stages(collection)
        summary = RunSummary(
            root=str(root), collection=collection.name,
            stages={name: StageSummary() for name in stages}, unavailable=unavailable,
        )  # fmt: skip
        if not stages:
            summary.elapsed_seconds = time.monotonic() - started
            return summary
        self._recover_claims()
        if self.options.retry_failed:
            self.repo.requeue_failed(scope, list(stages))

        stats = DiscoveryStats()
        registrar = threading.Thread(
            target=self._register_all,
            args=(root.expanduser().resolve(), collection, stats, summary),
            name="photodb-register", daemon=True,
        )  # fmt: skip
        workers = [
            threading.Thread(target=self._work, args=(scope, stages), name=f"photodb-worker-{i}", daemon=True)
            for i in range(max(1, self.options.parallel))
        ]
        registrar.start()
        for worker in workers:
            worker.start()
        try:
            while any(w.is_alive() for w in workers):
                self._report(scope, list(stages), discovering=registrar.is_alive())
                for worker in workers:
                    worker.join(timeout=0.5 / len(workers))
        finally:
            self._stop.set()
            registrar.join(timeout=10)
            for worker in workers:
                worker.join(timeout=60)
            self.repo.release_claims([self.worker_id])
            for stage in stages.values():
                stage.close()
        if self._registration_error is not None:
            raise RunError(f"registering files failed: {self._registration_error}") from self._registration_error

        self._report(scope, list(stages), discovering=False)
        summary.discovered = stats.images
        summary.ignored_files = stats.ignored_files
        summary.symlink_loops = stats.symlink_loops
        final = self.repo.stage_counts(scope, list(stages))
        for name, counts in final.items():
            mine = summary.stages[name]
            mine.completed = self._done_by_me[(name, "completed")]
            mine.failed = self._done_by_me[(name, "failed")]
            mine.skipped = max(0, counts.completed - mine.completed)
            mine.blocked = counts.pending
        summary.errors = self.repo.recent_errors(scope, list(stages))
        summary.elapsed_seconds = time.monotonic() - started
        return summary

    def _report(self, scope: Scope, stages: list[str], discovering: bool) -> None:
        if self.progress is not None:
            self.progress.update(self.repo.stage_counts(scope, stages), self._registered, discovering)

    def _recover_claims(self) -> None:
        """Give back claims of crashed local processes now, and any claim older than the lease."""
        host = socket.gethostname() + ":"
        dead = [h for h in self.repo.claim_holders(host) if not holder_is_alive(h)]
        released = self.repo.release_claims(dead)
        released += self.repo.release_expired_claims(self.settings.processing_lease_seconds)
        if released:
            log.info("re-queued %d unfinished (photo, stage) claims of stopped workers", released)

    def _register_all(self, root: Path, collection: Collection, stats: DiscoveryStats, summary: RunSummary) -> None:
        try:
            files = iter_images(root, stats, self.options.max_photos)
            stage_names = implemented_stages()
            force = list(summary.stages) if self.options.force else []
            for chunk in chunked(files, REGISTRATION_CHUNK):
                if self._stop.is_set():
                    return
                new_or_changed, touched, names, known_count = self._classify(chunk, root, collection.id)
                self.repo.register(collection.id, new_or_changed, touched, names, stage_names, force)
                summary.new += len([f for f in new_or_changed if f.filename not in known_count])
                summary.changed += len([f for f in new_or_changed if f.filename in known_count])
                summary.unchanged += len(names) - len(new_or_changed)
                with self._lock:
                    self._registered += len(names)
        except BaseException as error:  # surfaced by run(); workers must not wait forever
            self._registration_error = error
            self._stop.set()
        finally:
            self._registration_done.set()

    def _classify(
        self, chunk: list[Path], root: Path, collection_id: int
    ) -> tuple[list[FileFacts], list[FileFacts], list[str], set[str]]:
        names = [relative_name(path, root) for path in chunk]
        known = self.repo.known_files(collection_id, names)
        new_or_changed: list[FileFacts] = []
        touched: list[FileFacts] = []
        for path, name in zip(chunk, names, strict=True):
            stat = file_stat(path)
            size, mtime = stat if stat else (None, None)
            previous = known.get(name)
            if previous and stat and previous.size == size and previous.mtime == mtime:
                continue
            facts = FileFacts(name, size, mtime, content_hash(path) if stat else None)
            if previous and facts.content_hash is not None and previous.content_hash == facts.content_hash:
                touched.append(facts)
            elif not previous or previous.content_hash != facts.content_hash or previous.size != size:
                new_or_changed.append(facts)
        return new_or_changed, touched, names, set(known)

    def _work(self, scope: Scope, stages: dict[str, BaseStage]) -> None:
        names = list(stages)
        dependencies = {name: [d for d in type(stage).depends_on if d in names] for name, stage in stages.items()}
        idle_since: float | None = None
        while not self._stop.is_set():
            claims = self.repo.claim(self.worker_id, scope, names, dependencies, self.settings.claim_batch_size)
            if claims:
                idle_since = None
                for index, claim in enumerate(claims):
                    if self._stop.is_set():
                        self.repo.release_claims_of(self.worker_id, claims[index:])
                        return
                    self._run_claim(stages[claim.stage], claim)
                continue
            if self._registration_done.is_set() and not self.repo.work_in_flight(scope, names):
                return
            now = time.monotonic()
            idle_since = idle_since or now
            if now - idle_since > self.settings.processing_lease_seconds / 4:
                self._recover_claims()
                idle_since = now
            # Back off while others hold the claims this worker waits on: 20 ms up to half a second.
            self._stop.wait(min(0.5, 0.02 + (now - idle_since) / 10))

    def _run_claim(self, stage: BaseStage, claim: Claim) -> None:
        error: str | None = None
        try:
            stage.process(self.repo.get_photo(claim.photo_id))
        except StageFailure as failure:
            error = str(failure)
        except Exception as unexpected:  # any photo-specific crash is recorded, the run goes on
            log.debug("stage %s failed on photo %s", claim.stage, claim.photo_id, exc_info=True)
            error = f"{type(unexpected).__name__}: {unexpected}"
        if error is not None:
            error = error.replace("\x00", "")[:MAX_ERROR_LENGTH] or "failed without a message"
            log.info("%s failed for photo %s: %s", claim.stage, claim.photo_id, error)
        if self.repo.finish(self.worker_id, claim, error):
            with self._lock:
                self._done_by_me[(claim.stage, "failed" if error else "completed")] += 1

    # -- dry run -------------------------------------------------------------------------------

    def _dry_run(self, root: Path, collection: Collection, scope: Scope, started: float) -> RunSummary:
        stats = DiscoveryStats()
        summary = RunSummary(
            root=str(root), collection=collection.name,
            stages={name: StageSummary() for name in self.options.stages}, dry_run=True,
        )  # fmt: skip
        for chunk in chunked(iter_images(root, stats, self.options.max_photos), REGISTRATION_CHUNK):
            new_or_changed, _, names, known = self._classify(chunk, root, collection.id)
            summary.new += len([f for f in new_or_changed if f.filename not in known])
            summary.changed += len([f for f in new_or_changed if f.filename in known])
            summary.unchanged += len(names) - len(new_or_changed)
        counts = self.repo.stage_counts(scope, self.options.stages)
        for name, stage_summary in summary.stages.items():
            existing = counts[name]
            would_redo = (
                existing.total
                if self.options.force
                else existing.pending + (existing.failed if self.options.retry_failed else 0)
            )
            stage_summary.completed = summary.new + summary.changed + would_redo
            stage_summary.skipped = max(0, existing.completed - (existing.total if self.options.force else 0))
        summary.discovered = stats.images
        summary.ignored_files = stats.ignored_files
        summary.symlink_loops = stats.symlink_loops
        summary.elapsed_seconds = time.monotonic() - started
        return summary


def default_parallel() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
