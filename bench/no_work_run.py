"""CPU seconds and peak RSS of a `process-local` run that has nothing to do, this checkout vs another.

    .venv/bin/python bench/no_work_run.py [--baseline-src OTHER_CHECKOUT/src] [--repeat 3] [--no-clip]

The samples of README command 1 (examples/photos) are indexed once (all five stages, CLIP on the
random-weight MobileCLIP-S2 of bench/full_run.py unless --no-clip), then `process-local` runs
again --repeat times on the same folder (every photo unchanged) and on an empty folder of the same
collection, with this checkout's src and, given --baseline-src, with that one's (e.g. a
`git worktree` of main). Printed per run: the child's CPU seconds (user + sys, from wait4), its
peak RSS and wall time, the best of the repeats, and the ratio this / baseline. The embedded
PostgreSQL's processes are not counted.
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

from bench._common import embedded_server, fresh_database, print_table  # noqa: E402
from bench.full_run import PROCESS_LOCAL, sample_folder  # noqa: E402

#: Run in its own process: the children forked from a process that loaded torch would inherit its
#: peak RSS (ru_maxrss survives fork and exec).
CLIP_ENVIRONMENT = (
    "import json; from bench.full_run import random_mobileclip; clip = random_mobileclip(); "
    "print(json.dumps({'MODELS_DIR': str(clip.weights.parent), **clip.environment()}))"
)


def run_once(folder: Path, scratch: Path, env: dict[str, str]) -> dict[str, float]:
    """One process-local run as a child process: its CPU seconds, peak RSS (MiB) and wall seconds."""
    out, err = scratch / "stdout.json", scratch / "stderr.txt"
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen([str(PROCESS_LOCAL), str(folder), "--json"], env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own resource usage
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if child.returncode != 0:
        raise SystemExit(f"process-local failed:\n{err.read_text()[-3000:]}")
    json.loads(out.read_text())
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024, "wall_s": wall}


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: min(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, help="the src folder of another checkout to compare with")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-clip", action="store_true", help="no CLIP file: scene analysis only labels")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="photodb-bench-"))
    models = scratch / "no-models"
    extra: dict[str, str] = {"MODELS_DIR": str(models)}
    if not args.no_clip:
        made = subprocess.run(
            [sys.executable, "-c", CLIP_ENVIRONMENT], cwd=ROOT, capture_output=True, text=True, check=True
        )
        extra = json.loads(made.stdout.splitlines()[-1])
    sources = {"this": ROOT / "src"}
    if args.baseline_src is not None:
        sources["baseline"] = args.baseline_src.resolve()
    print(f"{os.cpu_count()} CPUs, load1 {os.getloadavg()[0]:.1f} before")
    try:
        folder = sample_folder(scratch / "photos", 1)
        empty = folder / "empty"
        empty.mkdir()
        with embedded_server(scratch / "pg") as admin:
            database_url = fresh_database(admin, "bench_no_work_run")
            base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PYTHONPATH")}
            base.update(
                DATABASE_URL=database_url, PHOTODB_HOME=str(scratch / "home"), IMG_PATH=str(scratch / "images"),
                LOG_LEVEL="WARNING", **extra,
            )  # fmt: skip
            first = run_once(folder, scratch, {**base, "PYTHONPATH": str(sources["this"])})
            print(f"indexing run: {first['cpu_s']:.1f} CPU-s, peak RSS {first['peak_rss_mib']:.0f} MiB")
            results: dict[tuple[str, str], dict[str, float]] = {}
            for _ in range(args.repeat):  # interleaved, so a busy moment hits both sources alike
                for source, src in sources.items():
                    for what, target in (("unchanged folder", folder), ("empty folder", empty)):
                        run = run_once(target, scratch, {**base, "PYTHONPATH": str(src)})
                        key = (source, what)
                        results[key] = best([results[key], run]) if key in results else run
        rows = []
        for (source, what), r in results.items():
            row: list[object] = [source, what, f"{r['cpu_s']:.2f}", f"{r['peak_rss_mib']:.0f}", f"{r['wall_s']:.2f}"]
            baseline = results.get(("baseline", what))
            if baseline is not None and source == "this":
                row += [f"{r['cpu_s'] / baseline['cpu_s']:.2f}", f"{r['peak_rss_mib'] / baseline['peak_rss_mib']:.2f}"]
            rows.append(row + [""] * (7 - len(row)))
        print_table(["source", "run", "CPU s", "peak RSS MiB", "wall s", "CPU ratio", "RSS ratio"], rows)
        print(f"best of {args.repeat}; load1 {os.getloadavg()[0]:.1f} after")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
