"""LocalProcessor runs around the queue: worker errors, foreign claims, moved roots, blocked stages."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import psycopg
import pytest

from photodb.database.models import StageCounts
from photodb.database.queue_repository import Cycle, QueuePlan, QueueRepository
from photodb.database.repository import PhotoRepository, Scope
from photodb.processors.identity import ProcessIdentity, machine_id
from photodb.processors.local_processor import LocalProcessor, RunOptions
from photodb.processors.progress import PROGRESS_MIN_INTERVAL, ProgressPoller, with_own_progress
from photodb.processors.queue_worker import QueueWorker, RunControl, WorkerContext
from photodb.stages import implemented_stages
from photodb.stages.base import StageContext
from tests.cli import PROCESS_LOCAL, cli_env
from tests.imaging import make_library, write_jpeg
from tests.processors import tiny_stages

LOCAL = ["normalize", "metadata"]


def run(settings, db, root, **options):
    return LocalProcessor(settings, db, RunOptions(stages=options.pop("stages", LOCAL), **options)).run(root)


def status_counts(db, stage=None):
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM processing_status WHERE %(s)s::text IS NULL OR stage = %(s)s GROUP BY 1",
            {"s": stage},
        ).fetchall()
    return dict(rows)


def test_an_error_in_a_workers_queue_calls_ends_the_run_and_says_so(settings, db, tmp_path):
    make_library(tmp_path / "lib", 6)
    with db.connection() as conn:  # a real database error, raised when the queue records a result
        conn.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
               CREATE TRIGGER refuse BEFORE UPDATE ON processing_status FOR EACH ROW
               WHEN (NEW.status = 'completed' AND NEW.stage = 'metadata') EXECUTE FUNCTION refuse()"""
        )
    summary = run(settings, db, tmp_path / "lib", parallel=2)
    assert summary.stopped_by is not None
    assert "photodb-worker-" in summary.stopped_by and "refused by the test" in summary.stopped_by
    counts = status_counts(db)
    assert "processing" not in counts, "the claims of the stopped run are handed back"
    assert counts.get("pending", 0) > 0


def test_the_cli_exits_1_and_its_json_summary_names_the_error(tmp_path, database_url):
    make_library(tmp_path / "lib", 3)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
               CREATE TRIGGER refuse BEFORE UPDATE ON processing_status FOR EACH ROW
               WHEN (NEW.status = 'completed') EXECUTE FUNCTION refuse()"""
        )
    result = subprocess.run(
        [PROCESS_LOCAL, str(tmp_path / "lib"), "--stage", "normalize", "--json"],
        env=cli_env(tmp_path, database_url), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "refused by the test" in json.loads(result.stdout)["stopped_by"]
    assert "refused by the test" in result.stderr and "Traceback" not in result.stderr


def test_live_claims_of_another_machine_with_the_same_host_name_are_left_alone(settings, db, tmp_path):
    make_library(tmp_path / "lib", 2)
    run(settings, db, tmp_path / "lib")
    dead_pid = 2**22 + 17  # above any pid_max: no such process here
    twin = ProcessIdentity(socket.gethostname(), "another-box", dead_pid, 1).holder(0)
    crashed_here = ProcessIdentity(socket.gethostname(), machine_id(), dead_pid, 1).holder(0)
    with db.connection() as conn:
        conn.execute(
            """UPDATE processing_status SET status = 'processing', claimed_at = now(),
                   claimed_by = CASE stage WHEN 'normalize' THEN %s ELSE %s END""",
            (twin, crashed_here),
        )
    summary = run(settings, db, tmp_path / "lib", stages=["metadata"])  # the twin's normalize claims stay live
    assert summary.stages["metadata"].completed == 2, "a dead process of this machine is recovered"
    with db.connection() as conn:
        held = conn.execute(
            "SELECT count(*) FROM processing_status WHERE status = 'processing' AND claimed_by = %s", (twin,)
        ).fetchone()[0]
    assert held == 2, "the same pid on another machine says nothing about that machine's worker"


def test_a_process_whose_root_moved_up_reads_files_from_the_new_root(settings, db, tmp_path):
    make_library(tmp_path / "lib", 4)
    run(settings, db, tmp_path / "lib" / "album0")
    repo = PhotoRepository(db)
    stale = repo.get_or_create_collection("default")  # what a running process read at its start
    assert stale.root_path == (tmp_path / "lib" / "album0").resolve()
    run(settings, db, tmp_path / "lib")  # another process moves the root up
    with db.connection() as conn:
        photo_id = conn.execute("SELECT id FROM photo WHERE filename = 'album0/photo_0000.jpg'").fetchone()[0]
    photo = repo.get_photo(photo_id)
    source = StageContext(settings, db, stale).source_path(photo)
    assert source == (tmp_path / "lib" / "album0" / "photo_0000.jpg").resolve() and source.is_file()


def test_a_sub_folder_run_registers_names_relative_to_the_collection_root(settings, db, tmp_path):
    make_library(tmp_path / "lib", 4)
    run(settings, db, tmp_path / "lib" / "album1")
    run(settings, db, tmp_path / "lib")
    write_jpeg(tmp_path / "lib" / "album1" / "late.jpg", seed=7)
    summary = run(settings, db, tmp_path / "lib" / "album1")
    assert summary.new == 1 and summary.stages["normalize"].completed == 1
    with db.connection() as conn:
        names = sorted(r[0] for r in conn.execute("SELECT filename FROM photo"))
    assert names == [
        "album0/photo_0000.jpg", "album0/photo_0002.jpg",
        "album1/late.jpg", "album1/photo_0001.jpg", "album1/photo_0003.jpg",
    ]  # fmt: skip


@pytest.mark.timeout(300)
def test_two_processes_started_on_a_parent_folder_move_the_root_once(tmp_path, database_url):
    make_library(tmp_path / "lib", 6)
    env = cli_env(tmp_path, database_url)
    first = subprocess.run([PROCESS_LOCAL, str(tmp_path / "lib" / "album0"), "--stage", "metadata", "--json"],
                           env=env, capture_output=True, text=True, timeout=200)  # fmt: skip
    assert first.returncode == 0, first.stderr
    with psycopg.connect(database_url) as gate:
        # Hold the collection row so both processes read the old root before either can move it.
        gate.execute("SELECT 1 FROM collection WHERE name = 'default' FOR UPDATE")
        runs = [
            subprocess.Popen([PROCESS_LOCAL, str(tmp_path / "lib"), "--stage", "metadata", "--json"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]  # fmt: skip
        with psycopg.connect(database_url, autocommit=True) as watch:
            for _ in range(6000):
                waiting = watch.execute(
                    """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                       AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')"""
                ).fetchone()[0]
                if waiting >= 2 or any(r.poll() is not None for r in runs):
                    break
                time.sleep(0.02)
        gate.rollback()
    outputs = [r.communicate(timeout=200) for r in runs]
    assert all(r.returncode == 0 for r in runs), [err for _, err in outputs]
    with psycopg.connect(database_url) as conn:
        names = sorted(r[0] for r in conn.execute("SELECT filename FROM photo"))
        root = conn.execute("SELECT root_path FROM collection WHERE name = 'default'").fetchone()[0]
    assert root == str((tmp_path / "lib").resolve())
    assert names == sorted(f"album{i % 2}/photo_{i:04d}.jpg" for i in range(6))


def test_progress_polls_back_off_from_a_slow_count_query():
    now = [100.0]
    poller = ProgressPoller(clock=lambda: now[0])
    assert poller.due()
    poller.polled(started=now[0] - 0.01)  # a fast query: at most once per PROGRESS_MIN_INTERVAL
    now[0] += PROGRESS_MIN_INTERVAL / 2
    assert not poller.due()
    now[0] += PROGRESS_MIN_INTERVAL / 2
    assert poller.due()
    poller.polled(started=now[0] - 0.5)  # a query that took 0.5 s: the next one waits ten times that
    now[0] += 4.9
    assert not poller.due()
    now[0] += 0.2
    assert poller.due()


def test_retry_failed_reruns_failed_pairs_and_a_failed_normalize_blocks_detection(settings, db, tmp_path):
    write_jpeg(tmp_path / "lib" / "big.jpg", size=(400, 300), seed=1)
    write_jpeg(tmp_path / "lib" / "small.jpg", size=(40, 30), seed=2)
    offline = settings.model_copy(update={"detection_backend": "offline", "detection_force_cpu": True})
    tight = offline.model_copy(update={"max_image_pixels": 5000})  # big.jpg trips the bomb guard
    stages = ["normalize", "detection"]
    first = LocalProcessor(tight, db, RunOptions(stages=stages)).run(tmp_path / "lib")
    assert (first.stages["normalize"].completed, first.stages["normalize"].failed) == (1, 1)
    assert (first.stages["detection"].completed, first.stages["detection"].blocked) == (1, 1), first
    assert status_counts(db, "detection") == {"completed": 1, "blocked": 1}

    again = LocalProcessor(offline, db, RunOptions(stages=stages)).run(tmp_path / "lib")
    assert again.stages["normalize"].completed == 0 and again.stages["detection"].blocked == 1

    retried = LocalProcessor(offline, db, RunOptions(stages=stages, retry_failed=True)).run(tmp_path / "lib")
    assert retried.stages["normalize"].completed == 1 and retried.stages["detection"].completed == 1
    others = len(implemented_stages()) - len(stages)  # metadata and later stages: not part of these runs
    assert status_counts(db) == {"completed": 4, "pending": 2 * others}


def test_between_polls_the_display_moves_on_by_this_processs_own_finishes():
    last = {"normalize": StageCounts(pending=5, processing=2, completed=3)}
    at_poll = {("normalize", "completed"): 1}
    now = with_own_progress(last, {("normalize", "completed"): 4, ("normalize", "failed"): 1}, at_poll)
    assert now["normalize"] == StageCounts(pending=3, processing=0, completed=6, failed=1)


class LastChunkDuringAnEmptyClaim(QueueRepository):
    """The registrar commits its last chunk and says it is done just after a worker's claim came back empty."""

    def __init__(self, db, control: RunControl, collection_id: int) -> None:
        super().__init__(db)
        self.control, self.collection_id, self.registered = control, collection_id, False

    def settle_and_claim(self, *args, **kwargs) -> Cycle:
        cycle = super().settle_and_claim(*args, **kwargs)
        if not cycle.claims and not self.registered:
            self.registered = True
            with self.db.connection() as conn:
                conn.execute(
                    """WITH p AS (INSERT INTO photo (collection_id, filename) VALUES (%s, 'late.jpg') RETURNING id)
                       INSERT INTO processing_status (photo_id, stage) SELECT id, 'age_gender' FROM p""",
                    (self.collection_id,),
                )
            self.control.registration_done.set()
        return cycle


def test_a_worker_never_stops_before_the_chunk_registered_during_its_last_empty_claim(settings, db, monkeypatch):
    tiny_stages.register(monkeypatch, "age_gender")
    collection = PhotoRepository(db).get_or_create_collection("default")
    control = RunControl()
    context = WorkerContext(
        db=db, queue=LastChunkDuringAnEmptyClaim(db, control, collection.id), photos=PhotoRepository(db),
        stages={"age_gender": tiny_stages.TinyAgeStage(StageContext(settings, db, collection))},
        plan=QueuePlan(stages=("age_gender",)), batch_size=4, lease_seconds=900,
        scope=lambda: Scope(collection.id), recover_claims=lambda: None,
    )  # fmt: skip
    QueueWorker(context, control, "host@machine:1:1/0").run()
    assert control.failure is None
    assert tiny_stages.processed("age_gender") == ["late.jpg"]
    assert status_counts(db) == {"completed": 1}
