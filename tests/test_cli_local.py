"""process-local as a user runs it: separate processes, real signals, both database modes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess

import psycopg
import pytest

from photodb.cli_local import SUMMARY_FORMAT, progress_notes
from photodb.database.embedded import server_is_running
from photodb.database.models import StageCounts
from tests.cli import PROCESS_LOCAL, cli_env, completion_events, process_local, process_local_at_once, wait_for
from tests.imaging import make_library
from tests.processors.tiny_cli import tiny_process_local
from tests.processors.tiny_stages import MODEL_FILE
from tests.samples import SAMPLES

LOCAL_STAGES = ["normalize", "metadata"]
STAGES = ("--stage", "normalize", "--stage", "metadata")


def test_json_summary_and_database_url_mode_never_starts_a_server(tmp_path, database_url):
    make_library(tmp_path / "lib", 3)
    env = cli_env(tmp_path, database_url)
    result = process_local(str(tmp_path / "lib"), *STAGES, "--json", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stages"]["normalize"]["completed"] == 3
    assert not (tmp_path / "home" / "pgdata").exists()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM metadata").fetchone()[0] == 3


def test_clear_errors_for_missing_folder_unreachable_database_and_unknown_stage(tmp_path):
    env = cli_env(tmp_path, "postgresql://photodb:secret-pw@127.0.0.1:9/photodb")
    missing = process_local(str(tmp_path / "nope"), env=env)
    assert missing.returncode == 1 and "folder not found" in missing.stderr
    (tmp_path / "lib").mkdir()
    unreachable = process_local(str(tmp_path / "lib"), env=env)
    assert unreachable.returncode == 1
    assert "cannot connect to the database at photodb@127.0.0.1:9/photodb" in unreachable.stderr
    assert "secret-pw" not in unreachable.stderr
    unknown = process_local(str(tmp_path / "lib"), "--stage", "clustering", env=env)
    assert unknown.returncode == 2 and "'clustering' is not one of" in unknown.stderr


def test_help_lists_the_stages_in_processing_order(tmp_path):
    result = process_local("--help", env=cli_env(tmp_path, None))
    text = " ".join(result.stdout.split())
    assert "normalize -> metadata -> detection -> scene_analysis -> age_gender" in text


def test_two_processes_at_once_process_every_pair_exactly_once(tmp_path, database_url):
    make_library(tmp_path / "lib", 40, size=(200, 150))
    env = cli_env(tmp_path, database_url)
    done = process_local_at_once(str(tmp_path / "lib"), *STAGES, "--parallel", "3", env=env)
    for stage in ("normalize", "metadata"):
        assert done[0][stage]["completed"] + done[1][stage]["completed"] == 40
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT status, attempts, count(*) FROM processing_status WHERE stage = ANY(%s) GROUP BY 1, 2",
            (LOCAL_STAGES,),
        ).fetchall()
    assert rows == [("completed", 1, 80)]


def test_sigkill_mid_run_then_rerun_completes_every_photo(tmp_path, database_url):
    make_library(tmp_path / "lib", 60, size=(900, 700))
    env = cli_env(tmp_path, database_url)
    with completion_events(database_url) as wait_for_completed:
        victim = subprocess.Popen([PROCESS_LOCAL, str(tmp_path / "lib"), *STAGES, "--parallel", "2"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        assert wait_for_completed(10) >= 10
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    with psycopg.connect(database_url, autocommit=True) as conn:
        left = conn.execute(
            "SELECT count(*) FROM processing_status WHERE status <> 'completed' AND stage = ANY(%s)", (LOCAL_STAGES,)
        ).fetchone()[0]
    assert left > 0, "the run finished before it could be killed"
    result = process_local(str(tmp_path / "lib"), *STAGES, "--json", env=env)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute(
            "SELECT status, count(*) FROM processing_status WHERE stage = ANY(%s) GROUP BY 1", (LOCAL_STAGES,)
        ).fetchall()
    assert statuses == [("completed", 120)]
    assert sum(s["completed"] for s in json.loads(result.stdout)["stages"].values()) == left


def test_sigterm_stops_cleanly_and_hands_back_claims(tmp_path, database_url):
    make_library(tmp_path / "lib", 40, size=(900, 700))
    env = cli_env(tmp_path, database_url)
    with completion_events(database_url) as wait_for_completed:
        run = subprocess.Popen([PROCESS_LOCAL, str(tmp_path / "lib"), *STAGES, "--parallel", "2"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert wait_for_completed(5) >= 5
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    with psycopg.connect(database_url, autocommit=True) as conn:
        processing = conn.execute("SELECT count(*) FROM processing_status WHERE status = 'processing'").fetchone()[0]
    assert run.returncode == 130 and "interrupted" in stderr
    assert processing == 0


@pytest.mark.timeout(480)
def test_embedded_server_is_shared_and_stopped_by_the_last_process_even_after_a_kill(tmp_path):
    make_library(tmp_path / "lib", 30, size=(900, 700))
    env = cli_env(tmp_path, None)
    pgdata = tmp_path / "home" / "pgdata"
    killed = subprocess.Popen([PROCESS_LOCAL, str(tmp_path / "lib"), *STAGES, "--parallel", "1"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    # killed mid-run: its lease is held and it has written a normalized photo
    assert wait_for(lambda: any((tmp_path / "images").glob("*.png")), timeout=240)
    assert server_is_running(pgdata) and any((tmp_path / "home" / "pg-leases").glob("*"))
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert server_is_running(pgdata), "a killed client leaves the server up for the others"
    first = subprocess.Popen([PROCESS_LOCAL, str(tmp_path / "lib"), *STAGES, "--json"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    second = process_local(str(tmp_path / "lib"), *STAGES, "--json", env=env)
    _, first_err = first.communicate(timeout=240)
    assert first.returncode == 0 and second.returncode == 0, (first_err, second.stderr)
    assert not server_is_running(pgdata), "the last process out stops the server despite the stale lease"
    assert list((tmp_path / "home" / "pg-leases").iterdir()) == []


def test_a_stage_without_its_model_is_told_once_its_photos_count_as_skipped_and_the_exit_is_0(tmp_path, database_url):
    make_library(tmp_path / "lib", 3)
    env = cli_env(tmp_path, database_url, COLUMNS="400")
    stages = ("--stage", "normalize", "--stage", "scene_analysis", "--stage", "age_gender")
    reason = f"model not found: {tmp_path / 'home' / 'models' / MODEL_FILE}: run scripts/download_models.sh"

    first = tiny_process_local(str(tmp_path / "lib"), *stages, "--json", env=env)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["summary_format"] == SUMMARY_FORMAT == 2
    assert summary["skipping"] == {"scene_analysis": reason}
    scene, age = summary["stages"]["scene_analysis"], summary["stages"]["age_gender"]
    assert (scene["completed"], scene["failed"], scene["skipped"], scene["skip_reasons"]) == (0, 0, 3, {reason: 3})
    assert (age["completed"], age["skipped"]) == (3, 0)
    assert first.stderr.count(reason) == 1, "one log line, not one per photo"

    again = tiny_process_local(str(tmp_path / "lib"), *stages, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("cannot run here, its photos are recorded as skipped: " + reason) == 1
    assert again.stderr.count(f"skipped scene_analysis: 3 photos: {reason}") == 1
    header = next(line for line in again.stderr.splitlines() if "completed" in line and "stage" in line)
    assert "unchanged" in header and "skipped (cannot run here)" in header
    normalize_row = next(line for line in again.stderr.splitlines() if "normalize" in line and "│" in line)
    assert [cell.strip() for cell in normalize_row.split("│")[2:5]] == ["0", "3", "0"]  # completed, unchanged, skipped


def test_progress_notes_name_failures_skips_and_the_reason():
    counts = StageCounts(completed=2, failed=1, skipped=4)
    assert progress_notes(counts, "model not found: /m [x]", False) == (
        "[red]1 failed[/] [yellow]4 skipped: model not found: /m \\[x][/]"
    )
    assert progress_notes(StageCounts(completed=3), None, True) == "(finding files…)"


def test_a_model_file_that_does_not_load_skips_its_stage_and_the_run_goes_on(tmp_path, database_url):
    library = tmp_path / "lib"
    library.mkdir()
    shutil.copy(SAMPLES / "faces" / "pillow" / "hopper.jpg", library / "hopper.jpg")
    garbage = tmp_path / "broken.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    env = cli_env(tmp_path, database_url, CLIP_MODEL_PATH=str(garbage))
    result = process_local(str(library), "--stage", "normalize", "--stage", "scene_analysis", "--json", env=env)
    assert result.returncode == 0, result.stderr
    stages = json.loads(result.stdout)["stages"]
    assert stages["normalize"]["completed"] == 1
    assert stages["scene_analysis"]["skipped"] == 1 and stages["scene_analysis"]["completed"] == 0
    (reason,) = stages["scene_analysis"]["skip_reasons"]
    assert reason.startswith("model does not load: ") and "broken.safetensors" in reason
