"""Bedrock through the real boto3: InvokeModel and batch jobs on a local server, S3 on moto's server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from photodb.config import Settings
from photodb.database.connection import Database
from photodb.database.repository import Scope
from photodb.enrich.bedrock_provider import IMAGE_LIMITS, BedrockProvider
from photodb.enrich.provider import ProviderError
from photodb.enrich.runner import EnrichOptions, EnrichRunner
from tests.cli import ENRICH, cli_env, run_command
from tests.enrich.bedrock_server import BUCKET, CREDENTIALS, ROLE_ARN, BedrockServer, running
from tests.enrich.conftest import add_photos, statuses
from tests.enrich.protocol import Reply, analysis, message, tool_message

MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[BedrockServer]:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with running() as server:
        yield server


@pytest.fixture
def bedrock_settings(settings: Settings, bedrock: BedrockServer) -> Settings:
    return settings.model_copy(
        update={
            "llm_provider": "bedrock",
            "bedrock_model_id": MODEL,
            "bedrock_batch_s3_bucket": BUCKET,
            "bedrock_batch_role_arn": SecretStr(ROLE_ARN),
            "bedrock_runtime_endpoint_url": bedrock.url,
            "bedrock_endpoint_url": bedrock.url,
            "s3_endpoint_url": bedrock.s3_url,
            "llm_max_retries": 2,
            "batch_size": 10,
            "min_batch_size": 2,
            "batch_check_interval": 0.01,
        }
    )


def runner_for(settings: Settings, db: Database) -> EnrichRunner:
    return EnrichRunner(settings, db, BedrockProvider(settings), IMAGE_LIMITS)


def test_sync_through_invoke_model(
    db: Database, bedrock_settings: Settings, bedrock: BedrockServer, tmp_path: Path
) -> None:
    ids = add_photos(db, bedrock_settings, tmp_path / "lib", 2)
    bedrock.invoke_replies = [Reply(body=tool_message(analysis(confidence=2)))]  # re-asked once
    summary = runner_for(bedrock_settings, db).run(Scope(1), EnrichOptions(no_batch=True))
    assert (summary.completed, summary.failed) == (2, 0)
    assert statuses(db) == dict.fromkeys(ids, "completed")
    invokes = [json.loads(body) for method, path, _, body in bedrock.log if path.endswith("/invoke")]
    assert len(invokes) == 3 and all(path == f"/model/{MODEL}/invoke" for _, path, _, _ in bedrock.log)
    assert invokes[0]["anthropic_version"] == "bedrock-2023-05-31" and "model" not in invokes[0]
    assert invokes[0]["system"][0]["cache_control"] == {"type": "ephemeral"}
    with db.connection() as conn:
        assert conn.execute("SELECT DISTINCT provider, model_name FROM llm_analysis").fetchall() == [("bedrock", MODEL)]


def test_throttling_is_retried(
    db: Database, bedrock_settings: Settings, bedrock: BedrockServer, tmp_path: Path
) -> None:
    add_photos(db, bedrock_settings, tmp_path / "lib", 1)
    throttled = Reply(429, {"message": "Too many requests"}, {"x-amzn-errortype": "ThrottlingException"})
    bedrock.invoke_replies = [throttled]
    assert runner_for(bedrock_settings, db).run(Scope(1), EnrichOptions(no_batch=True)).completed == 1
    assert sum(1 for _, path, _, _ in bedrock.log if path.endswith("/invoke")) == 2


def test_a_rejected_invoke_fails_the_photo_with_bedrocks_reason(
    db: Database, bedrock_settings: Settings, bedrock: BedrockServer, tmp_path: Path
) -> None:
    ids = add_photos(db, bedrock_settings, tmp_path / "lib", 2)
    rejected = Reply(
        400,
        {"message": "messages.0.content.0.image.source: image exceeds 5 MB maximum"},
        {"x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )
    bedrock.invoke_replies = [rejected]
    summary = runner_for(bedrock_settings, db).run(Scope(1), EnrichOptions(no_batch=True))
    assert (summary.completed, summary.failed) == (1, 1)
    with db.connection() as conn:
        (error,) = conn.execute("SELECT error_message FROM processing_status WHERE status = 'failed'").fetchone()
    assert (
        error == "Bedrock error 400: ValidationException: messages.0.content.0.image.source: image exceeds 5 MB maximum"
    )
    assert statuses(db)[ids[1]] == "completed"


def test_batch_job_end_to_end_with_mixed_records(
    db: Database, bedrock_settings: Settings, bedrock: BedrockServer, tmp_path: Path
) -> None:
    ids = add_photos(db, bedrock_settings, tmp_path / "lib", 103)  # one job of 100 (Bedrock's minimum), 3 wait
    errored, invalid = ids[1:3]
    job_ids, left = ids[:100], ids[100:]
    bedrock.polls_to_end = 2
    bedrock.end_status = "PartiallyCompleted"
    bedrock.record_script = {
        f"photo-{errored}": {"error": {"errorCode": 400, "errorMessage": "image could not be processed"}},
        f"photo-{invalid}": {"modelOutput": message(json.dumps(analysis(people={"count": -1})))},
    }
    runner = runner_for(bedrock_settings, db)
    submitted = runner.run(Scope(1), EnrichOptions())
    (job_arn,) = submitted.batches_submitted
    assert submitted.waiting == 3 and "bedrock batch jobs need at least 100 photos" in submitted.notes[0]
    request = bedrock.jobs[job_arn].request
    assert request["roleArn"] == ROLE_ARN and request["modelId"] == MODEL
    key = request["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].removeprefix(f"s3://{BUCKET}/")
    records = [json.loads(line) for line in bedrock.s3().get_object(Bucket=BUCKET, Key=key)["Body"].iter_lines()]
    assert [r["recordId"] for r in records] == [f"photo-{i}" for i in job_ids]
    assert statuses(db) == {**dict.fromkeys(job_ids, "submitted"), **dict.fromkeys(left, "pending")}

    summary = runner.check_batches(wait=True)
    assert (summary.completed, summary.failed) == (98, 2)
    assert statuses(db) == {
        **dict.fromkeys(job_ids, "completed"),
        errored: "failed",
        invalid: "failed",
        **dict.fromkeys(left, "pending"),
    }
    with db.connection() as conn:
        errors = dict(conn.execute("SELECT photo_id, error_message FROM processing_status WHERE status = 'failed'"))
        job = conn.execute("SELECT status, provider, total_input_tokens, actual_cost_cents FROM batch_job").fetchone()
    assert errors[errored] == "400: image could not be processed"
    assert errors[invalid].startswith("reply does not match the schema: people.count: Input should be greater")
    # 99 answered records of 1200 input, 400 output, 900 cache-read tokens at Sonnet 4.5's $3 / $15 / $0.30,
    # halved (the errored record has no usage): 99 x 0.4935 cents
    assert job[:3] == ("completed", "bedrock", 99 * 1200) and float(job[3]) == pytest.approx(99 * 0.4935)


def test_a_failed_job_frees_its_photos_and_never_shows_the_role(
    db: Database, bedrock_settings: Settings, bedrock: BedrockServer, tmp_path: Path
) -> None:
    ids = add_photos(db, bedrock_settings, tmp_path / "lib", 100)
    bedrock.end_status = "Failed"
    bedrock.end_message = f"{ROLE_ARN} is not authorized to perform s3:GetObject"
    runner = runner_for(bedrock_settings, db)
    runner.run(Scope(1), EnrichOptions())
    assert runner.check_batches(wait=True).freed == 100
    assert statuses(db) == dict.fromkeys(ids, "pending")
    with db.connection() as conn:
        status, error = conn.execute("SELECT status, error_message FROM batch_job").fetchone()
    assert (status, error) == ("failed", "*** is not authorized to perform s3:GetObject")


def test_a_remainder_under_100_records_waits_and_never_becomes_a_job(
    db: Database, bedrock_settings: Settings, bedrock: BedrockServer, tmp_path: Path
) -> None:
    ids = add_photos(db, bedrock_settings, tmp_path / "lib", 5)  # over MIN_BATCH_SIZE (2), under Bedrock's 100
    summary = runner_for(bedrock_settings, db).run(Scope(1), EnrichOptions())
    assert (summary.sent, summary.waiting, summary.batches_submitted) == (0, 5, [])
    assert summary.notes == [
        "5 photo(s) wait for a fuller batch: bedrock batch jobs need at least 100 photos (or use --flush / --no-batch)"
    ]
    assert bedrock.jobs == {} and bedrock.log == []  # nothing uploaded, no job AWS would reject
    assert statuses(db) == dict.fromkeys(ids, "pending")


def test_flush_sends_a_remainder_under_100_records_one_by_one(
    db: Database, bedrock_settings: Settings, bedrock: BedrockServer, tmp_path: Path
) -> None:
    ids = add_photos(db, bedrock_settings, tmp_path / "lib", 5)
    summary = runner_for(bedrock_settings, db).run(Scope(1), EnrichOptions(flush=True))
    assert (summary.sent, summary.completed, summary.batches_submitted) == (5, 5, [])
    assert summary.notes == ["5 photo(s) sent one by one: bedrock batch jobs need at least 100 photos (--flush)"]
    assert bedrock.jobs == {} and len(bedrock.requests("POST", f"/model/{MODEL}/invoke")) == 5
    assert statuses(db) == dict.fromkeys(ids, "completed")
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) FROM llm_analysis WHERE batch_id IS NULL").fetchone() == (5,)


def test_missing_bucket_is_one_line_before_anything_is_sent(
    db: Database, bedrock: BedrockServer, database_url: str, tmp_path: Path
) -> None:
    add_photos(db, Settings(_env_file=None, img_path=tmp_path / "images"), tmp_path / "lib", 2)  # type: ignore[call-arg]
    env = cli_env(
        tmp_path, database_url, LLM_PROVIDER="bedrock", BEDROCK_BATCH_ROLE_ARN=ROLE_ARN,
        BEDROCK_RUNTIME_ENDPOINT_URL=bedrock.url, BEDROCK_ENDPOINT_URL=bedrock.url, S3_ENDPOINT_URL=bedrock.s3_url,
        **CREDENTIALS,
    )  # fmt: skip
    result = run_command([ENRICH, str(tmp_path / "lib")], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: BEDROCK_BATCH_S3_BUCKET is not set: Bedrock batch jobs need it (or use --no-batch)"
    ]
    assert bedrock.log == []
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM processing_status WHERE stage = 'enrich'").fetchone() == (0,)

    checked = run_command([ENRICH, "--check-config"], env={**env, "BEDROCK_BATCH_S3_BUCKET": BUCKET}, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"ok: Bedrock serves {MODEL}" in checked.stderr and f"ok: bucket {BUCKET} is reachable" in checked.stderr
    assert "note: Bedrock refuses batch jobs under 100 records, so batches hold at least 100" in checked.stderr
    assert ROLE_ARN not in checked.stderr + checked.stdout
    assert not [path for _, path, _, _ in bedrock.log if path.endswith("/invoke") or "invocation" in path]


def test_no_credentials_is_one_line(bedrock_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ProviderError, match="no AWS credentials found"):
        BedrockProvider(bedrock_settings)
