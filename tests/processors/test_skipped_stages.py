"""A stage that cannot run here (its model is missing): photos skipped with the reason, never failed.

The stages are the tiny real ones of tests/processors/tiny_stages.py, registered for each test;
everything else (runner, queue, registration, database) is the real thing.
"""

from __future__ import annotations

import logging

import pytest

from photodb.database.models import StageCounts
from photodb.processors.local_processor import LocalProcessor, RunOptions
from photodb.stages import INIT_ORDER, PIPELINE_ORDER
from tests.imaging import make_library, write_jpeg
from tests.processors import tiny_stages
from tests.processors.tiny_stages import SKIP_MESSAGE, install_model, processed

STAGES = ["normalize", "scene_analysis", "age_gender"]


@pytest.fixture(autouse=True)
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    tiny_stages.register(monkeypatch, "scene_analysis", "age_gender")


def run(settings, db, root, progress=None, **options):
    options.setdefault("stages", STAGES)
    return LocalProcessor(settings, db, RunOptions(**options), progress).run(root)


def rows(db, stage):
    """filename -> (status, error_message, attempts, claimed_by) of one stage."""
    with db.connection() as conn:
        found = conn.execute(
            """SELECT p.filename, s.status, s.error_message, s.attempts, s.claimed_by
               FROM processing_status s JOIN photo p ON p.id = s.photo_id WHERE s.stage = %s""",
            (stage,),
        ).fetchall()
    return {r[0]: r[1:] for r in found}


def reason_for(settings) -> str:
    return f"model not found: {settings.models_root / tiny_stages.MODEL_FILE}: run scripts/download_models.sh"


def logged(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


def test_without_its_model_a_stage_skips_every_photo_unclaimed_and_its_dependents_run(settings, db, tmp_path, caplog):
    make_library(tmp_path / "lib", 3)
    run(settings, db, tmp_path / "lib", stages=["normalize"])  # scene rows wait as 'pending' at the start
    make_library(tmp_path / "lib" / "later", 2)  # and these are registered during the run
    caplog.set_level(logging.INFO)
    summary = run(settings, db, tmp_path / "lib", parallel=2)

    reason = reason_for(settings)
    scene = rows(db, "scene_analysis")
    assert len(scene) == 5
    assert set(scene.values()) == {("skipped", reason, 0, None)}, "never claimed: no attempt, no holder"
    assert processed("scene_analysis") == [], "process is never called"
    assert len(processed("age_gender")) == 5, "a skipped dependency does not hold its dependents back"
    assert {status for status, *_ in rows(db, "age_gender").values()} == {"completed"}
    assert logged(caplog, reason) == 1, "the reason is told once per run, not per photo"

    assert summary.stopped_by is None and summary.skipping == {"scene_analysis": reason}
    stage = summary.stages["scene_analysis"]
    assert (stage.completed, stage.failed, stage.skipped, stage.skip_reasons) == (0, 0, 5, {reason: 5})
    assert summary.stages["age_gender"].completed == 5
    assert summary.stages["normalize"].unchanged == 3 and summary.stages["normalize"].completed == 2


def test_skipped_photos_run_at_the_next_run_that_has_the_model(settings, db, tmp_path):
    make_library(tmp_path / "lib", 4)
    run(settings, db, tmp_path / "lib")
    still_missing = run(settings, db, tmp_path / "lib")
    assert still_missing.stages["scene_analysis"].skipped == 4 and processed("scene_analysis") == []

    install_model(settings.models_root)
    summary = run(settings, db, tmp_path / "lib")
    assert len(processed("scene_analysis")) == 4
    assert {row[:3] for row in rows(db, "scene_analysis").values()} == {("completed", None, 1)}
    stage = summary.stages["scene_analysis"]
    assert (stage.completed, stage.skipped, stage.skip_reasons) == (4, 0, {})
    assert summary.skipping == {}


def test_force_requeues_skipped_photos_and_never_runs_a_stage_without_its_model(settings, db, tmp_path):
    make_library(tmp_path / "lib", 3)
    install_model(settings.models_root)
    run(settings, db, tmp_path / "lib")
    assert len(processed("scene_analysis")) == 3
    (settings.models_root / tiny_stages.MODEL_FILE).unlink()

    plain = run(settings, db, tmp_path / "lib")
    assert plain.stages["scene_analysis"].unchanged == 3, "a run without the model leaves completed work alone"
    forced = run(settings, db, tmp_path / "lib", force=True)
    assert len(processed("scene_analysis")) == 3, "--force without the model runs nothing"
    assert forced.stages["scene_analysis"].skipped == 3
    assert {status for status, *_ in rows(db, "scene_analysis").values()} == {"skipped"}
    assert len(processed("age_gender")) == 6, "--force reran the dependent over the skipped photos"

    install_model(settings.models_root)
    again = run(settings, db, tmp_path / "lib", force=True)
    assert again.stages["scene_analysis"].completed == 3 and len(processed("scene_analysis")) == 6


def test_stage_skipped_from_process_skips_that_photo_only(settings, db, tmp_path, caplog):
    install_model(settings.models_root)
    make_library(tmp_path / "lib", 2)
    for seed in (1, 2):
        write_jpeg(tmp_path / "lib" / f"panorama_{seed}.jpg", seed=seed)
    caplog.set_level(logging.INFO)
    summary = run(settings, db, tmp_path / "lib", parallel=2)

    scene = rows(db, "scene_analysis")
    for name in ("panorama_1.jpg", "panorama_2.jpg"):
        status, error, attempts, _ = scene[name]
        assert (status, error, attempts) == ("skipped", SKIP_MESSAGE, 0), "not a failure, no attempt counted"
    assert [s for s, *_ in scene.values()].count("completed") == 2
    assert "panorama_1.jpg" in processed("age_gender") and len(processed("age_gender")) == 4
    assert logged(caplog, SKIP_MESSAGE) == 1, "one line per reason per run"
    stage = summary.stages["scene_analysis"]
    assert (stage.completed, stage.failed, stage.skipped, stage.skip_reasons) == (2, 0, 2, {SKIP_MESSAGE: 2})
    assert summary.skipping == {} and summary.stopped_by is None

    caplog.clear()
    again = run(settings, db, tmp_path / "lib")  # the stage is available: its skipped photos are tried again
    assert again.stages["scene_analysis"].skipped == 2 and logged(caplog, SKIP_MESSAGE) == 1
    assert sorted(attempts for _, _, attempts, _ in rows(db, "scene_analysis").values()) == [0, 0, 1, 1]


class RecordingProgress:
    """A progress sink that keeps what the runner told it."""

    def __init__(self) -> None:
        self.reasons: list[dict[str, str]] = []
        self.last: dict[str, StageCounts] = {}

    def skipping(self, reasons: dict[str, str]) -> None:
        self.reasons.append(reasons)

    def update(self, counts: dict[str, StageCounts], registered: int, discovering: bool) -> None:
        self.last = counts


def test_progress_is_told_the_reason_once_and_counts_the_skipped(settings, db, tmp_path):
    make_library(tmp_path / "lib", 3)
    progress = RecordingProgress()
    run(settings, db, tmp_path / "lib", progress=progress)
    assert progress.reasons == [{"scene_analysis": reason_for(settings)}]
    assert progress.last["scene_analysis"] == StageCounts(skipped=3)
    assert progress.last["scene_analysis"].settled == 3


def test_stages_are_built_in_init_order_and_run_in_pipeline_order(settings, db, tmp_path, monkeypatch):
    """age_gender, then scene_analysis, then the real detection stage (its YOLO may load CoreML)."""
    tiny_stages.register(monkeypatch, "scene_analysis", "age_gender", "detection")
    install_model(settings.models_root)
    write_jpeg(tmp_path / "lib" / "one.jpg", size=(200, 150), seed=3)
    offline = settings.model_copy(update={"detection_backend": "offline", "detection_force_cpu": True})
    stages = ["normalize", "detection", "scene_analysis", "age_gender"]
    summary = run(offline, db, tmp_path / "lib", stages=stages)
    assert tiny_stages.constructed() == ["age_gender", "scene_analysis", "detection"]
    assert list(summary.stages) == stages
    assert summary.stages["detection"].completed == 1 and summary.stages["age_gender"].completed == 1
    assert sorted(INIT_ORDER) == sorted(PIPELINE_ORDER)
