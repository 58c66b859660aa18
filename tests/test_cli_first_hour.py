"""The first hour with PhotoDB, as a user meets it: every command names its library, an empty new
library says so, the console stays quiet, a run with nothing to do loads no model, and the
commands that can find nothing explain why."""

from __future__ import annotations

import json
import shutil

from psycopg.conninfo import conninfo_to_dict

from photodb.config import Settings
from photodb.stages import PIPELINE_ORDER
from tests.cli import cli_env, process_local
from tests.imaging import make_library
from tests.processors.tiny_cli import tiny_process_local
from tests.samples import SAMPLES
from tests.test_cli_photodb import photodb

NEW_LIBRARY = "nothing indexed yet — run `photodb index PATH`"


def server_label(database_url: str) -> str:
    parts = conninfo_to_dict(database_url)
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{parts.get('host') or 'localhost'}{port}/{parts['dbname']}"


def test_the_library_is_the_home_folder_or_the_server_without_its_credentials(tmp_path):
    embedded = Settings(_env_file=None, photodb_home=tmp_path / "home")  # type: ignore[call-arg]
    assert embedded.library == str(tmp_path / "home")
    server = Settings(_env_file=None, database_url="postgresql://ann:s3cret@db.example:5433/photos")  # type: ignore[call-arg]
    assert server.library == "db.example:5433/photos"


def test_reading_commands_on_an_empty_new_library_say_so_and_name_it(tmp_path, database_url):
    label = server_label(database_url)
    password = conninfo_to_dict(database_url).get("password")
    for command in (("people", "list"), ("search", "--year", "2001"), ("cluster",), ("maintenance", "daily")):
        result = photodb(tmp_path, database_url, *command)
        assert f"new library at {label}, {NEW_LIBRARY}" in result.stderr, (command, result.stderr)
        assert not password or password not in result.stderr + result.stdout

    make_library(tmp_path / "lib", 2)
    env = cli_env(tmp_path, database_url)
    indexed = tiny_process_local(str(tmp_path / "lib"), "--stage", "normalize", "--json", env=env)
    assert indexed.returncode == 0, indexed.stderr
    assert indexed.stderr.splitlines()[0] == f"library: {label}"
    assert json.loads(indexed.stdout)["library"] == label
    after = photodb(tmp_path, database_url, "people", "list")
    assert after.stderr.splitlines()[0] == f"library: {label}" and NEW_LIBRARY not in after.stderr
    bad = photodb(tmp_path, database_url, "people", "show", "999999")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr  # an error alone
    for command in (("people", "list", "--json"), ("maintenance", "daily", "--json")):
        assert json.loads(photodb(tmp_path, database_url, *command).stdout)["library"] == label, command


def test_the_console_is_quiet_the_log_file_and_verbose_keep_the_details(tmp_path, database_url):
    make_library(tmp_path / "lib", 2)
    (tmp_path / "lib" / "broken.jpg").write_text("not an image")
    log_file = tmp_path / "photodb.log"
    env = cli_env(tmp_path, database_url, LOG_LEVEL="INFO", LOG_FILE=str(log_file), COLUMNS="80")
    stages = ("--stage", "normalize", "--stage", "scene_analysis", "--stage", "age_gender")
    quiet = tiny_process_local(str(tmp_path / "lib"), *stages, env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "normalize failed for photo" not in quiet.stderr  # the summary lists the failure itself
    assert "broken.jpg (normalize)" in quiet.stderr
    assert "normalize failed for photo" in log_file.read_text()
    rows = [line for line in quiet.stderr.splitlines() if line.startswith("│")]
    assert {row.split("│")[1].strip() for row in rows} == {"normalize", "scene_analysis", "age_gender"}

    verbose = tiny_process_local(str(tmp_path / "lib"), *stages, "--force", "-v", env=env)
    assert "normalize failed for photo" in verbose.stderr
    listed = photodb(tmp_path, database_url, "people", "-v", "list", LOG_LEVEL="INFO")
    assert listed.returncode == 0, listed.stderr


def test_a_run_with_nothing_to_do_loads_no_model_and_cluster_explains_its_counts(tmp_path, database_url):
    library = tmp_path / "lib"
    library.mkdir()
    for name in ("obama.jpg", "biden.jpg"):
        shutil.copy(SAMPLES / "faces" / "face_recognition" / name, library / name)
    log_file = tmp_path / "photodb.log"
    env = cli_env(tmp_path, database_url, LOG_LEVEL="DEBUG", LOG_FILE=str(log_file), DETECTION_BACKEND="offline")

    first = process_local(str(library), "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stages"]["detection"]["completed"] == 2
    assert "loading model" in log_file.read_text()  # what the next run must not say
    log_file.unlink()

    again = process_local(str(library), "--json", env=env)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert all(summary["stages"][name]["completed"] == 0 for name in PIPELINE_ORDER if name in summary["stages"])
    quiet_log = log_file.read_text()
    assert "loading model" not in quiet_log
    assert "age_gender model" not in quiet_log and "detection backend" not in quiet_log  # said when models load

    clustered = photodb(tmp_path, database_url, "cluster")
    assert clustered.returncode == 0, clustered.stderr
    assert "no decisions of yours to keep yet" in clustered.stdout
    assert "moved by constraints" not in clustered.stdout


def test_cluster_names_what_constraints_moved_once_there_are_decisions():
    from photodb.cli_cluster import _decisions_kept

    assert _decisions_kept(3, 2) == (
        "your decisions kept: 3 faces pinned where you put them, 2 moved by constraints "
        "(to honour your must-link / cannot-link)"
    )


def test_search_words_with_nothing_enriched_says_so(tmp_path, database_url):
    result = photodb(tmp_path, database_url, "search", "--words", "beach")
    assert result.returncode == 0, result.stderr
    assert "no photos match" in result.stdout
    assert "no photo has an LLM description yet" in result.stderr
    assert "photodb enrich PATH" in result.stderr
