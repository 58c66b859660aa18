"""Peak RSS and photos/s of a full `process-local` run: all five stages, CLIP included.

    .venv/bin/python bench/full_run.py [--copies 1] [--parallel 1 2]

The real MobileCLIP-S2 weights cannot be downloaded here, so the MobileCLIP-S2 architecture with
random weights, saved in the real file format where a user's downloaded file goes (as the tests
make it, tests/tiny_clip.py; kept in the bench cache), stands in: the same compute and memory,
meaningless tags. Detection and age/gender use the offline models (the defaults without model
files). The samples of README command 1 (examples/photos) are copied --copies times into a scratch
folder, and `process-local` runs on it as a child process, once per --parallel value, each time
against a fresh database on an embedded PostgreSQL.

Each --parallel value gets a fresh database and three runs: on the samples (the first run, which
also embeds the default prompt set into the database), on an empty folder of the same collection
(start-up alone: models loaded, prompts read back), and on the samples again with --force. Printed:
photos per stage, wall and CPU seconds (user + sys of the child) of each, the child's peak RSS
(ru_maxrss from wait4), and per photo the forced run less the start-up: photos/s and photos per
CPU-second, the per-core figure (the spec's is 2.5 photos/s on an M1 Max with its GPU). The
PostgreSQL server's CPU and memory are its own processes' and are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench._common import cache_dir, embedded_server, fresh_database  # noqa: E402

from tests.tiny_clip import ClipFiles, make_random_mobileclip  # noqa: E402

SAMPLES = ROOT / "examples" / "photos"
PROCESS_LOCAL = Path(sys.executable).parent / "process-local"


def random_mobileclip() -> ClipFiles:
    """The random-weight MobileCLIP-S2 in the bench cache (built once: it takes a while)."""
    from photodb.ml.files import file_sha256

    models = cache_dir() / "full_run_models"
    weights = models / "mobileclip_s2.safetensors"
    if weights.is_file():
        return ClipFiles("MobileCLIP-S2", weights, file_sha256(weights))
    return make_random_mobileclip(models)


def sample_folder(target: Path, copies: int) -> Path:
    for copy in range(copies):
        shutil.copytree(SAMPLES, target / f"copy{copy}", ignore=shutil.ignore_patterns("*.md", "*.json"))
    return target


def run(
    folder: Path, scratch: Path, database_url: str, clip: ClipFiles, parallel: int, *extra: str
) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=database_url,
        PHOTODB_HOME=str(scratch / "home"),
        IMG_PATH=str(scratch / "images"),
        MODELS_DIR=str(clip.weights.parent),
        LOG_LEVEL="WARNING",
        **clip.environment(),
    )
    out, err = scratch / "stdout.json", scratch / "stderr.txt"
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen(
            [str(PROCESS_LOCAL), str(folder), "--parallel", str(parallel), "--json", *extra],
            env=env, stdout=stdout, stderr=stderr,
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)  # the child's own resource usage, peak RSS included
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if child.returncode != 0:
        raise SystemExit(f"process-local failed:\n{err.read_text()[-3000:]}")
    summary = json.loads(out.read_text())
    return {
        "stages": {name: counts["completed"] for name, counts in summary["stages"].items()},
        "failed": {name: counts["failed"] for name, counts in summary["stages"].items() if counts["failed"]},
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def describe(name: str, result: dict[str, object]) -> str:
    return (
        f"  {name:12s} {float(result['wall_s']):7.1f}s wall {float(result['cpu_s']):7.1f} CPU-s "  # type: ignore[arg-type]
        f"peak RSS {float(result['peak_rss_mib']):5.0f} MiB  completed {result['stages']}"  # type: ignore[arg-type]
        + (f" failed {result['failed']}" if result["failed"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    clip = random_mobileclip()
    scratch = Path(tempfile.mkdtemp(prefix="photodb-bench-"))
    print(f"{os.cpu_count()} CPUs, load1 {os.getloadavg()[0]:.1f} before")
    try:
        folder = sample_folder(scratch / "photos", args.copies)
        empty = folder / "empty"
        empty.mkdir()
        with embedded_server(scratch / "pg") as admin:
            for parallel in args.parallel:
                database_url = fresh_database(admin, f"bench_full_run_{parallel}")
                shutil.rmtree(scratch / "images", ignore_errors=True)
                first = run(folder, scratch, database_url, clip, parallel)
                startup = run(empty, scratch, database_url, clip, parallel)
                forced = run(folder, scratch, database_url, clip, parallel, "--force")
                photos = int(forced["stages"]["normalize"])  # type: ignore[index]
                wall = float(forced["wall_s"]) - float(startup["wall_s"])  # type: ignore[arg-type]
                cpu = float(forced["cpu_s"]) - float(startup["cpu_s"])  # type: ignore[arg-type]
                print(f"--parallel {parallel}:")
                for name, result in (("first run", first), ("start-up", startup), ("--force", forced)):
                    print(describe(name, result))
                print(
                    f"  per photo (--force less start-up): {photos} photos in {wall:.1f}s wall, {cpu:.1f} CPU-s: "
                    f"{photos / wall:.2f} photos/s, {photos / cpu:.2f} photos per CPU-second; "
                    f"load1 {os.getloadavg()[0]:.1f}"
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
