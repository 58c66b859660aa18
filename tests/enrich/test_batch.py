"""Batch mode through the real anthropic SDK: submit, poll, stream results, map them back by custom_id."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.enrich_repository import EnrichRepository
from photodb.database.repository import Scope
from photodb.enrich.pricing import Usage, cost_cents
from photodb.enrich.runner import EnrichOptions
from tests.enrich.anthropic_server import AnthropicServer
from tests.enrich.conftest import add_photos, runner_for, statuses
from tests.enrich.protocol import analysis, message

BATCH = EnrichOptions()


def job(db: Database) -> dict:
    with db.connection() as conn:
        (job_id,) = conn.execute("SELECT max(id) FROM batch_job").fetchone()
    return EnrichRepository(db).batch_job(job_id)


def test_batch_lifecycle_end_to_end(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 3)
    server.polls_to_end = 2
    runner = runner_for(enrich_settings, db)
    submitted = runner.run(Scope(1), BATCH)

    assert submitted.sent == 3 and len(submitted.batches_submitted) == 1
    (batch_id,) = submitted.batches_submitted
    assert server.batches[batch_id].custom_ids == [f"photo-{i}" for i in ids]
    assert statuses(db) == dict.fromkeys(ids, "submitted")
    row = job(db)
    assert (row["provider_batch_id"], row["status"], row["photo_ids"]) == (batch_id, "submitted", ids)
    assert row["estimated_cost_cents"] > 0
    params = server.batches[batch_id].params[0]
    assert params["system"][0]["cache_control"] == {"type": "ephemeral"}

    first = runner.check_batches(wait=False)  # one look: still running
    assert first.batches_open == 1 and statuses(db) == dict.fromkeys(ids, "submitted")
    assert job(db)["status"] == "in_progress"
    done = runner.check_batches(wait=True)
    assert (done.completed, done.failed, done.batches_open) == (3, 0, 0)
    assert statuses(db) == dict.fromkeys(ids, "completed")
    row = job(db)
    assert (row["status"], row["processed_count"], row["failed_count"]) == ("completed", 3, 0)
    assert (row["total_input_tokens"], row["total_output_tokens"], row["total_cache_read_tokens"]) == (3600, 1200, 2700)
    with db.connection() as conn:
        descriptions = conn.execute("SELECT photo_id, description, batch_id FROM llm_analysis ORDER BY 1").fetchall()
    assert descriptions == [(i, f"Photo photo-{i}.", row["id"]) for i in ids]  # mapped back by custom_id


def test_cost_figures_for_a_known_token_count(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    # claude-sonnet-5-5: $2 input, $10 output, $2.50 cache write, $0.10 cache read per MTok; batch half.
    assert cost_cents("claude-sonnet-5-5", Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000), batch=False) == 1460
    assert cost_cents("claude-sonnet-5-5", Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000), batch=True) == 730
    assert cost_cents("anthropic.claude-haiku-4-5-20251001-v1:0", Usage(1_000_000), batch=False) == 100
    assert cost_cents("claude-unknown-9", Usage(1), batch=False) is None
    add_photos(db, enrich_settings, tmp_path / "lib", 2)
    runner = runner_for(enrich_settings, db)
    runner.run(Scope(1), BATCH)
    summary = runner.check_batches(wait=True)
    # per photo 1200 input, 400 output, 900 cache read: (2400 + 4000 + 90) / 1e6 dollars, halved, in cents
    assert job(db)["actual_cost_cents"] == Decimal("0.6490")
    assert round(summary.actual_cost_cents, 4) == 0.649
    with db.connection() as conn:
        assert conn.execute("SELECT DISTINCT cost_cents FROM llm_analysis").fetchall() == [(Decimal("0.3245"),)]


def test_mixed_success_and_failure_in_one_batch(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ok, errored, invalid, malformed = add_photos(db, enrich_settings, tmp_path / "lib", 4)
    server.batch_script = {
        f"photo-{errored}": {
            "type": "errored",
            "error": {"type": "error", "error": {"type": "invalid_request_error", "message": "image too large"}},
        },
        f"photo-{invalid}": {"type": "succeeded", "message": message(json.dumps(analysis(confidence=3)))},
        f"photo-{malformed}": {"type": "succeeded", "message": message("I see a lake {")},
    }
    runner = runner_for(enrich_settings, db)
    runner.run(Scope(1), BATCH)
    summary = runner.check_batches(wait=True)
    assert (summary.completed, summary.failed) == (1, 3)
    assert statuses(db) == {ok: "completed", errored: "failed", invalid: "failed", malformed: "failed"}
    with db.connection() as conn:
        errors = dict(
            conn.execute("SELECT photo_id, error_message FROM processing_status WHERE status = 'failed'").fetchall()
        )
    assert errors[errored] == "invalid_request_error: image too large"
    assert errors[invalid] == "reply does not match the schema: confidence: Input should be less than or equal to 1"
    assert errors[malformed].startswith("reply does not match the schema: reply: Invalid JSON")
    row = job(db)
    assert (row["processed_count"], row["failed_count"], row["freed_count"]) == (1, 3, 0)


def test_a_result_for_an_unknown_custom_id_is_ignored(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 2)
    stranger = add_photos(db, enrich_settings, tmp_path / "lib", 1)[0]  # exists, but not in this batch
    server.extra_results = [
        json.dumps({"custom_id": "someone-else-1", "result": {"type": "succeeded", "message": message("{}")}}),
        json.dumps({"custom_id": f"photo-{stranger}", "result": {"type": "succeeded", "message": message("{}")}}),
        "this line is not json",
    ]
    runner = runner_for(enrich_settings, db)
    runner.run(Scope(1), EnrichOptions(max_photos=2))
    summary = runner.check_batches(wait=True)
    assert summary.unknown_results == 3 and summary.completed == 2
    assert statuses(db) == {ids[0]: "completed", ids[1]: "completed", stranger: "pending"}
    assert job(db)["unknown_result_count"] == 3


def test_an_expired_batch_frees_its_photos(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    done, expired, cancelled = add_photos(db, enrich_settings, tmp_path / "lib", 3)
    server.batch_script = {f"photo-{expired}": {"type": "expired"}, f"photo-{cancelled}": {"type": "canceled"}}
    runner = runner_for(enrich_settings, db)
    runner.run(Scope(1), BATCH)
    summary = runner.check_batches(wait=True)
    assert (summary.completed, summary.freed) == (1, 2)
    assert statuses(db) == {done: "completed", expired: "pending", cancelled: "pending"}
    with db.connection() as conn:
        assert conn.execute(
            "SELECT attempts, claimed_by FROM processing_status WHERE photo_id = %s AND stage = 'enrich'", (expired,)
        ).fetchone() == (0, None)
    assert job(db)["freed_count"] == 2
    server.batch_script = {}
    runner.run(Scope(1), EnrichOptions(flush=True))  # the freed photos go out again
    assert runner.check_batches(wait=True).completed == 2
    assert set(statuses(db).values()) == {"completed"}


def test_small_remainder_waits_unless_flushed(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 12)
    settings = enrich_settings.model_copy(update={"batch_size": 5, "min_batch_size": 3})
    summary = runner_for(settings, db).run(Scope(1), BATCH)
    assert [len(server.batches[b].custom_ids) for b in summary.batches_submitted] == [5, 5]
    assert summary.waiting == 2
    assert [statuses(db)[i] for i in ids[-2:]] == ["pending", "pending"]
    flushed = runner_for(settings, db).run(Scope(1), EnrichOptions(flush=True))
    assert flushed.sent == 2


def test_max_photos_below_the_minimum_is_sent(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    add_photos(db, enrich_settings, tmp_path / "lib", 6)
    settings = enrich_settings.model_copy(update={"batch_size": 5, "min_batch_size": 4})
    summary = runner_for(settings, db).run(Scope(1), EnrichOptions(max_photos=2))
    assert summary.sent == 2 and summary.waiting == 0
    assert sorted(statuses(db).values()) == ["pending"] * 4 + ["submitted"] * 2


def test_idempotent_rerun(db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 3)
    runner = runner_for(enrich_settings, db)
    runner.run(Scope(1), BATCH)
    runner.check_batches(wait=True)
    posts = server.count("POST", "/v1/messages/batches")

    again = runner.run(Scope(1), BATCH)  # nothing new to send
    assert again.sent == 0 and server.count("POST", "/v1/messages/batches") == posts
    with db.connection() as conn:  # the same results fetched once more (a crash after storing, before closing)
        conn.execute("UPDATE batch_job SET status = 'in_progress'")
    refetch = runner.check_batches(wait=True)
    assert (refetch.completed, refetch.failed) == (0, 0)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM llm_analysis").fetchone() == (3,)
    assert job(db)["processed_count"] == 3

    forced = runner.run(Scope(1), EnrichOptions(force=True))  # --force sends them again, same rows updated
    assert forced.sent == 3
    runner.check_batches(wait=True)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT batch_id) FROM llm_analysis").fetchone() == (3, 1)
    assert statuses(db) == dict.fromkeys(ids, "completed")


def test_two_enrich_processes_never_claim_the_same_photo(
    db: Database, enrich_settings: Settings, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 40)
    repo = EnrichRepository(db)
    repo.prepare(Scope(1), force=False, retry_failed=False)
    start = threading.Barrier(4)
    claimed: dict[str, list[int]] = {}

    def claim_all(holder: str) -> None:
        mine: list[int] = []
        start.wait()
        while batch := repo.claim(holder, Scope(1), 3):
            mine += batch
        claimed[holder] = mine

    threads = [threading.Thread(target=claim_all, args=(f"h{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [photo for batch in claimed.values() for photo in batch]
    assert sorted(every) == ids  # each photo exactly once
