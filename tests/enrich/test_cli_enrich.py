"""enrich-photos as a user runs it: separate processes, the real SDK, the local server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

from photodb.config import Settings
from photodb.database.connection import Database
from tests.cli import ENRICH, cli_env, run_command
from tests.enrich.anthropic_server import AnthropicServer, error
from tests.enrich.conftest import API_KEY, add_photos, statuses


def env_for(tmp_path: Path, database_url: str, server: AnthropicServer, **extra: str) -> dict[str, str]:
    return cli_env(
        tmp_path,
        database_url,
        ANTHROPIC_API_KEY=API_KEY,
        ANTHROPIC_BASE_URL=server.url,
        LLM_MAX_RETRIES="1",
        BATCH_SIZE="10",
        MIN_BATCH_SIZE="2",
        BATCH_CHECK_INTERVAL="0.05",
        **extra,
    )


def test_kill_between_submit_and_fetch_then_check_batches_finishes(
    db: Database, settings: Settings, server: AnthropicServer, database_url: str, tmp_path: Path
) -> None:
    ids = add_photos(db, settings, tmp_path / "lib", 3)
    server.polls_to_end = None  # the batch runs until the test ends it
    env = env_for(tmp_path, database_url, server)
    waiting = subprocess.Popen([ENRICH, str(tmp_path / "lib"), "--wait", "--json"], env=env, cwd=tmp_path)
    try:
        assert server.retrieved.wait(120), "the batch was never polled"
    finally:
        waiting.kill()  # SIGKILL: no clean-up of any kind
        waiting.wait()
    assert statuses(db) == dict.fromkeys(ids, "submitted")
    (batch_id,) = server.batches
    server.end_batch(batch_id)

    checked = run_command([ENRICH, "--check-batches", "--json"], env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    summary = json.loads(checked.stdout)
    assert (summary["completed"], summary["batches_finished"]) == (3, [batch_id])
    assert statuses(db) == dict.fromkeys(ids, "completed")


def test_check_batches_wait_polls_until_the_batch_ends(
    db: Database, settings: Settings, server: AnthropicServer, database_url: str, tmp_path: Path
) -> None:
    ids = add_photos(db, settings, tmp_path / "lib", 2)
    env = env_for(tmp_path, database_url, server)
    submitted = run_command([ENRICH, str(tmp_path / "lib")], env=env, cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    assert "fetch results with enrich-photos --check-batches" in submitted.stderr
    server.polls_to_end = 4
    waited = run_command([ENRICH, "--check-batches", "--wait", "--json"], env=env, cwd=tmp_path)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["completed"] == 2
    # four looks until it ends, plus the SDK's own look for the results_url before streaming them
    assert server.count("GET", f"/v1/messages/batches/{next(iter(server.batches))}") == 5
    assert statuses(db) == dict.fromkeys(ids, "completed")


def test_missing_key_is_one_line_before_anything_is_sent(
    db: Database, settings: Settings, server: AnthropicServer, database_url: str, tmp_path: Path
) -> None:
    add_photos(db, settings, tmp_path / "lib", 2)
    env = env_for(tmp_path, database_url, server)
    del env["ANTHROPIC_API_KEY"]
    result = run_command([ENRICH, str(tmp_path / "lib"), "--no-batch"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: ANTHROPIC_API_KEY is not set: enrich-photos needs it for LLM_PROVIDER=anthropic"
    ]
    assert server.log == [] and statuses(db) == {}


def test_secrets_and_image_bytes_never_reach_logs_errors_or_the_database(
    db: Database, settings: Settings, server: AnthropicServer, database_url: str, tmp_path: Path
) -> None:
    add_photos(db, settings, tmp_path / "lib", 2)
    env = env_for(tmp_path, database_url, server)
    verbose = run_command([ENRICH, str(tmp_path / "lib"), "--no-batch", "-v"], env=env, cwd=tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    image_data = json.loads(server.log[0][3])["messages"][0]["content"][0]["source"]["data"]
    server.message_replies = [error(401, "authentication_error", f"invalid x-api-key {API_KEY}")]
    refused = run_command([ENRICH, str(tmp_path / "lib"), "--no-batch", "--force", "-v"], env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "Anthropic API error 401: authentication_error: invalid x-api-key ***" in refused.stderr
    for output in (verbose.stdout, verbose.stderr, refused.stdout, refused.stderr):
        assert API_KEY not in output and image_data[:64] not in output
    with psycopg.connect(database_url) as conn:
        dump = json.dumps(
            [
                conn.execute("SELECT * FROM processing_status").fetchall(),
                conn.execute("SELECT * FROM llm_analysis").fetchall(),
                conn.execute("SELECT * FROM batch_job").fetchall(),
            ],
            default=str,
        )
    assert API_KEY not in dump and image_data[:64] not in dump
    for _, _, headers, body in server.log:  # only where it belongs
        carrying = {name for name, value in headers.items() if API_KEY in value}
        assert carrying in ({"x-api-key"}, {"authorization"}) and API_KEY not in body.decode()


def test_check_config_and_photodb_enrich_are_the_same_command(
    server: AnthropicServer, database_url: str, tmp_path: Path
) -> None:
    env = env_for(tmp_path, database_url, server)
    direct = run_command([ENRICH, "--check-config"], env=env, cwd=tmp_path)
    grouped = run_command([sys.executable, "-m", "photodb.cli", "enrich", "--check-config"], env=env, cwd=tmp_path)
    assert direct.returncode == grouped.returncode == 0, direct.stderr + grouped.stderr
    assert "ok: Anthropic accepts the API key and serves claude-sonnet-5-5" in direct.stderr
    assert direct.stderr == grouped.stderr
    assert server.count("GET", "/v1/models/claude-sonnet-5-5") == 2
    assert server.count("POST", "/v1/messages") == 0  # nothing that costs money
