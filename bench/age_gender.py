"""age_gender stage throughput and overhead: the stage against the bare model call, same photos, same run.

    .venv/bin/python bench/age_gender.py [--photos 24] [--repeat 3]

The public face samples (repeated) are normalized and run through the real offline detection
stage once (setup, not timed) into an embedded, temporary PostgreSQL. Then, in interleaved
rounds (best of --repeat, as other load only ever slows a round down):

- bare model: `model.predict(image, people)` on images decoded beforehand;
- decode + model: reading the normalized PNG and the same call (the work the stage cannot avoid);
- stage --parallel 1 and 8: `AgeGenderStage.process` for every photo (read the detections,
  decode, predict under the stage's lock, store), 8 threads sharing one stage as the runner does.

Printed: photos/s of each, and the stage's time per photo over the bare call and over decode +
model (the target is <= 1.2x). Inference is serialised, so --parallel 8 gains only the overlap
of database and decoding work with the model.
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

from bench._common import embedded_server, fresh_database  # noqa: E402

from photodb.config import Settings  # noqa: E402
from photodb.database.connection import Database  # noqa: E402
from photodb.database.models import Photo  # noqa: E402
from photodb.database.repository import PhotoRepository  # noqa: E402
from photodb.stages.age_gender import AgeGenderStage, read_rgb  # noqa: E402
from photodb.stages.base import StageContext  # noqa: E402
from photodb.stages.detection import DetectionStage  # noqa: E402
from tests.photos import add_normalized_photo  # noqa: E402

SAMPLES = ROOT / "examples" / "photos" / "faces"


def best_seconds(run: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


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
        detection = DetectionStage(StageContext(settings, db, collection))
        for photo in photos:
            detection.process(photo)
        detection.close()
        stage = AgeGenderStage(StageContext(settings, db, collection, parallel=8))
        assert stage.model is not None, stage.skip_reason
        model = stage.model
        people = [stage.repository.people_of_photo(photo.id) for photo in photos]
        paths = [settings.images_dir / str(photo.normalized_path) for photo in photos]

        images = [read_rgb(path) for path in paths]

        def bare() -> None:
            for image, persons in zip(images, people, strict=True):
                model.predict(image, persons)

        def decode_and_model() -> None:
            for path, persons in zip(paths, people, strict=True):
                model.predict(read_rgb(path), persons)

        def stage_parallel(workers: int) -> Callable[[], None]:
            def run() -> None:
                if workers == 1:
                    for photo in photos:
                        stage.process(photo)
                    return
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(stage.process, photos))

            return run

        rows = {"bare model": bare, "decode + model": decode_and_model}
        rows |= {"stage --parallel 1": stage_parallel(1), "stage --parallel 8": stage_parallel(8)}
        bare()  # warm-up: first calls allocate
        seconds = {name: best_seconds(run, repeat) for name, run in rows.items()}
        stage.close()
    return seconds, sum(1 for persons in people for p in persons if p.face is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scratch = Path(tempfile.mkdtemp(prefix="photodb-bench-"))
    try:
        with embedded_server(scratch / "pg") as admin:
            seconds, faces = measure(scratch, admin, args.photos, args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.photos} photos, {faces} faces; {os.cpu_count()} CPUs, load1 {os.getloadavg()[0]:.1f}")
    print(f"{'':22s} {'photos/s':>9s} {'ms/photo':>9s}")
    for name, value in seconds.items():
        print(f"{name:22s} {args.photos / value:9.1f} {1000 * value / args.photos:9.1f}")
    stage_1, stage_8 = seconds["stage --parallel 1"], seconds["stage --parallel 8"]
    print(f"stage --parallel 1 / bare model:      {stage_1 / seconds['bare model']:.2f}x")
    print(f"stage --parallel 1 / decode + model:  {stage_1 / seconds['decode + model']:.2f}x")
    print(f"stage --parallel 8 speed-up:          {stage_1 / stage_8:.2f}x")


if __name__ == "__main__":
    main()
