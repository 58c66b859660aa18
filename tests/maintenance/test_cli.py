"""photodb-maintenance as a cron job runs it: separate processes, --json, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json

from tests.cli import BIN, MAINTENANCE, cli_env, run_command
from tests.maintenance.conftest import Library, link, snapshot

PHOTODB = str(BIN / "photodb")


def test_daily_json_is_exit_0_when_all_is_well_and_1_with_a_violation(tmp_path, database_url, db):
    lib = Library(db)
    _, faces, cluster = lib.identity(4)
    env = cli_env(tmp_path, database_url)
    done = run_command([MAINTENANCE, "daily", "--json"], env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert [t["task"] for t in report["tasks"]] == [
        "recompute-centroids",
        "cleanup-empty",
        "update-stats",
        "propagate-must-links",
        "merge-must-linked",
        "check-constraints",
    ]
    assert all(isinstance(t["seconds"], float) and t["error"] is None for t in report["tasks"])
    link(db, "cannot_link", faces[0], faces[1])
    done = run_command([MAINTENANCE, "daily", "--collection", "default"], env=env)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("check-constraints") and "problems" in line for line in lines)
    assert f"  ! faces {faces[0]} and {faces[1]} are cannot-linked but both in cluster {cluster}" in lines
    assert (
        lines[-1] == "6 tasks in " + lines[-1].split(" tasks in ")[1]
        and "needs attention: check-constraints" in lines[-1]
    )


def test_health_exit_codes_and_one_line_per_problem(tmp_path, database_url, db):
    Library(db).identity(3)
    env = cli_env(tmp_path, database_url)
    done = run_command([MAINTENANCE, "health", "--json"], env=env)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["ok"] is True and figures["total_clusters"] == 1 and figures["total_faces"] == 3
    with db.connection() as conn:
        conn.execute("INSERT INTO cluster (collection_id, embedding_model) VALUES (1, 'arcface')")
    done = run_command([PHOTODB, "maintenance", "health"], env=env)
    assert done.returncode == 1
    problems = [line for line in done.stderr.strip().splitlines() if not line.startswith("library: ")]
    assert problems == ["problem: clusters without faces: 1 (cleanup-empty deletes them)"]
    done = run_command([PHOTODB, "maintenance", "weekly", "--json"], env=env)
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["tasks"][1]["changes"] == {"deleted": 1}
    assert run_command([MAINTENANCE, "health"], env=env).returncode == 0


def test_bad_usage_is_one_line_exit_2_and_writes_nothing(tmp_path, database_url, db):
    lib = Library(db)
    centre = lib.centre()
    lib.cluster(lib.faces(centre, 3))
    lib.cluster(lib.faces(centre, 3))  # merge-similar would merge these
    before = snapshot(db)
    env = cli_env(tmp_path, database_url)
    for argv, message in (
        (["merge-similar", "--similarity-threshold", "-0.2"], "cosine distance in (0, 2], got -0.2"),
        (["weekly", "--collection", "nowhere"], "no collection named 'nowhere'"),
        (["health", "--collection", "nowhere", "--json"], "no collection named 'nowhere'"),
        (["check-staleness", "--collection", "nowhere"], "no collection named 'nowhere'"),
        (["cleanup-unassigned", "--older-than-days", "-1"], "--older-than-days must be 0 or more"),
    ):
        done = run_command([MAINTENANCE, *argv], env=env)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
        assert done.stdout == ""
    assert snapshot(db) == before
    done = run_command([MAINTENANCE, "merge-similar", "--similarity-threshold", "0.5", "--json"], env=env)
    assert done.returncode == 0
    assert json.loads(done.stdout)["tasks"][0]["changes"]["clusters_merged_away"] == 1
