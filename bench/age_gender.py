"""age_gender stage throughput and overhead: the stage against the bare model call, same photos, same run.

    .venv/bin/python bench/age_gender.py [--photos 24] [--repeat 3]

The public face samples (repeated) are normalized and run through the real offline detection
stage once (setup, not timed) into an embedded, temporary PostgreSQL. Then, in interleaved
rounds (best of --repeat, as other load only ever slows a round down):

- bare model: `model.predict(image, people)` on images decoded beforehand (the target's baseline);
- Pillow decode + model: reading the normalized PNG as the stage did before the run's stages
  shared decoded images, and the same call (the floor of the stage as it was);
- stage, own decode: `AgeGenderStage.process` with nothing decoded yet (the shared images emptied
  per photo), as in a run of age_gender alone (`--stage age_gender --force`);
- stage, image shared: `process` with the image decoded earlier in the process (by detection, in a
  process-local run), at --parallel 1 and 8 (8 threads sharing the stage);
- bare / stage after detection: the model call alone, and `process`, each timed right after the
  detection stage processed the same photo in the same process (untimed), as process-local runs
  them: detection's decode is what the stage uses, and detection's after-effects (busy threads,
  cold caches) hit both alike.

Printed: photos/s and ms per photo of each, and the stage rows over their bare call (the target is
<= 1.2x). The stage rows include the database, which the bare call does not: one read of the
photo's detections and one UPDATE of their estimates (committed asynchronously, see
AgeGenderRepository.store_estimates). Inference is serialised, so --parallel 8 gains only the
overlap of database work with the model. Before this change the stage decoded with Pillow and
committed synchronously: run the bench at an earlier commit for that figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from bench._common import embedded_server, fresh_database  # noqa: E402
from PIL import Image  # noqa: E402

from photodb.config import Settings  # noqa: E402
from photodb.database.connection import Database  # noqa: E402
from photodb.database.models import Photo  # noqa: E402
from photodb.database.repository import PhotoRepository  # noqa: E402
from photodb.ml.age_gender import PersonBoxes  # noqa: E402
from photodb.stages.age_gender import AgeGenderStage  # noqa: E402
from photodb.stages.base import StageContext  # noqa: E402
from photodb.stages.detection import DetectionStage  # noqa: E402
from tests.photos import add_normalized_photo  # noqa: E402

SAMPLES = ROOT / "examples" / "photos" / "faces"


def pil_rgb(path: Path) -> np.ndarray:
    """The normalized PNG as the stage decoded it before the shared images (Pillow)."""
    with Image.open(path) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def measure(scratch: Path, admin: str, count: int, repeat: int) -> tuple[dict[str, float], int]:
    """Seconds of each row for `count` photos, and how many faces they hold."""
    sources = sorted(SAMPLES.rglob("*.jpg"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=fresh_database(admin, "bench_age_gender"),
        photodb_home=scratch / "home",
        img_path=scratch / "images",
        models_dir=scratch / "models",  # empty: the offline models
        detection_backend="offline",
        detection_force_cpu=True,
    )
    with Database(settings, pool_size=10) as db:
        collection = PhotoRepository(db).get_or_create_collection("default")
        photos: list[Photo] = [add_normalized_photo(db, settings, sources[i % len(sources)]) for i in range(count)]
        context = StageContext(settings, db, collection, parallel=8)  # one context: the run's shared images
        detection = DetectionStage(context)
        for photo in photos:
            detection.process(photo)
        stage = AgeGenderStage(context)
        assert stage.model is not None, stage.skip_reason
        model = stage.model
        people = [stage.repository.people_of_photo(photo.id) for photo in photos]
        paths = [settings.images_dir / str(photo.normalized_path) for photo in photos]
        images = [pil_rgb(path) for path in paths]

        def bare() -> None:
            for image, persons in zip(images, people, strict=True):
                model.predict(image, persons)

        def pil_decode_and_model() -> None:
            for path, persons in zip(paths, people, strict=True):
                model.predict(pil_rgb(path), persons)

        def stage_own_decode() -> float:
            spent = 0.0
            for photo in photos:
                context.images.clear()  # nothing decoded yet: the stage decodes the PNG itself
                started = time.perf_counter()
                stage.process(photo)
                spent += time.perf_counter() - started
            return spent

        def stage_image_shared(workers: int) -> Callable[[], float]:
            def run() -> float:
                context.images.clear()
                for path in paths:
                    context.images.rgb(path)  # decoded earlier in the run (the budget holds them all)
                started = time.perf_counter()
                if workers == 1:
                    for photo in photos:
                        stage.process(photo)
                else:
                    with ThreadPoolExecutor(workers) as pool:
                        list(pool.map(stage.process, photos))
                return time.perf_counter() - started

            return run

        def after_detection(timed: Callable[[Photo, np.ndarray, list[PersonBoxes]], object]) -> Callable[[], float]:
            def run() -> float:
                spent = 0.0
                for photo in photos:
                    context.images.clear()  # as in a run: what detection decoded for this photo
                    detection.process(photo)
                    image = context.normalized_rgb(photo)  # untimed: the bare call's inputs
                    persons = stage.repository.people_of_photo(photo.id)
                    started = time.perf_counter()
                    timed(photo, image, persons)
                    spent += time.perf_counter() - started
                return spent

            return run

        rows: dict[str, Callable[[], float | None]] = {
            "bare model": bare,
            "Pillow decode + model": pil_decode_and_model,
            "stage, own decode": stage_own_decode,
            "stage, image shared": stage_image_shared(1),
            "stage, image shared -p 8": stage_image_shared(8),
            "bare after detection": after_detection(lambda _, image, persons: model.predict(image, persons)),
            "stage after detection": after_detection(lambda photo, _, __: stage.process(photo)),
        }
        bare()  # warm-up: first calls allocate
        seconds = dict.fromkeys(rows, float("inf"))
        for _ in range(repeat):  # interleaved rounds: load changes hit every row alike
            for name, run in rows.items():
                started = time.perf_counter()
                timed = run()
                elapsed = time.perf_counter() - started if timed is None else timed
                seconds[name] = min(seconds[name], elapsed)
        stage.close()
        detection.close()
    return seconds, sum(1 for persons in people for p in persons if p.face is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="photodb-bench-"))
    try:
        with embedded_server(scratch / "pg") as admin:
            seconds, faces = measure(scratch, admin, args.photos, args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{args.photos} photos, {faces} faces; {os.cpu_count()} CPUs, load1 {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(f"{'':22s} {'photos/s':>9s} {'ms/photo':>9s}")
    for name, value in seconds.items():
        print(f"{name:22s} {args.photos / value:9.1f} {1000 * value / args.photos:9.1f}")
    bare = seconds["bare model"]
    for name in ("stage, own decode", "stage, image shared", "stage, image shared -p 8"):
        print(f"{name + ' / bare model:':44s} {seconds[name] / bare:.2f}x")
    after = seconds["stage after detection"] / seconds["bare after detection"]
    print(f"{'stage after detection / bare after detection:':44s} {after:.2f}x")


if __name__ == "__main__":
    main()
