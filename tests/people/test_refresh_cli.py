"""`process-local` ends with people ready: real photos, real detection and embeddings, separate processes."""

from __future__ import annotations

import json
import shutil

import psycopg

from tests.cli import PHOTODB, cli_env, process_local, run_command
from tests.samples import SAMPLES

STAGES = ("--stage", "normalize", "--stage", "metadata", "--stage", "detection")


def _persons(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM person").fetchone()
    assert row is not None
    return int(row[0])


def test_people_are_listed_right_after_indexing_and_a_rerun_leaves_them(tmp_path, database_url):
    library = tmp_path / "library"
    shutil.copytree(SAMPLES / "faces", library)
    env = cli_env(tmp_path, database_url)
    first = process_local(str(library), *STAGES, env=env)
    assert first.returncode == 0, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("people: ") and "persons (0 named)" in last and "photodb web" in last, last

    listed = run_command([PHOTODB, "people", "list", "--json"], env=env)
    assert listed.returncode == 0, listed.stderr
    persons = json.loads(listed.stdout)["persons"]
    assert len(persons) >= 2 and all(p["faces"] >= 2 for p in persons)

    again = process_local(str(library), *STAGES, "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["people"] is None  # no new face: nothing to bring up to date
    assert _persons(database_url) == len(persons)


def test_no_people_leaves_grouping_to_the_user(tmp_path, database_url):
    library = tmp_path / "library"
    shutil.copytree(SAMPLES / "faces", library)
    env = cli_env(tmp_path, database_url)
    result = process_local(str(library), *STAGES, "--no-people", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["people"] is None
    assert _persons(database_url) == 0
    off = process_local(str(library), *STAGES, "--json", env={**env, "UPDATE_PEOPLE_AFTER_INDEX": "false"})
    assert off.returncode == 0 and json.loads(off.stdout)["people"] is None
    on = process_local(str(library), *STAGES, "--json", env=env)  # the faces are still new to people
    summary = json.loads(on.stdout)["people"]
    assert summary["ran"] and summary["bootstrapped"] and summary["persons"] >= 2
