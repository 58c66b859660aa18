"""The queue's statements and the blip handling around them, on the real server."""

from __future__ import annotations

import time

import psycopg
import pytest

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.faults import DatabaseUnreachable, OutageClock, is_transient
from photodb.database.models import StageCounts
from photodb.database.queue_repository import Outcome, QueuePlan, QueueRepository
from photodb.database.repository import PhotoRepository, Scope

PLAN = QueuePlan(
    stages=("normalize", "metadata", "detection"),
    requires={"detection": ("normalize",)},
    ancestors={"detection": ("normalize",)},
)
HOLDER = "host@machine:1:1/0"


@pytest.fixture
def queue(db: Database) -> tuple[QueueRepository, Scope]:
    collection = PhotoRepository(db).get_or_create_collection("default")
    with db.connection() as conn:
        conn.execute(
            """INSERT INTO photo (collection_id, filename)
               SELECT %s, 'p' || g || '.jpg' FROM generate_series(1, 4) g""",
            (collection.id,),
        )
        conn.execute(
            """INSERT INTO processing_status (photo_id, stage)
               SELECT p.id, s FROM photo p, unnest(ARRAY['normalize', 'metadata', 'detection']) s"""
        )
    return QueueRepository(db), Scope(collection.id)


def statuses(db: Database) -> dict[tuple[int, str], tuple[str, int, str | None]]:
    with db.connection() as conn:
        rows = conn.execute("SELECT photo_id, stage, status, attempts, claimed_by FROM processing_status").fetchall()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def terminate_all(admin_url: str, db: Database) -> int:
    dbname = psycopg.conninfo.conninfo_to_dict(db.url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", (dbname,)
        ).fetchone()[0]  # type: ignore[index]


def test_one_statement_settles_a_batch_and_claims_the_next_in_photo_order(db, queue):
    repo, scope = queue
    first = repo.settle_and_claim(HOLDER, [], scope, PLAN, 3)
    assert [(c.stage, c.attempts) for c in first.claims] == [("normalize", 1), ("metadata", 1), ("normalize", 1)]
    assert first.claims[0].photo_id == first.claims[1].photo_id < first.claims[2].photo_id
    done = [Outcome(c, "completed") for c in first.claims]
    second = repo.settle_and_claim(HOLDER, done, scope, PLAN, 2)
    assert sorted(second.settled) == [("metadata", "completed"), ("normalize", "completed"), ("normalize", "completed")]
    assert len(second.claims) == 2
    # the answer to that call was lost: the retry settles nothing twice and takes up what it holds
    retried = repo.settle_and_claim(HOLDER, done, scope, PLAN, 2, retry=True)
    assert set(retried.claims) == set(second.claims)
    assert sorted(retried.settled) == sorted(second.settled)  # same rows, still this holder's
    rows = statuses(db)
    assert [rows[(c.photo_id, c.stage)][:2] for c in first.claims] == [("completed", 1)] * 3
    assert [rows[(c.photo_id, c.stage)][:2] for c in second.claims] == [("processing", 1)] * 2


def test_a_failure_blocks_the_photos_dependent_stages_until_it_is_requeued(db, queue):
    repo, scope = queue
    claims = repo.settle_and_claim(HOLDER, [], scope, PLAN, 2).claims  # photo 1: normalize, metadata
    photo = claims[0].photo_id
    outcomes = [Outcome(claims[0], "failed", "broken"), Outcome(claims[1], "completed")]
    rest = repo.settle_and_claim(HOLDER, outcomes, scope, PLAN, 100)
    assert statuses(db)[(photo, "detection")][0] == "blocked"
    assert photo not in {c.photo_id for c in rest.claims}
    counts = repo.stage_counts(scope, PLAN.stages)["detection"]
    assert (counts.blocked, counts.pending) == (1, 3)  # the others wait on their normalize

    repo.settle_and_claim(HOLDER, [Outcome(c, "pending") for c in rest.claims], scope, PLAN, 0)
    assert repo.requeue_failed(scope, ["normalize"]) == 1
    repo.refresh_blocked(PLAN, scope=scope)
    assert statuses(db)[(photo, "detection")][0] == "pending"
    handed_back = statuses(db)[(rest.claims[0].photo_id, rest.claims[0].stage)]
    assert handed_back == ("pending", 0, None), "a handed-back claim does not count as an attempt"


def test_pending_rows_behind_an_old_failure_are_blocked_when_a_run_starts(db, queue):
    repo, scope = queue
    with db.connection() as conn:
        photo = conn.execute(
            "UPDATE processing_status SET status = 'failed' WHERE stage = 'normalize' "
            "AND photo_id = (SELECT min(id) FROM photo) RETURNING photo_id"
        ).fetchone()[0]
    repo.refresh_blocked(PLAN, scope=scope)
    assert statuses(db)[(photo, "detection")][0] == "blocked"


def test_the_pool_replaces_connections_the_server_dropped(db, admin_url):
    with db.connection() as conn:
        conn.execute("SELECT 1")
    assert terminate_all(admin_url, db) > 0
    with db.connection() as conn:  # checked on checkout: a dead connection is never handed out
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_transient_errors_are_told_apart_and_retried(db, admin_url):
    with db.connection() as conn, pytest.raises(psycopg.Error) as syntax:
        conn.execute("SELEC 1")
    assert not is_transient(syntax.value)
    conn = psycopg.connect(db.url, autocommit=True)
    terminate_all(admin_url, db)
    with pytest.raises(psycopg.OperationalError) as lost:
        conn.execute("SELECT 1")
    assert is_transient(lost.value)
    conn.close()

    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            terminate_all(admin_url, db)
        with db.connection() as pooled:
            pooled.execute("SELECT pg_sleep(0)")
            if len(calls) == 1:
                with psycopg.connect(db.url, autocommit=True) as other:
                    other.execute("SELECT pg_terminate_backend(%s)", (pooled.info.backend_pid,))
                pooled.execute("SELECT 1")  # the server closed this connection under us
            return len(calls)

    assert db.retrying(flaky, "a test") == 2


def test_an_outage_past_the_deadline_gives_one_clear_error_without_the_password():
    url = "postgresql://photodb:secret-pw@127.0.0.1:9/photodb"
    clock = OutageClock(deadline_seconds=0.5)
    with pytest.raises(DatabaseUnreachable) as gone:
        clock.retrying(lambda: psycopg.connect(url, connect_timeout=1), "connecting")
    message = str(gone.value)
    assert message.startswith("database unreachable for 0.5 s: ") and "\n" not in message
    assert "secret-pw" not in message
    assert clock.give_up.is_set()


def test_a_blip_at_the_end_of_an_operation_longer_than_the_deadline_is_retried(admin_url):
    """The deadline counts from the first failure, not from the start of a long stage."""
    clock = OutageClock(deadline_seconds=0.3)
    calls: list[int] = []

    def long_stage_then_blip() -> str:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.5)  # the stage's own work, longer than the deadline
            with psycopg.connect(admin_url) as conn:
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return "done"

    assert clock.retrying(long_stage_then_blip, "a long stage") == "done"
    assert len(calls) == 2 and not clock.give_up.is_set()


def test_the_deadline_setting_reaches_the_database_handle(settings: Settings):
    with Database(settings.model_copy(update={"database_retry_deadline_seconds": 7.5}), pool_size=1) as db:
        assert db.outage.deadline_seconds == 7.5


def test_a_skipped_claim_counts_no_attempt_and_frees_its_dependents(db, queue):
    repo, scope = queue
    claims = repo.settle_and_claim(HOLDER, [], scope, PLAN, 1).claims
    assert [(c.stage, c.attempts) for c in claims] == [("normalize", 1)]
    skipped = [Outcome(claims[0], "skipped", "model not found")]
    cycle = repo.settle_and_claim(HOLDER, skipped, scope, PLAN, 3)
    photo = claims[0].photo_id
    assert cycle.settled == [("normalize", "skipped")]
    repo.settle_and_claim(HOLDER, [Outcome(c, "pending") for c in cycle.claims], scope, PLAN, 0)
    # the statement that settled it could not see it (one snapshot); the next claim can
    later = repo.settle_and_claim(HOLDER, [], scope, PLAN, 100).claims
    assert (photo, "detection") in {(c.photo_id, c.stage) for c in later}, "a skipped normalize holds nothing back"
    again = repo.settle_and_claim(HOLDER, skipped, scope, PLAN, 0, retry=True)  # the answer was lost
    assert again.settled == [("normalize", "skipped")]
    assert statuses(db)[(photo, "normalize")] == ("skipped", 0, HOLDER), "settled twice, uncounted once"
    with db.connection() as conn:
        error = conn.execute(
            "SELECT error_message FROM processing_status WHERE photo_id = %s AND stage = 'normalize'", (photo,)
        ).fetchone()
    assert error == ("model not found",)


def test_a_stage_that_cannot_run_is_never_claimed_and_its_pending_rows_are_skipped_in_one_go(db, queue):
    repo, scope = queue
    plan = QueuePlan(
        stages=PLAN.stages, requires=PLAN.requires, ancestors=PLAN.ancestors, skipping={"normalize": "no model"}
    )
    with db.connection() as conn:
        first, second, *others = [r[0] for r in conn.execute("SELECT id FROM photo ORDER BY id")]
        conn.execute(
            "UPDATE processing_status SET status = 'completed' WHERE photo_id = %s AND stage = 'normalize'", (second,)
        )
    taken = repo.settle_and_claim(HOLDER, [], scope, plan, 100).claims
    assert {(c.photo_id, c.stage) for c in taken if c.stage != "metadata"} == {(second, "detection")}, (
        "normalize is never claimed; detection waits on it where it is still pending"
    )
    repo.settle_and_claim(HOLDER, [Outcome(c, "pending") for c in taken], scope, plan, 0)

    assert repo.skip_unavailable(plan, photo_ids=[first]) == 1
    assert repo.skip_unavailable(plan, scope=scope) == len(others), "completed work is left alone"
    rows = statuses(db)
    assert [rows[(p, "normalize")][0] for p in (first, second, *others)] == ["skipped", "completed"] + [
        "skipped"
    ] * len(others)
    assert all(rows[(p, "normalize")][1:] == (0, None) for p in (first, *others)), "no attempt, no holder"
    assert repo.stage_counts(scope, plan.stages)["normalize"] == StageCounts(completed=1, skipped=3)
    assert repo.skip_reasons(scope, plan.stages)["normalize"] == {"no model": 3}
    detection = {
        c.photo_id for c in repo.settle_and_claim(HOLDER, [], scope, plan, 100).claims if c.stage == "detection"
    }
    assert detection == {first, second, *others}


def test_skipped_rows_go_back_to_pending_for_the_stages_that_can_run_now(db, queue):
    repo, scope = queue
    with db.connection() as conn:
        conn.execute(
            """UPDATE processing_status SET status = 'skipped', error_message = 'no model', processed_at = now()
               WHERE stage IN ('normalize', 'metadata')"""
        )
    assert repo.requeue_skipped(scope, {"metadata": "no model"}) == 0, "skipped for the reason it has now"
    assert repo.requeue_skipped(scope, {"normalize": None}) == 4
    assert repo.requeue_skipped(Scope(scope.collection_id, "elsewhere"), {"metadata": None}) == 0
    counts = repo.stage_counts(scope, PLAN.stages)
    assert (counts["normalize"].pending, counts["metadata"].skipped) == (4, 4)
    assert repo.skip_reasons(scope, ["normalize"]) == {"normalize": {}}
    assert repo.requeue_skipped(scope, {"metadata": "no model; labels stored"}) == 4, "it can do more now"
