"""Running PhotoDB's commands as a user does: separate processes with their own environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

BIN = Path(sys.executable).parent
PROCESS_LOCAL = str(BIN / "process-local")
MAINTENANCE = str(BIN / "photodb-maintenance")
PHOTODB = str(BIN / "photodb")
ENRICH = str(BIN / "enrich-photos")
BOOTSTRAP_CLUSTERS = str(Path(__file__).resolve().parents[1] / "scripts" / "bootstrap_clusters.py")


def cli_env(tmp_path: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(PHOTODB_HOME=str(tmp_path / "home"), IMG_PATH=str(tmp_path / "images"), LOG_LEVEL="WARNING")
    if database_url:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def process_local(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROCESS_LOCAL, *args], env=env, capture_output=True, text=True, timeout=timeout)


def bootstrap_clusters(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, BOOTSTRAP_CLUSTERS, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def run_command(
    argv: list[str], *, env: dict[str, str], cwd: Path | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Any command line, in `cwd` (where its `.env` is read from)."""
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@contextmanager
def completion_events(database_url: str) -> Iterator[Callable[[int], int]]:
    """Yield wait(n): block until n more (photo, stage) pairs complete, woken by the database itself.

    A trigger in this test's database sends one NOTIFY per completed pair (the payload is unique, so
    pairs finished in one transaction are not folded into one notification); wait(n) returns how
    many arrived (more when one statement completes several pairs), fewer only when 120 s pass without them.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            """CREATE FUNCTION test_notify_completed() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN PERFORM pg_notify('stage_completed', NEW.photo_id || ':' || NEW.stage); RETURN NULL; END $$"""
        )
        conn.execute(
            """CREATE TRIGGER test_notify_completed AFTER INSERT OR UPDATE ON processing_status
               FOR EACH ROW WHEN (NEW.status = 'completed') EXECUTE FUNCTION test_notify_completed()"""
        )
        conn.execute("LISTEN stage_completed")

        def wait(count: int, timeout: float = 120) -> int:
            return sum(1 for _ in conn.notifies(timeout=timeout, stop_after=count))

        yield wait


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> bool:
    """Poll a condition another process brings about (a file, a server) that sends no event."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def process_local_at_once(*args: str, env: dict[str, str], runs: int = 2) -> list[dict[str, Any]]:
    """Start `runs` process-local commands with the same arguments at once; each one's --json
    summary's stages (every run must exit 0)."""
    command = [PROCESS_LOCAL, *args, "--json"]
    started = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(runs)
    ]
    outputs = [run.communicate(timeout=300) for run in started]
    assert all(run.returncode == 0 for run in started), [err for _, err in outputs]
    return [json.loads(out)["stages"] for out, _ in outputs]
