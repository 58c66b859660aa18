"""--no-batch through the real anthropic SDK against the local server: success, retries, bad replies."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.repository import Scope
from photodb.enrich.provider import ProviderError
from photodb.enrich.runner import EnrichOptions
from tests.enrich.anthropic_server import AnthropicServer, error
from tests.enrich.conftest import add_photos, runner_for, statuses
from tests.enrich.protocol import Reply, analysis, message, tool_message

SYNC = EnrichOptions(no_batch=True)


def scope() -> Scope:
    return Scope(1)


def sent_bodies(server: AnthropicServer) -> list[dict]:
    return [json.loads(body) for method, path, _, body in server.log if (method, path) == ("POST", "/v1/messages")]


def test_sync_success_stores_the_analysis_and_its_denormalized_columns(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 2)
    summary = runner_for(enrich_settings, db).run(scope(), SYNC)

    assert (summary.sent, summary.completed, summary.failed) == (2, 2, 0)
    assert statuses(db) == dict.fromkeys(ids, "completed")
    with db.connection() as conn:
        rows = conn.execute(
            """SELECT description, objects, people_count, location_description, emotional_tone, confidence_score,
                      input_tokens, output_tokens, cache_read_tokens, provider, batch_id, analysis->'quality'->>'score'
               FROM llm_analysis ORDER BY photo_id"""
        ).fetchall()
    assert rows[0] == (
        "Two friends hiking above a lake.", ["backpack"], 2, "alpine lake", "joyful", 0.85, 1200, 400, 900,
        "anthropic", None, "0.8",
    )  # fmt: skip
    body = sent_bodies(server)[0]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}  # the static part is cached
    assert '"PhotoAnalysisResponse"' in body["system"][0]["text"]  # ... and carries the schema
    (tool,) = body["tools"]  # instructor's TOOLS mode: the schema is the one forced tool, cached with the system
    assert tool["name"] == "PhotoAnalysisResponse" and "quality" in tool["input_schema"]["properties"]
    assert body["tool_choice"]["type"] == "tool" and "output_config" not in body
    image, context = body["messages"][0]["content"]
    assert image["source"]["media_type"] in ("image/jpeg", "image/png") and len(image["source"]["data"]) > 100
    assert "2021-07-14 15:30" in context["text"] and "Canon EOS R6" in context["text"]
    assert "46.50000, 7.90000" in context["text"]


def test_rate_limited_then_success_honours_retry_after(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    add_photos(db, enrich_settings, tmp_path / "lib", 1)
    server.message_replies = [error(429, "rate_limit_error", "slow down", **{"retry-after-ms": "20"})]
    summary = runner_for(enrich_settings, db).run(scope(), SYNC)
    assert summary.completed == 1
    assert server.count("POST", "/v1/messages") == 2


def test_server_errors_until_give_up_stop_the_run_and_keep_the_photo_queued(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 1)
    server.message_replies = [error(500, "api_error", "boom", **{"retry-after-ms": "10"}) for _ in range(5)]
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError, match=r"500 \(after retries\): api_error: boom"):
        runner_for(enrich_settings, db).run(scope(), SYNC)
    assert not [r for r in caplog.records if r.name.startswith("instructor")]  # its raw errors stay out of the log
    assert server.count("POST", "/v1/messages") == 3  # LLM_MAX_RETRIES=2 retries, then give up
    assert statuses(db) == {ids[0]: "pending"}  # not the photo's failure: the next run sends it again
    with db.connection() as conn:
        assert conn.execute("SELECT attempts FROM processing_status WHERE stage = 'enrich'").fetchone() == (0,)


def test_overloaded_is_retried(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    add_photos(db, enrich_settings, tmp_path / "lib", 1)
    server.message_replies = [error(529, "overloaded_error", "overloaded", **{"retry-after-ms": "10"})]
    assert runner_for(enrich_settings, db).run(scope(), SYNC).completed == 1


def test_malformed_json_fails_the_photo_after_the_bounded_reask(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 2)
    broken = analysis(quality='{"score": 0.8, "notes": [')  # a nested object as cut-off JSON text
    server.message_replies = [Reply(body=message('{"description": "cut off')), Reply(body=tool_message(broken))]
    summary = runner_for(enrich_settings, db).run(scope(), SYNC)
    assert (summary.completed, summary.failed) == (1, 1)
    assert statuses(db) == {ids[0]: "failed", ids[1]: "completed"}
    with db.connection() as conn:
        (message_text,) = conn.execute(
            "SELECT error_message FROM processing_status WHERE photo_id = %s AND stage = 'enrich'", (ids[0],)
        ).fetchone()
    assert message_text.startswith("reply does not match the schema after 2 tries: quality: Input should be")
    reask = sent_bodies(server)[1]["messages"]  # instructor's re-ask after a reply without the tool call
    assert [m["role"] for m in reask] == ["user", "assistant", "user"]
    assert "no tool invocation" in reask[2]["content"]


def test_schema_invalid_reply_is_reasked_once_and_then_accepted(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    add_photos(db, enrich_settings, tmp_path / "lib", 1)
    server.message_replies = [Reply(body=tool_message(analysis(quality={"score": 7, "notes": []})))]
    summary = runner_for(enrich_settings, db).run(scope(), SYNC)
    assert summary.completed == 1
    assistant, result = sent_bodies(server)[1]["messages"][1:]  # instructor's re-ask: the call, then its error
    assert assistant["content"][0]["type"] == "tool_use"
    (tool_result,) = result["content"]
    assert (
        tool_result["is_error"] and "quality.score\n  Input should be less than or equal to 1" in tool_result["content"]
    )
    assert summary.usage.input_tokens == 2400  # both calls are counted


def test_schema_invalid_reply_without_reasks_fails_the_photo_with_the_validation_error(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 1)
    server.message_replies = [Reply(body=tool_message(analysis(emotional_tone="furious")))]
    settings = enrich_settings.model_copy(update={"llm_reasks": 0})
    runner_for(settings, db).run(scope(), SYNC)
    assert statuses(db) == {ids[0]: "failed"}
    with db.connection() as conn:
        (text,) = conn.execute("SELECT error_message FROM processing_status WHERE stage = 'enrich'").fetchone()
        assert conn.execute("SELECT count(*) FROM llm_analysis").fetchone() == (0,)
    assert text.startswith("reply does not match the schema after 1 tries: emotional_tone: Input should be")


def test_retry_failed_sends_a_failed_photo_again(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 1)
    server.message_replies = [Reply(body=message("x")), Reply(body=message("y"))]
    runner_for(enrich_settings, db).run(scope(), SYNC)
    assert statuses(db) == {ids[0]: "failed"}
    assert runner_for(enrich_settings, db).run(scope(), SYNC).sent == 0  # failed stays failed without the flag
    summary = runner_for(enrich_settings, db).run(scope(), EnrichOptions(no_batch=True, retry_failed=True))
    assert summary.completed == 1 and statuses(db) == {ids[0]: "completed"}


def test_a_refusal_is_not_reasked(
    db: Database, enrich_settings: Settings, server: AnthropicServer, tmp_path: Path
) -> None:
    ids = add_photos(db, enrich_settings, tmp_path / "lib", 1)
    server.message_replies = [Reply(body=message("I can't help with that.", stop_reason="refusal"))]
    runner_for(enrich_settings.model_copy(update={"llm_reasks": 3}), db).run(scope(), SYNC)
    assert server.count("POST", "/v1/messages") == 1
    assert statuses(db) == {ids[0]: "failed"}
    with db.connection() as conn:
        (text,) = conn.execute("SELECT error_message FROM processing_status WHERE stage = 'enrich'").fetchone()
    assert text == "the model declined to analyse this photo"
