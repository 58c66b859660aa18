"""Scene analysis without the CLIP weights (object labels only) across runs: the real stage, runner and database.

A labels-only run stores object labels and records each photo as skipped with the stage's
`partial_reason`. The next labels-only run has nothing more to do for them and re-queues none;
a run that can do more (a labeller appeared, or the CLIP weights) re-queues and runs them.
"""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from photodb import stages
from photodb.database.models import Photo
from photodb.processors.local_processor import LocalProcessor, RunOptions
from photodb.stages.scene_analysis import SceneAnalysisStage
from tests.samples import SAMPLES
from tests.tiny_clip import ClipFiles, draw_shape, tiny_clip  # noqa: F401  (session fixture)

pytest.importorskip("photodb.ml.object_labels")

_lock = threading.Lock()
PROCESSED: list[str] = []


class CountingSceneStage(SceneAnalysisStage):
    """The real scene analysis stage, noting each photo it is given (each one runs its models)."""

    def process(self, photo: Photo) -> None:
        with _lock:
            PROCESSED.append(photo.filename)
        super().process(photo)


@pytest.fixture(autouse=True)
def counting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(stages.IMPLEMENTED_STAGES, "scene_analysis", f"{__name__}:CountingSceneStage")
    PROCESSED.clear()


def run(settings, db, root, stages=("scene_analysis",)):
    return LocalProcessor(settings, db, RunOptions(stages=list(stages))).run(root)


def scene_rows(db) -> dict[str, tuple]:
    with db.connection() as conn:
        found = conn.execute(
            """SELECT p.filename, s.status, s.error_message, s.updated_at
               FROM processing_status s JOIN photo p ON p.id = s.photo_id WHERE s.stage = 'scene_analysis'"""
        ).fetchall()
    return {r[0]: r[1:] for r in found}


def object_labels(db) -> set[tuple[str, str]]:
    with db.connection() as conn:
        found = conn.execute(
            "SELECT p.filename, t.label FROM photo_tag t JOIN photo p ON p.id = t.photo_id WHERE t.category = 'object'"
        ).fetchall()
    return set(found)


def test_labels_only_runs_once_and_the_clip_weights_finish_the_photos(
    settings,
    db,
    tmp_path,
    tiny_clip: ClipFiles,  # noqa: F811
):
    library = tmp_path / "lib"
    library.mkdir()
    shutil.copy(SAMPLES / "faces" / "face_recognition" / "obama.jpg", library / "obama.jpg")
    rng = np.random.default_rng(3)
    for colour, shape in (("red", "circle"), ("blue", "square")):
        draw_shape(colour, shape, rng, size=96).save(library / f"{colour}-{shape}.jpg", quality=95)
    photos = {"obama.jpg", "red-circle.jpg", "blue-square.jpg"}
    run(settings, db, library, stages=["normalize"])

    no_labeller = run(settings.model_copy(update={"object_labels_enabled": False}), db, library)
    bare_reason = no_labeller.skipping["scene_analysis"]
    assert bare_reason.startswith("model not found: ") and PROCESSED == [], "no model at all: never claimed"

    first = run(settings, db, library)  # a labeller appeared: the stage can do more than last time
    assert sorted(PROCESSED) == sorted(photos)
    partial = next(iter(first.stages["scene_analysis"].skip_reasons))
    assert partial.startswith(bare_reason) and partial != bare_reason and "yolo11n:coco" in partial
    assert first.stages["scene_analysis"].skip_reasons == {partial: 3}
    assert ("obama.jpg", "person") in object_labels(db)
    after_first = scene_rows(db)
    assert {status for status, *_ in after_first.values()} == {"skipped"}

    second = run(settings, db, library)  # the same labels-only run: nothing more to do, no model runs
    assert sorted(PROCESSED) == sorted(photos), "no photo was processed again"
    assert scene_rows(db) == after_first, "no row was re-queued or touched"
    stage = second.stages["scene_analysis"]
    assert (stage.completed, stage.skipped, stage.skip_reasons) == (0, 3, {partial: 3})

    with_clip = run(settings.model_copy(update=tiny_clip.settings_overrides()), db, library)
    assert len(PROCESSED) == 6 and sorted(PROCESSED[3:]) == sorted(photos)
    assert {status for status, *_ in scene_rows(db).values()} == {"completed"}
    stage = with_clip.stages["scene_analysis"]
    assert (stage.completed, stage.skipped, stage.skip_reasons) == (3, 0, {})
    with db.connection() as conn:
        models = conn.execute("SELECT DISTINCT clip_model, object_model FROM scene_analysis").fetchall()
    assert models == [("openclip:TinyCLIP-shapes", "yolo11n:coco")]
    assert ("obama.jpg", "person") in object_labels(db), "the full run keeps the object labels"
