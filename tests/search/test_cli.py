"""`photodb search` run as a user runs it: a separate process, its output and exit status."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from photodb.config import Settings
from tests.cli import cli_env, run_command
from tests.search.library import build_library

PHOTODB = [sys.executable, "-m", "photodb.cli"]


def photodb_search(tmp_path: Path, database_url: str, *args: str, **env: str):
    return run_command([*PHOTODB, "search", *args], env=cli_env(tmp_path, database_url, **env), cwd=tmp_path)


@pytest.fixture
def library(db):
    build_library(db)
    return db


def test_json_gives_each_photo_its_paths_date_score_and_persons(tmp_path, database_url, library):
    result = photodb_search(tmp_path, database_url, "--person", "Grace", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["photo_id"] for r in rows] == [2, 1]
    keys = {"photo_id", "original_path", "normalized_path", "captured_at", "score", "persons"}
    keys |= {"date_estimated", "estimated_year", "estimated_stddev_years"}
    assert all(set(r) == keys for r in rows)
    first = rows[1]
    assert first["original_path"] == "/photos/a.jpg"
    assert first["normalized_path"] == str(tmp_path / "images" / "norm" / "1.png")
    assert first["captured_at"] == "2019-07-04T10:00:00"
    assert first["score"] is None  # ranked by date
    assert first["persons"] == [{"id": 2, "name": "Alan Turing"}, {"id": 1, "name": "Grace Hopper"}]
    similar = json.loads(photodb_search(tmp_path, database_url, "--like-photo", "1", "--json", "--limit", "1").stdout)
    assert [r["photo_id"] for r in similar] == [2] and 0.98 < similar[0]["score"] <= 1


def test_the_table_and_an_empty_result(tmp_path, database_url, library):
    table = photodb_search(tmp_path, database_url, "--words", "birthday cake", "--tag", "beach")
    assert table.returncode == 0, table.stderr
    assert "/photos/a.jpg" in table.stdout and "Grace Hopper" in table.stdout
    empty = photodb_search(tmp_path, database_url, "--year", "1990")
    assert empty.returncode == 0 and empty.stdout.strip() == "no photos match"
    assert photodb_search(tmp_path, database_url, "--year", "1990", "--json").stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2020-13-01"), "--from '2020-13-01' is not a date (YYYY-MM-DD)"),
        (("--to", "yesterday"), "--to 'yesterday' is not a date (YYYY-MM-DD)"),
        (("--person", "Nobody"), "no person named 'Nobody'"),
        (("--near", "48.8"), "--near '48.8' is not LAT,LON"),
        (("a dog on the beach",), "text search needs the CLIP model: model not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, database_url, library, args, message):
    result = photodb_search(tmp_path, database_url, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_without_clip_weights_the_other_filters_still_work(tmp_path, database_url, library):
    result = photodb_search(tmp_path, database_url, "--camera", "iphone", "--json")
    assert result.returncode == 0, result.stderr
    assert [r["photo_id"] for r in json.loads(result.stdout)] == [3, 1]


def test_help_names_both_text_searches(tmp_path, database_url):
    result = photodb_search(tmp_path, database_url, "--help")
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    for phrase in ("QUERY is what they show", "--words", "--any-person", "--like-face", "SEARCH_MIN_SIMILARITY"):
        assert phrase in text


def test_similarity_floors_per_model_and_their_override(monkeypatch):
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.search_min_similarity_for("mobileclip:s2") == 0.2
    assert defaults.search_text_language == "english"
    monkeypatch.setenv("SEARCH_MIN_SIMILARITY", '{"mobileclip:s2": 0.25, "openclip": 0.3}')
    tuned = Settings(_env_file=None)  # type: ignore[call-arg]
    assert tuned.search_min_similarity_for("mobileclip:s2") == 0.25
    assert tuned.search_min_similarity_for("openclip:ViT-B-32") == 0.3
