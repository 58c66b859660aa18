"""Every command answers a bad configuration with one line: the variable, its value (secrets masked),
where it was set and what is accepted; exit 2, no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.cli import BOOTSTRAP_CLUSTERS, ENRICH, MAINTENANCE, PROCESS_LOCAL, cli_env, run_command

COMMANDS = {
    "process-local": [PROCESS_LOCAL, "{lib}"],
    "bootstrap_clusters.py": [sys.executable, BOOTSTRAP_CLUSTERS],
    "photodb-maintenance": [MAINTENANCE, "check-staleness"],
    "enrich-photos": [ENRICH],
    "photodb prompts": [sys.executable, "-m", "photodb.cli", "prompts", "list"],
}


def run_in(tmp_path: Path, command: str, *, env_file: str | None = None, **variables: str):
    (tmp_path / "lib").mkdir(exist_ok=True)
    if env_file is not None:
        (tmp_path / ".env").write_text(env_file)
    argv = [part.format(lib=tmp_path / "lib") for part in COMMANDS[command]]
    return run_command(argv, env=cli_env(tmp_path, None, **variables), cwd=tmp_path)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "pydantic" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_garbage_database_url(tmp_path, command):
    line = one_error_line(run_in(tmp_path, command, DATABASE_URL="garbage://"))
    assert line.startswith("error: invalid setting DATABASE_URL='garbage://' (from environment)")
    assert "not a PostgreSQL connection URL; expected a PostgreSQL URL such as postgresql://" in line


@pytest.mark.parametrize("command", COMMANDS)
def test_resize_scale_that_is_not_a_number(tmp_path, command):
    line = one_error_line(run_in(tmp_path, command, RESIZE_SCALE="abc"))
    assert line == (
        "error: invalid setting RESIZE_SCALE='abc' (from environment): expected a number greater than 0 and at most 1.0"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_value_in_env_file_names_its_line_and_masks_the_password(tmp_path, command):
    env_file = "RESIZE_SCALE=0.5\n# shared server\nDATABASE_URL=postgresql://me:hunter2@db:fivefour/photos\n"
    result = run_in(tmp_path, command, env_file=env_file)
    line = one_error_line(result)
    assert line.startswith(
        f"error: invalid setting DATABASE_URL='postgresql://me:***@db:fivefour/photos' (from {tmp_path / '.env'} "
        "line 3): port is not a number"
    )
    assert "hunter2" not in result.stderr + result.stdout


def test_env_line_that_is_not_name_value(tmp_path):
    line = one_error_line(run_in(tmp_path, "process-local", env_file="RESIZE_SCALE=0.5\nLOG_LEVEL debug\n"))
    assert line == f"error: {tmp_path / '.env'} line 2 is not NAME=value (it starts with LOG_LEVEL): fix or remove it"


def test_api_key_is_never_shown(tmp_path):
    result = run_in(tmp_path, "process-local", LLM_PROVIDER="openai", ANTHROPIC_API_KEY="sk-ant-secret")
    line = one_error_line(result)
    assert line == "error: invalid setting LLM_PROVIDER='openai' (from environment): expected one of anthropic, bedrock"
    assert "sk-ant-secret" not in result.stderr


def test_a_file_given_as_the_folder_is_not_a_folder(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not a folder")
    for path, message in (
        (photo, "not a folder"),
        ("/etc/passwd", "not a folder"),
        (tmp_path / "no", "folder not found"),
    ):
        result = run_command([PROCESS_LOCAL, str(path)], env=cli_env(tmp_path, None), cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.strip() == f"error: {message}: {path}"
