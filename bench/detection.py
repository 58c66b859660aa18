"""Detection stage throughput: --parallel N with and without BatchCoordinator, same photos, same run.

    .venv/bin/python bench/detection.py [--photos 24] [--parallel 1,4,8] [--sets offline,yolo]

Every configuration processes the same normalized photos (the public face samples, repeated)
through the real stage into a real (embedded, temporary) PostgreSQL. Figures are photos/s (the
best of --repeat interleaved rounds, as other load on the machine only ever slows a round down)
and the ratio to --parallel 1 unbatched of the same model set, plus the process's peak RSS.
The yolo set uses random weights (the real files cannot be downloaded here): its speed is the
real network's, its detections are not. On a CUDA machine the device is printed and --parallel 32
is added, to show the batched/unbatched speed-up where batching matters most.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test-time model factories

from PIL import Image, ImageOps  # noqa: E402

from detection_models import make_arcface_onnx, make_random_yolo  # noqa: E402
from photodb.config import Settings  # noqa: E402
from photodb.database.connection import Database  # noqa: E402
from photodb.database.models import Photo  # noqa: E402
from photodb.database.repository import PhotoRepository  # noqa: E402
from photodb.ml.base import select_device  # noqa: E402
from photodb.ml.files import file_sha256  # noqa: E402
from photodb.stages.base import StageContext  # noqa: E402
from photodb.stages.detection import DetectionStage  # noqa: E402

SAMPLES = ROOT / "examples" / "photos" / "faces"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def add_photos(db: Database, settings: Settings, count: int) -> list[Photo]:
    sources = sorted(SAMPLES.rglob("*.jpg"))
    if not sources:
        raise SystemExit(f"no sample photos under {SAMPLES}")
    settings.images_dir.mkdir(parents=True, exist_ok=True)
    repo = PhotoRepository(db)
    photos = []
    for i in range(count):
        source = sources[i % len(sources)]
        photo_uuid = uuid.uuid4()
        with Image.open(source) as image:
            normalized = ImageOps.exif_transpose(image).convert("RGB")
        normalized.save(settings.images_dir / f"{photo_uuid}.png", compress_level=1)
        with db.connection() as conn:
            row = conn.execute(
                """INSERT INTO photo (collection_id, uuid, filename, normalized_path,
                                      normalized_width, normalized_height)
                   VALUES ((SELECT id FROM collection WHERE name = 'default'), %s, %s, %s, %s, %s)
                   RETURNING id""",
                (photo_uuid, f"{i:04d}-{source.name}", f"{photo_uuid}.png", *normalized.size),
            ).fetchone()
        assert row is not None
        photos.append(repo.get_photo(row[0]))
    return photos


def run_config(db: Database, settings: Settings, photos: list[Photo], parallel: int, batched: bool) -> float:
    # On CPU the stage only batches when told to (BATCH_COORDINATOR_ON_CPU): force it to measure.
    settings = settings.model_copy(update={"batch_coordinator_enabled": batched, "batch_coordinator_on_cpu": batched})
    collection = PhotoRepository(db).get_or_create_collection("default")
    stage = DetectionStage(StageContext(settings, db, collection, parallel=parallel))
    assert (stage.yolo_coordinator is not None) == (batched and parallel > 1)
    try:
        stage.process(photos[0])  # warm-up: first-call allocations, lazy kernels
        started = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(stage.process, photos))
        return len(photos) / (time.perf_counter() - started)
    finally:
        stage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--parallel", default="1,4,8")
    parser.add_argument("--sets", default="offline,yolo")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is its best round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    device = select_device()
    levels = [int(p) for p in args.parallel.split(",")]
    if device.startswith("cuda") and 32 not in levels:
        levels.append(32)
    print(f"device: {device}; photos per configuration: {args.photos}")

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        models = home / "models"
        detection = make_random_yolo(models / "yolov8x_person_face.pt")
        arcface = make_arcface_onnx(models / "buffalo_l" / "w600k_r50.onnx", fixed_batch=False)
        base = Settings(
            _env_file=None,  # type: ignore[call-arg]
            photodb_home=home / "home",
            img_path=home / "images",
            models_dir=models,
            detection_model_sha256=file_sha256(detection),  # stand-ins: pinned like a user's own files
            arcface_model_sha256=file_sha256(arcface),
        )
        with Database(base, pool_size=max(levels) + 2) as db:
            photos = add_photos(db, base, args.photos)
            for model_set in args.sets.split(","):
                settings = base.model_copy(update={"detection_backend": model_set})
                # The stage never batches a single worker, so --parallel 1 runs unbatched only.
                configs = [(p, b) for p in levels for b in (False, True) if p > 1 or not b]
                speeds: dict[tuple[int, bool], float] = {}
                rss: dict[tuple[int, bool], float] = {}
                for _ in range(args.repeat):  # rounds interleave configurations: drift hits all alike
                    for config in configs:
                        speed = run_config(db, settings, photos, *config)
                        speeds[config] = max(speed, speeds.get(config, 0.0))
                        rss.setdefault(config, peak_rss_mib())  # first round: growth per configuration
                reference = speeds[configs[0]]
                print(f"\n[{model_set}]  {'parallel':>8} {'batched':>8} {'photos/s':>9} {'ratio':>6} {'peak RSS':>9}")
                for parallel, batched in configs:
                    speed = speeds[parallel, batched]
                    print(
                        f"{'':>{len(model_set) + 3}}{parallel:>8} {'yes' if batched else 'no':>8} "
                        f"{speed:>9.2f} {speed / reference:>5.2f}x {rss[parallel, batched]:>7.0f}MiB"
                    )
                for parallel in levels:
                    if parallel > 1:
                        gain = speeds[parallel, True] / speeds[parallel, False]
                        print(f"  batched/unbatched at --parallel {parallel}: {gain:.2f}x")


if __name__ == "__main__":
    main()
