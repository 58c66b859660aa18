"""Scene analysis throughput: --parallel 1 and 8, batched and unbatched, against the bare model call.

    .venv/bin/python bench/scene_analysis.py [--photos 24] [--faces 2] [--parallel 1,8] [--model mobileclip]

Every configuration runs the real SceneAnalysisStage on the same generated photos (640x480, each
with --faces face boxes stored as detections) into a real (embedded, temporary) PostgreSQL, with
the shipped default prompt set (9 categories, 61 labels). `--model mobileclip` is MobileCLIP-S2
with random weights (the real architecture and cost; tags are meaningless), cached under
$PHOTODB_BENCH_CACHE; `--model tiny` is the test suite's tiny CLIP (trained first, ~1-2 min).

Printed: photos/s per configuration (best of --repeat interleaved rounds) and the ratio to
--parallel 1; batched / unbatched at each level; and the stage's time per photo at --parallel 1
against the bare model work on the same inputs (decode the PNG, crop the faces, preprocess, one
image-encoder call for the photo and one for its faces): the stage's own overhead (database
reads and writes, classification) is the ratio above 1 (target <= 1.2x). On a CPU the stage does
not batch unless BATCH_COORDINATOR_ON_CPU, so batched rows force it to show what it would cost.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.tiny_clip: the test-time model factories

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench._common import cache_dir, peak_rss_mib  # noqa: E402
from PIL import Image  # noqa: E402

from photodb.config import Settings  # noqa: E402
from photodb.database.connection import Database  # noqa: E402
from photodb.database.detection_repository import DetectionRepository, NewDetection  # noqa: E402
from photodb.database.models import Photo  # noqa: E402
from photodb.database.repository import PhotoRepository  # noqa: E402
from photodb.database.scene_repository import FaceBox  # noqa: E402
from photodb.ml.boxes import Box  # noqa: E402
from photodb.stages.base import StageContext  # noqa: E402
from photodb.stages.scene_analysis import SceneAnalysisStage, _face_crop  # noqa: E402
from tests.photos import add_normalized_photo  # noqa: E402
from tests.tiny_clip import COLOURS, SHAPES, ClipFiles, draw_shape, make_random_mobileclip  # noqa: E402

WIDTH, HEIGHT = 640, 480


def model_files(kind: str, scratch: Path) -> ClipFiles:
    if kind == "mobileclip":
        cached = cache_dir() / "mobileclip_random"
        weights = cached / "mobileclip_s2.safetensors"
        if not weights.is_file():
            return make_random_mobileclip(cached)
        from photodb.ml.files import file_sha256

        return ClipFiles("MobileCLIP-S2", weights, file_sha256(weights))
    from tests.tiny_clip import _train_tiny

    (scratch / "tiny").mkdir()
    return _train_tiny(scratch / "tiny")


def make_photos(db: Database, settings: Settings, count: int, faces: int, scratch: Path) -> list[Photo]:
    rng = np.random.default_rng(0)
    photos = []
    for i in range(count):
        tiles = [draw_shape(c, s, rng, size=160) for c in COLOURS for s in SHAPES]
        canvas = Image.new("RGB", (WIDTH, HEIGHT))
        for j, tile in enumerate(tiles[: (WIDTH // 160) * (HEIGHT // 160)]):
            canvas.paste(tile, ((j % 4) * 160, (j // 4) * 160))
        source = scratch / f"photo-{i}.png"
        canvas.save(source)
        photo = add_normalized_photo(db, settings, source)
        boxes = [NewDetection(Box(40 + 160 * k, 60, 90, 100, 0.9), None) for k in range(faces)]
        DetectionRepository(db).replace_detections(photo.id, boxes, "bench", "1")
        photos.append(photo)
    return photos


def run_stage(
    db: Database, settings: Settings, photos: list[Photo], parallel: int, batched: bool
) -> tuple[float, float]:
    """Seconds for the stage to process every photo with `parallel` threads, and of those the
    seconds spent in the image encoder (unbatched runs only: the coordinators hold the method)."""
    settings = settings.model_copy(update={"batch_coordinator_enabled": batched, "batch_coordinator_on_cpu": batched})
    collection = PhotoRepository(db).get_or_create_collection("default")
    stage = SceneAnalysisStage(StageContext(settings, db, collection, parallel=parallel))
    assert (stage.clip_coordinator is not None) == (batched and parallel > 1)
    encode = stage.clip.encode_image_batch
    in_model = [0.0]
    lock = threading.Lock()

    def timed(batch: torch.Tensor) -> torch.Tensor:
        began = time.perf_counter()
        try:
            return encode(batch)
        finally:
            with lock:
                in_model[0] += time.perf_counter() - began

    stage.clip.encode_image_batch = timed  # type: ignore[method-assign]
    try:
        stage.process(photos[0])  # warm-up: first-call allocations
        in_model[0] = 0.0
        started = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(stage.process, photos))
        return time.perf_counter() - started, in_model[0]
    finally:
        stage.close()


def run_bare(stage: SceneAnalysisStage, settings: Settings, photos: list[Photo], faces: list[list[FaceBox]]) -> float:
    """Seconds for the model work alone on the same inputs, one thread."""
    clip = stage.clip
    started = time.perf_counter()
    for photo, boxes in zip(photos, faces, strict=True):
        with Image.open(settings.images_dir / str(photo.normalized_path)) as opened:
            image = opened.convert("RGB")
        clip.encode_image_batch(clip.preprocess(image))
        if boxes:
            clip.encode_image_batch(torch.cat([clip.preprocess(_face_crop(image, box)) for box in boxes]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--faces", type=int, default=2, help="face boxes per photo (at most 4)")
    parser.add_argument("--parallel", default="1,8")
    parser.add_argument("--model", choices=("mobileclip", "tiny"), default="mobileclip")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each figure is its best round")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)  # the machine is shared: one core per figure unless told
    levels = sorted({1, *(int(p) for p in args.parallel.split(","))})

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        files = model_files(args.model, scratch)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            photodb_home=scratch / "home",
            img_path=scratch / "images",
            **files.settings_overrides(),  # type: ignore[arg-type]
        )
        with Database(settings, pool_size=max(levels) + 2) as db:
            photos = make_photos(db, settings, args.photos, min(args.faces, 4), scratch)
            collection = PhotoRepository(db).get_or_create_collection("default")
            started = time.perf_counter()
            probe = SceneAnalysisStage(StageContext(settings, db, collection))  # stores and embeds the defaults
            print(
                f"model: {args.model} ({probe.clip.model_name}) on {probe.clip.device}; {args.photos} photos "
                f"{WIDTH}x{HEIGHT} with {args.faces} faces; first start (defaults embedded): "
                f"{time.perf_counter() - started:.1f}s"
            )
            faces = [probe.repository.face_boxes(p.id) for p in photos]
            with ThreadPoolExecutor(1) as pool:
                pool.submit(run_bare, probe, settings, photos[:1], faces[:1]).result()  # warm-up
            configs = [(p, b) for p in levels for b in (False, True) if p > 1 or not b]
            seconds: dict[tuple[int, bool], float] = {}
            bare = float("inf")
            model_seconds = 0.0
            for _ in range(args.repeat):  # rounds interleave configurations: drift hits all alike
                with ThreadPoolExecutor(1) as pool:  # a worker thread, as the stage's (torch threads are per thread)
                    bare = min(bare, pool.submit(run_bare, probe, settings, photos, faces).result())
                for config in configs:
                    took, encoding = run_stage(db, settings, photos, *config)
                    if took < seconds.get(config, float("inf")):
                        seconds[config] = took
                        if config == (1, False):
                            model_seconds = encoding
            probe.close()

    reference = args.photos / seconds[1, False]
    print(f"\n{'parallel':>8} {'batched':>8} {'photos/s':>9} {'ratio':>6}")
    for parallel, batched in configs:
        speed = args.photos / seconds[parallel, batched]
        print(f"{parallel:>8} {'yes' if batched else 'no':>8} {speed:>9.2f} {speed / reference:>5.2f}x")
    for parallel in levels:
        if parallel > 1:
            gain = seconds[parallel, False] / seconds[parallel, True]
            print(f"batched/unbatched at --parallel {parallel}: {gain:.2f}x")
    per_photo, bare_per_photo = seconds[1, False] / args.photos, bare / args.photos
    inside = model_seconds / args.photos
    print(
        f"stage at --parallel 1: {per_photo * 1000:.1f} ms/photo; bare model work on the same inputs: "
        f"{bare_per_photo * 1000:.1f} ms/photo; stage / bare = {per_photo / bare_per_photo:.2f}x (target <= 1.2x)"
    )
    print(
        f"inside the stage: encoder calls {inside * 1000:.1f} ms/photo, everything else "
        f"{(per_photo - inside) * 1000:.1f} ms/photo (decode, crops, preprocessing, prompts, database)"
    )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
