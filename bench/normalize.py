"""Photos/s of the normalize + metadata stages next to a bare Pillow loop on the same JPEGs.

    .venv/bin/python bench/normalize.py                    # 200 x 12 MP, the issue's figures
    .venv/bin/python bench/normalize.py --photos 20 --megapixels 2   # quick check

Inputs (JPEGs with EXIF: dates, camera, GPS, orientations 1/3/6/8) are generated once and kept
under $PHOTODB_BENCH_CACHE (default /tmp/photodb-bench-cache). Every configuration runs in its
own subprocess so that its peak RSS is its own; the LocalProcessor runs get a fresh database
on one embedded PostgreSQL and a fresh IMG_PATH each. Timed: `LocalProcessor.run()` from start
to summary (registration with hashing, claims, both stages, all database writes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import piexif
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cache_dir, embedded_server, environment, fresh_database, peak_rss_mib, print_table

ORIENTATIONS = (1, 1, 6, 1, 8, 3)  # mostly upright, some quarter and half turns, like a phone library
CAMERAS = ((b"Apple", b"iPhone 13"), (b"Canon", b"Canon EOS R6"), (b"SONY", b"ILCE-7M3"), (b"Google", b"Pixel 7"))


@dataclass
class Result:
    """What one configuration measured (printed as one table row)."""

    mode: str
    photos: int
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    note: str = ""
    load: float = 0.0  # 1-minute load average of the whole machine when the run ended


# -- inputs ----------------------------------------------------------------------------------


def _exif(index: int) -> bytes:
    make, model = CAMERAS[index % len(CAMERAS)]
    day = 1 + index % 28
    lat = (48 + index % 7, 1), (index % 60, 1), (1234 + index, 100)
    lon = (2 + index % 5, 1), ((index * 7) % 60, 1), (4321 + index, 100)
    return piexif.dump(
        {
            "0th": {
                piexif.ImageIFD.Make: make,
                piexif.ImageIFD.Model: model,
                piexif.ImageIFD.Orientation: ORIENTATIONS[index % len(ORIENTATIONS)],
                piexif.ImageIFD.DateTime: f"2023:06:{day:02d} 12:00:00".encode(),
            },
            "Exif": {
                piexif.ExifIFD.DateTimeOriginal: f"2023:06:{day:02d} 10:{index % 60:02d}:00".encode(),
                piexif.ExifIFD.OffsetTimeOriginal: b"+02:00",
                piexif.ExifIFD.ISOSpeedRatings: 100 + index % 8 * 100,
                piexif.ExifIFD.FNumber: (18, 10),
                piexif.ExifIFD.ExposureTime: (1, 250),
                piexif.ExifIFD.FocalLength: (26, 1),
                piexif.ExifIFD.LensModel: b"26mm f/1.8",
            },
            "GPS": {
                piexif.GPSIFD.GPSLatitudeRef: b"N" if index % 3 else b"S",
                piexif.GPSIFD.GPSLatitude: lat,
                piexif.GPSIFD.GPSLongitudeRef: b"E" if index % 2 else b"W",
                piexif.GPSIFD.GPSLongitude: lon,
                piexif.GPSIFD.GPSAltitude: (35 + index, 1),
            },
        }
    )


def _write_photo(args: tuple[Path, int, int, int]) -> None:
    """One photo: smooth colour waves + blotchy mid-frequency texture + sensor-like grain."""
    target, index, width, height = args
    rng = np.random.default_rng(index)
    x = np.linspace(0, 1, width, dtype=np.float32)
    y = np.linspace(0, 1, height, dtype=np.float32)
    pixels = np.empty((height, width, 3), np.float32)
    for channel in range(3):
        fx, fy, phase = rng.uniform(1, 6, 3)
        pixels[..., channel] = 128 + 70 * np.sin(fx * 6.28 * x + phase)[None, :] * np.cos(fy * 6.28 * y)[:, None]
    blotches = rng.integers(0, 255, (max(1, height // 16), max(1, width // 16), 3), dtype=np.uint8)
    pixels += (np.asarray(Image.fromarray(blotches).resize((width, height), Image.Resampling.BICUBIC)) - 128) / 4
    pixels += rng.integers(-12, 13, (height, width, 3), dtype=np.int8)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    temporary = target.with_suffix(".part")
    image.save(temporary, "JPEG", quality=90, exif=_exif(index))
    os.replace(temporary, target)


def ensure_photos(count: int, megapixels: float) -> Path:
    """The cached folder of `count` generated JPEGs of about `megapixels` (4:3), made if missing."""
    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    folder = cache_dir() / f"jpeg-{width}x{height}-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [
        (folder / f"IMG_{i:05d}.jpg", i, width, height)
        for i in range(count)
        if not (folder / f"IMG_{i:05d}.jpg").exists()
    ]
    if missing:
        print(f"generating {len(missing)} {width}x{height} JPEGs into {folder} ...", flush=True)
        started = time.monotonic()
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(_write_photo, missing, chunksize=4))
        print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    return folder


# -- configurations (each runs in a child process) -------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pillow_one(source: Path, target: Path, compress_level: int) -> None:
    """The baseline for one photo: open, exif_transpose, convert, save PNG."""
    with Image.open(source) as opened:
        upright = ImageOps.exif_transpose(opened)
        upright.convert("RGB").save(target, format="PNG", compress_level=compress_level)


def run_baseline(photos: list[Path], out: Path, threads: int, compress_level: int) -> Result:
    """The bare Pillow loop over `photos`, on `threads` threads."""
    jobs = [(p, out / f"{p.stem}.png") for p in photos]
    cpu, started = _cpu_seconds(), time.monotonic()
    if threads == 1:
        for source, target in jobs:
            pillow_one(source, target, compress_level)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda job: pillow_one(*job, compress_level), jobs))
    seconds = time.monotonic() - started
    size = sum(t.stat().st_size for _, t in jobs)
    ratio = size / sum(source.stat().st_size for source, _ in jobs)
    return Result(
        f"pillow loop, {threads} thread{'s' if threads > 1 else ''}, png level {compress_level}",
        len(jobs), seconds, _cpu_seconds() - cpu, peak_rss_mib(),
        f"{size / len(jobs) / 2**20:.1f} MiB/png, full size; png/original bytes {ratio:.2f}x",
    )  # fmt: skip


def run_processor(folder: Path, count: int, database_url: str, work: Path, parallel: int, level: int) -> Result:
    """The real LocalProcessor with stages normalize + metadata on a fresh database."""
    from photodb.config import Settings
    from photodb.database.connection import Database, pool_max_size
    from photodb.processors.local_processor import LocalProcessor, RunOptions

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        photodb_home=work / "home",
        img_path=work / "images",
        png_compress_level=level,
    )
    db = Database(settings, pool_size=pool_max_size(parallel))
    try:
        options = RunOptions(stages=["normalize", "metadata"], parallel=parallel, max_photos=count)
        processor = LocalProcessor(settings, db, options)
        cpu, started = _cpu_seconds(), time.monotonic()
        summary = processor.run(folder)
        seconds = time.monotonic() - started
        cpu = _cpu_seconds() - cpu
    finally:
        db.close()
    done = {name: s.completed for name, s in summary.stages.items()}
    if any(v != count for v in done.values()) or summary.errors:
        raise SystemExit(f"processor did not complete every photo: {done} {summary.errors}")
    originals = sum(p.stat().st_size for p in sorted(folder.glob("*.jpg"))[:count])
    normalized = sum(p.stat().st_size for p in (work / "images").rglob("*.png"))
    with Image.open(next((work / "images").rglob("*.png"))) as sample:
        shape = f"{sample.width}x{sample.height}"
    note = f"normalized/original bytes {normalized / originals:.2f}x, {shape}"
    return Result(f"LocalProcessor --parallel {parallel}", count, seconds, cpu, peak_rss_mib(), note)


def child_main(spec: dict[str, object]) -> None:
    """Entry point of a child process: run one configuration, print its Result as JSON."""
    folder = Path(str(spec["folder"]))
    count = int(spec["count"])  # type: ignore[call-overload]
    work = Path(str(spec["work"]))
    level = int(spec["level"])  # type: ignore[call-overload]
    if spec["kind"] == "pillow":
        photos = sorted(folder.glob("*.jpg"))[:count]
        out = work / "png"
        out.mkdir(parents=True)
        result = run_baseline(photos, out, int(spec["threads"]), level)  # type: ignore[call-overload]
    else:
        result = run_processor(folder, count, str(spec["url"]), work, int(spec["threads"]), level)  # type: ignore[call-overload]
    result.load = os.getloadavg()[0]
    print("RESULT " + json.dumps(asdict(result)), flush=True)


def in_child(spec: dict[str, object]) -> Result:
    """Run one configuration in a fresh interpreter, then delete what it wrote."""
    work = Path(tempfile.mkdtemp(prefix="photodb-bench-"))
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps({**spec, "work": str(work)})],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"{spec['kind']} run failed:\n{done.stdout}\n{done.stderr}")
        result = Result(**json.loads(lines[-1].removeprefix("RESULT ")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"  {result.mode}: {result.photos / result.seconds:.2f} photos/s", flush=True)
    return result


# -- the report ------------------------------------------------------------------------------


def report(results: Iterable[Result], baseline: Result, by_parallel: dict[int, Result]) -> None:
    base_spp = baseline.seconds / baseline.photos
    rows = []
    for r in results:
        spp = r.seconds / r.photos
        speedup = ""
        if r.mode.startswith("LocalProcessor") and 1 in by_parallel and r is not by_parallel[1]:
            one = by_parallel[1]
            speedup = f"{(one.seconds / one.photos) / spp:.2f}x"
        elif r.mode.startswith("pillow loop, 2"):
            speedup = f"{base_spp / spp:.2f}x"
        rows.append([
            r.mode, r.photos, f"{r.photos / r.seconds:.2f}", f"{spp:.3f}", f"{spp / base_spp:.2f}",
            speedup, f"{r.cpu_seconds / r.photos:.3f}", f"{r.cpu_seconds / r.seconds:.2f}",
            f"{r.peak_rss_mib:.0f}", f"{r.load:.1f}", r.note,
        ])  # fmt: skip
    print_table(
        ["mode", "photos", "photos/s", "s/photo", "vs baseline", "speed-up 1->N", "cpu s/photo",
         "cores used", "peak RSS MiB", "load1", "note"],
        rows,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--parallel", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--compare-photos", type=int, default=20,
                        help="photos for the png level 1 vs 6 comparison (0 skips it)")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return

    from photodb.config import Settings

    level = Settings(_env_file=None).png_compress_level  # type: ignore[call-arg]
    parallels = [int(p) for p in args.parallel.split(",")]
    folder = ensure_photos(args.photos, args.megapixels)
    sizes = [p.stat().st_size for p in sorted(folder.glob("*.jpg"))[: args.photos]]
    with Image.open(next(iter(sorted(folder.glob("*.jpg"))))) as sample:
        shape = f"{sample.width}x{sample.height}"
    print(environment())
    print(f"inputs: {len(sizes)} JPEGs {shape}, mean {sum(sizes) / len(sizes) / 2**20:.2f} MiB, EXIF with "
          f"orientations {sorted(set(ORIENTATIONS))}; png_compress_level={level} (Settings default)\n")  # fmt: skip

    common = {"folder": str(folder), "count": args.photos, "level": level}
    results: list[Result] = []
    baseline = in_child({**common, "kind": "pillow", "threads": 1})
    results.append(baseline)
    results.append(in_child({**common, "kind": "pillow", "threads": 2}))
    by_parallel: dict[int, Result] = {}
    with tempfile.TemporaryDirectory(prefix="photodb-bench-pg-") as home, embedded_server(Path(home)) as admin:
        for parallel in parallels:
            url = fresh_database(admin, f"bench_normalize_p{parallel}")
            by_parallel[parallel] = in_child({**common, "kind": "processor", "threads": parallel, "url": url})
            results.append(by_parallel[parallel])
    print()
    report(results, baseline, by_parallel)

    if args.compare_photos:
        n = min(args.compare_photos, args.photos)
        print(f"\npng compress_level for the stage (pillow loop, 1 thread, first {n} photos):")
        rows = []
        for lvl in (1, 6):
            r = in_child({**common, "count": n, "kind": "pillow", "threads": 1, "level": lvl})
            rows.append([lvl, f"{r.photos / r.seconds:.2f}", f"{r.seconds / r.photos:.3f}", r.note])
        print_table(["compress_level", "photos/s", "s/photo", "size"], rows)


if __name__ == "__main__":
    main()
