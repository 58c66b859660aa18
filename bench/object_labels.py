"""Object labels per photo: `ObjectLabeler.labels()` against the bare onnxruntime call, same inputs, same run.

    .venv/bin/python bench/object_labels.py [--rounds 5] [--threads 1]

For each sample photo (examples/photos, decodable ones) it prints the labels found, the bare
network call on the already letterboxed input, the whole labels() call (letterbox, network,
decode, NMS) and their ratio. Times are the best of --rounds (other load only slows a round
down). --threads sets onnxruntime's intra-op threads for both, so the ratio compares like with like.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from pillow_heif import register_heif_opener  # noqa: E402

from photodb.ml.object_labels import ObjectLabeler, letterbox  # noqa: E402

SAMPLES = ROOT / "examples" / "photos"


def best_of(rounds: int, call: object) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def sample_images() -> list[tuple[str, np.ndarray]]:
    register_heif_opener()
    images = []
    for path in sorted(SAMPLES.rglob("*")):
        if path.suffix.lower() not in {".jpg", ".png", ".heic", ".avif"}:
            continue
        try:
            with Image.open(path) as image:
                images.append(
                    (str(path.relative_to(SAMPLES)), np.asarray(ImageOps.exif_transpose(image).convert("RGB")))
                )
        except OSError:
            continue  # the deliberately broken samples
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    labeler = ObjectLabeler(min_confidence=0.4, force_cpu=True, threads=args.threads)
    labeler.load()

    print(f"{'photo':45} {'size':>10} {'bare ms':>8} {'labels ms':>9} {'ratio':>6}  labels")
    bare_total = full_total = 0.0
    for name, image in sample_images():
        batch, _ = letterbox(image)
        labeler.labels(image)  # warm-up for this input shape
        bare = best_of(args.rounds, lambda b=batch: labeler._session.run(None, {labeler._input_name: b}))
        full = best_of(args.rounds, lambda i=image: labeler.labels(i))
        bare_total, full_total = bare_total + bare, full_total + full
        found = ", ".join(f"{label} {confidence:.2f}" for label, confidence in labeler.labels(image)) or "-"
        size = f"{image.shape[1]}x{image.shape[0]}"
        print(f"{name:45} {size:>10} {bare * 1e3:8.1f} {full * 1e3:9.1f} {full / bare:6.2f}  {found}")
    print(f"{'all':45} {'':>10} {bare_total * 1e3:8.1f} {full_total * 1e3:9.1f} {full_total / bare_total:6.2f}")


if __name__ == "__main__":
    main()
