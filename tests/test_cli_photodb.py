"""The `photodb` command group and `photodb prompts`, run as a user runs them: separate processes."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from photodb.database.prompt_repository import PromptRepository
from tests.cli import cli_env, run_command
from tests.tiny_clip import tiny_clip  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[1]
PHOTODB = [sys.executable, "-m", "photodb.cli"]


def photodb(tmp_path: Path, database_url: str | None, *args: str, **env: str):
    return run_command([*PHOTODB, *args], env=cli_env(tmp_path, database_url, **env), cwd=tmp_path)


def test_the_photodb_entry_point_is_the_group():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["photodb"] == "photodb.cli:main"


def test_help_teaches_the_commands_and_the_selection_rules(tmp_path):
    top = photodb(tmp_path, None, "--help")
    assert top.returncode == 0 and "prompts" in top.stdout and "photodb prompts add activity skiing" in top.stdout
    group = photodb(tmp_path, None, "prompts", "-h")
    assert group.returncode == 0
    text = " ".join(group.stdout.split())
    for word in ("list", "add", "rebuild", "single", "multi", "1 / (number of labels)"):
        assert word in text
    add = photodb(tmp_path, None, "prompts", "add", "--help")
    assert "--min-confidence" in add.stdout and "--file" in add.stdout and "Examples" in add.stdout


def test_list_stores_the_defaults_on_first_use_and_shows_them(tmp_path, database_url):
    result = photodb(tmp_path, database_url, "prompts", "list", "--json")
    assert result.returncode == 0, result.stderr
    categories = {c["name"]: c for c in json.loads(result.stdout)}
    assert set(categories) == {
        "mood",
        "setting",
        "activity",
        "time",
        "weather",
        "social",
        "emotion",
        "expression",
        "gaze",
    }
    assert categories["activity"]["selection_mode"] == "multi" and categories["gaze"]["target"] == "face"
    assert categories["mood"]["embedded"] == {}
    table = photodb(tmp_path, database_url, "prompts", "list")
    assert table.returncode == 0 and "weather" in table.stdout and "sunny" in table.stdout


def test_add_creates_updates_and_extends_categories(tmp_path, database_url, db):
    created = photodb(
        tmp_path, database_url, "prompts", "add", "vehicle", "car", "--mode", "multi", "--min-confidence", "0.4"
    )
    assert created.returncode == 0, created.stderr
    assert "created category vehicle" in created.stdout
    added = photodb(tmp_path, database_url, "prompts", "add", "vehicle", "bus", "-t", "a red bus", "-t", "a city bus")
    assert added.returncode == 0 and "saved label bus" in added.stdout
    tuned = photodb(tmp_path, database_url, "prompts", "add", "mood", "--min-confidence", "0.5", "--disable")
    assert tuned.returncode == 0, tuned.stderr

    rows = {r.name: r for r in PromptRepository(db).list_categories()}
    assert len(rows) == 10  # the defaults were stored before the first user category
    vehicle = rows["vehicle"]
    assert (vehicle.target, vehicle.selection_mode, vehicle.min_confidence) == ("scene", "multi", 0.4)
    assert vehicle.labels == ("car", "bus")
    texts = {p.label: p.texts for p in PromptRepository(db).to_embed("any") if p.category == "vehicle"}
    assert texts == {
        "car": ("a photo of car", "a picture of car", "a photo showing car"),
        "bus": ("a red bus", "a city bus"),
    }
    assert (rows["mood"].enabled, rows["mood"].min_confidence) == (False, 0.5)


def test_add_from_a_file_and_one_line_errors(tmp_path, database_url, db):
    good = tmp_path / "mine.json"
    good.write_text(
        json.dumps(
            {
                "format": "photodb-prompts/1",
                "categories": [
                    {
                        "name": "pets", "target": "scene", "selection_mode": "multi", "min_confidence": 0.3,
                        "templates": ["a photo of a {}", "a picture of a {}"], "labels": {"dog": ["dog", "puppy"]},
                    }
                ],
            }
        )
    )  # fmt: skip
    loaded = photodb(tmp_path, database_url, "prompts", "add", "--file", str(good))
    assert loaded.returncode == 0 and "saved 1 categories, 1 labels" in loaded.stdout
    (dog,) = [p for p in PromptRepository(db).to_embed("any") if p.category == "pets"]
    assert dog.texts == ("a photo of a dog", "a picture of a dog", "a photo of a puppy", "a picture of a puppy")

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "photodb-prompts/1", "categories": [{"name": "x"}]}')
    for args, message in (
        (["add", "--file", str(bad)], f"{bad}: categories.0.target: Field required"),
        (["add", "Pets", "dog"], "lower-case letters"),
        (["add", "object", "dog"], "reserved"),
        (["add", "nothing"], "no category 'nothing': give a LABEL to create it"),
    ):
        result = photodb(tmp_path, database_url, "prompts", *args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert message in result.stderr and len(lines) <= 3, result.stderr


def test_rebuild_without_the_clip_file_is_one_line(tmp_path, database_url):
    result = photodb(tmp_path, database_url, "prompts", "rebuild", MODELS_DIR=str(tmp_path / "none"))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: model not found: ") and "set CLIP_MODEL_PATH" in lines[0]


def test_rebuild_embeds_every_label_with_the_configured_model(tmp_path, database_url, tiny_clip):  # noqa: F811
    env = tiny_clip.environment()
    first = photodb(tmp_path, database_url, "prompts", "rebuild", **env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "embedded 61 labels with openclip:TinyCLIP-shapes"
    listed = json.loads(photodb(tmp_path, database_url, "prompts", "list", "--json").stdout)
    assert all(c["embedded"] == {"openclip:TinyCLIP-shapes": len(c["labels"])} for c in listed)
    missing_only = photodb(tmp_path, database_url, "prompts", "rebuild", "--missing", **env)
    assert missing_only.stdout.strip() == "embedded 0 labels with openclip:TinyCLIP-shapes"
