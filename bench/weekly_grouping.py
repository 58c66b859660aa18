"""Does weekly maintenance keep the bootstrap's grouping of real labelled faces?

    nice -n 10 .venv/bin/python bench/weekly_grouping.py                        # mbf, sface, dlib
    nice -n 10 .venv/bin/python bench/weekly_grouping.py --baseline-src ../main/src   # and that code's figures
    nice -n 10 .venv/bin/python bench/weekly_grouping.py --embedders dlib

faces-dev (../shared/samples/faces-dev beside the checkout, or --faces-dev; skipped with a message
when absent) is indexed once per embedder with the real pipeline (process-local, offline
detection, FACE_EMBEDDER=...; stages normalize, metadata, detection) into a cached PHOTODB_HOME
under the bench cache; later embedders copy the first library and redo detection only. Each row
starts from a copy of that library: `photodb cluster`, then `photodb maintenance weekly` twice
(UNASSIGNED_SINGLETON_DAYS=0: the second week sees the singleton clusters the first made), each a
process of the code under test (--baseline-src runs the same steps with another checkout's
source, e.g. main's, for the before figures).

Scored: the face of each photo nearest its centre (faces-dev labels the photo's person; other faces
are left out), grouped as a person sees them (the cluster's person, else the cluster; no cluster:
alone), against (source, identity) of manifest.json: pairwise precision / recall / F1, B-cubed
F1, wrong pairs (faces of different people together), and the clusters and persons there are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cache_dir, embedded_server

from photodb.clustering.scores import GroupingScores, grouping_scores

EMBEDDERS = ("mbf", "sface", "dlib")
BIN = Path(sys.executable).parent


def faces_dev_folder(given: Path | None) -> Path | None:
    candidates = (
        [given]
        if given
        else [ROOT.parent / "shared/samples/faces-dev", ROOT.parent.parent / "shared/samples/faces-dev"]
    )
    return next((path for path in candidates if path and (path / "manifest.json").is_file()), None)


def command_env(src: Path, home: Path, images: Path, embedder: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PHOTODB_HOME", "IMG_PATH")}
    env.update(
        PHOTODB_HOME=str(home),
        IMG_PATH=str(images),
        PYTHONPATH=str(src),
        DETECTION_BACKEND="offline",
        DETECTION_FORCE_CPU="true",
        FACE_EMBEDDER=embedder,
        CLUSTERING_ASSIGN_ON_DETECTION="false",
        UNASSIGNED_SINGLETON_DAYS="0",
        LOG_LEVEL="WARNING",
    )
    return env


def copy_home(source: Path, target: Path) -> None:
    """A copy of a stopped embedded server's home, owners kept (the server runs as its own user)."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def photodb(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run([str(BIN / "photodb"), *argv], env=env, capture_output=True, text=True, check=False)
    allowed = (0, 1) if argv[0] == "maintenance" else (0,)  # weekly exits 1 when a task reports problems
    if done.returncode not in allowed:
        raise SystemExit(f"photodb {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def indexed_library(folder: Path, embedder: str, first: str, images: Path) -> Path:
    """The cached PHOTODB_HOME of faces-dev embedded with `embedder` (indexed once)."""
    base = cache_dir() / "weekly-grouping"
    home, done = base / embedder / "home", base / embedder / "indexed"
    if done.is_file():
        return home
    shutil.rmtree(base / embedder, ignore_errors=True)
    (base / embedder).mkdir(parents=True)
    stages = ["--stage", "normalize", "--stage", "metadata", "--stage", "detection"]
    if embedder != first:
        copy_home(indexed_library(folder, first, first, images), home)
        stages = ["--stage", "detection", "--force"]
    started = time.perf_counter()
    photodb(["index", str(folder), *stages, "--parallel", "2"], command_env(ROOT / "src", home, images, embedder))
    print(f"indexed faces-dev with {embedder} in {time.perf_counter() - started:.0f} s", flush=True)
    done.write_text("ok")
    return home


def truth_of(folder: Path) -> dict[str, tuple[str, str]]:
    entries = json.loads((folder / "manifest.json").read_text())["files"]
    return {entry["path"]: (entry["source"], entry["identity"]) for entry in entries}


def grouping(home: Path) -> dict[str, object]:
    """Per photo: the group of its face nearest the centre; and the number of clusters and persons."""
    with embedded_server(home) as admin, psycopg.connect(make_conninfo(admin, dbname="photodb")) as conn:
        rows = conn.execute(
            """SELECT DISTINCT ON (p.id) p.filename, d.cluster_id, c.person_id
                   FROM person_detection d JOIN photo p ON p.id = d.photo_id
                   JOIN face_embedding f ON f.person_detection_id = d.id
                   LEFT JOIN cluster c ON c.id = d.cluster_id
                   ORDER BY p.id, abs(d.face_bbox_x + d.face_bbox_width / 2 - p.normalized_width / 2.0)
                                + abs(d.face_bbox_y + d.face_bbox_height / 2 - p.normalized_height / 2.0)"""
        ).fetchall()
        clusters, persons = conn.execute(
            "SELECT count(*), count(DISTINCT person_id) FROM cluster WHERE face_count > 0"
        ).fetchone()
    groups = {
        name: ("person", person) if person is not None else ("cluster", cluster) if cluster is not None else None
        for name, cluster, person in rows
    }
    return {"groups": groups, "clusters": clusters, "persons": persons}


def scored(truth: dict[str, tuple[str, str]], found: dict[str, object]) -> GroupingScores:
    groups = found["groups"]
    assert isinstance(groups, dict)
    names = sorted(n for n in groups if n in truth)
    return grouping_scores([truth[n] for n in names], [groups[n] for n in names])


def run_code(
    label: str, src: Path, library: Path, embedder: str, truth: dict[str, tuple[str, str]], images: Path
) -> list[list[str]]:
    scratch = cache_dir() / "weekly-grouping" / "scratch"
    copy_home(library, scratch)
    env = command_env(src, scratch, images, embedder)
    rows = []
    for step, argv in (
        ("bootstrap", ["cluster"]),
        ("weekly 1", ["maintenance", "weekly", "--json"]),
        ("weekly 2", ["maintenance", "weekly", "--json"]),
    ):
        started = time.perf_counter()
        photodb(argv, env)
        seconds = time.perf_counter() - started
        found = grouping(scratch)
        s = scored(truth, found)
        rows.append(
            [
                embedder,
                label,
                step,
                f"{s.precision:.3f}",
                f"{s.recall:.3f}",
                f"{s.f1:.3f}",
                f"{s.bcubed_f1:.3f}",
                str(s.wrong_pairs),
                str(found["clusters"]),
                str(found["persons"]),
                f"{seconds:.0f}",
            ]
        )
        print("  ".join(rows[-1]), flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces-dev", type=Path, default=None)
    parser.add_argument("--embedders", nargs="+", choices=EMBEDDERS, default=list(EMBEDDERS))
    parser.add_argument(
        "--baseline-src", type=Path, default=None, help="another checkout's src/ for the before figures"
    )
    args = parser.parse_args()
    folder = faces_dev_folder(args.faces_dev)
    if folder is None:
        print("faces-dev not found (../shared/samples/faces-dev or --faces-dev): nothing to measure, skipped")
        return
    truth = truth_of(folder)
    images = cache_dir() / "weekly-grouping" / "images"
    codes = [("new", ROOT / "src")] + ([("baseline", args.baseline_src.resolve())] if args.baseline_src else [])
    header = [
        "embedder",
        "code",
        "after",
        "precision",
        "recall",
        "F1",
        "B3 F1",
        "wrong pairs",
        "clusters",
        "persons",
        "s",
    ]
    print("  ".join(header), flush=True)
    table = []
    for embedder in args.embedders:
        library = indexed_library(folder, embedder, args.embedders[0], images)
        for label, src in codes:
            table += run_code(label, src, library, embedder, truth, images)
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    print()
    for row in [header, *table]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
