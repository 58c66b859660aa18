"""Face grouping on the labelled faces of ../shared/samples/faces-dev: bootstrap, then weekly.

The set is indexed once with the real pipeline (`process-local`, stages normalize, metadata and
detection, DETECTION_BACKEND=offline, FACE_EMBEDDER=mbf) into a scratch PHOTODB_HOME kept in the
bench cache. Each configuration then runs on a copy of that database (CREATE DATABASE ... TEMPLATE)
in its own subprocess: the real bootstrap (clustering.bootstrap), then the weekly maintenance
tasks (auto-association last), and is scored by person (a face's group is its cluster's person,
else its cluster). A side is a `src` folder: this worktree's, and the baseline's (--baseline-src,
default /work/main/src), whose figures are kept in the cache per baseline commit.

    nice -n 10 .venv/bin/python bench/grouping.py                # new side, baseline from the cache
    nice -n 10 .venv/bin/python bench/grouping.py --ablations    # every configuration, both sides
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent.parent / "shared" / "samples" / "faces-dev"
if not SAMPLES.is_dir():
    SAMPLES = ROOT.parent / "shared" / "samples" / "faces-dev"

#: name -> (settings overrides, bootstrap min_cluster_size or None, far-member drop on, steps of
#: clustering.leftovers turned off: "place_noise", "group_leftovers"; a side without them ignores it)
CONFIGS: dict[str, tuple[dict[str, object], int | None, bool, tuple[str, ...]]] = {
    "default": ({}, None, True, ()),
    "dims 512": ({"clustering_reduce_dims": 512}, None, True, ()),
    "quality gate off": (
        {
            "cluster_min_face_size": 0,
            "cluster_min_sharpness": 0,
            "cluster_min_face_confidence": 0,
            "cluster_max_outlier_score": 1,
        },
        None,
        True,
        (),
    ),
    "far-member drop off": ({}, None, False, ()),
    "min_cluster_size 2": ({}, 2, True, ()),
    "noise placement off": ({}, None, True, ("place_noise",)),
    "leftover pairs off": ({}, None, True, ("group_leftovers",)),
}
METRICS = ("precision", "recall", "pairwise_f1", "bcubed_f1", "ungrouped", "profiles_joined", "same_photo_pairs")


def worker(url: str, name: str, scratch: Path) -> dict[str, float]:
    """One configuration on the database at `url` (a fresh copy): bootstrap, weekly, scores."""
    sys.path.insert(0, os.environ.get("PHOTODB_BENCH_SRC", str(ROOT / "src")))
    from photodb.clustering import bootstrap as bootstrap_module
    from photodb.clustering import constraints
    from photodb.config import Settings
    from photodb.database.connection import Database
    from photodb.maintenance import WEEKLY, Options, run_tasks

    overrides, min_cluster_size, far_drop, off = CONFIGS[name]
    if not far_drop:
        constraints.drop_far_members = lambda *_args, **_kwargs: set()  # type: ignore[assignment]
    try:
        from photodb.clustering import incremental, leftovers
    except ImportError:  # a side from before clustering.leftovers
        off = ()
    if off:
        if "place_noise" in off:
            leftovers.place_noise = lambda *_args: incremental.AssignmentReport()  # type: ignore[assignment]
        if "group_leftovers" in off:
            leftovers.group_leftovers = lambda *_args: 0  # type: ignore[assignment]
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        photodb_home=scratch / "home",
        img_path=scratch / "images",
        **overrides,  # type: ignore[arg-type]
    )
    db = Database(settings)
    try:
        bootstrap_module.bootstrap(db, min_cluster_size=min_cluster_size)
        run_tasks(db, WEEKLY, None, Options.from_settings(settings))
        with db.connection() as conn:
            rows = conn.execute(
                """SELECT pd.id, p.filename, pd.photo_id, pd.face_bbox_width * pd.face_bbox_height,
                          pd.cluster_id, c.person_id
                   FROM person_detection pd JOIN face_embedding fe ON fe.person_detection_id = pd.id
                   JOIN photo p ON p.id = pd.photo_id LEFT JOIN cluster c ON c.id = pd.cluster_id"""
            ).fetchall()
    finally:
        db.close()
    return score(rows)


def score(rows: list[tuple]) -> dict[str, float]:
    """Pairwise precision / recall / F1 and B-cubed F1 over the labelled faces (the largest face of
    each photo, keyed by (source, identity)); ungrouped share of detected faces; profile photos
    whose group holds a frontal photo of the same person; pairs of one photo's faces in one group."""
    from collections import Counter
    from math import comb

    manifest = json.loads((SAMPLES / "manifest.json").read_text())["files"]
    label = {f["path"]: (f["source"], f["identity"]) for f in manifest}
    group_of: dict[int, object] = {}
    for detection, _path, _photo, _area, cluster, person in rows:
        group_of[detection] = ("person", person) if person is not None else ("cluster", cluster) if cluster else None
    sizes = Counter(g for g in group_of.values() if g is not None)
    same_photo = Counter((photo, group_of[d]) for d, _p, photo, _a, _c, _pe in rows if group_of[d] is not None)
    largest: dict[int, tuple] = {}
    for row in rows:
        if row[1] in label and (row[2] not in largest or (row[3] or 0) > (largest[row[2]][3] or 0)):
            largest[row[2]] = row
    faces = [(d, label[path], path, group_of[d] or ("alone", d)) for d, path, _ph, _a, _c, _pe in largest.values()]
    identity_sizes = Counter(identity for _d, identity, _p, _g in faces)
    cells = Counter((group, identity) for _d, identity, _p, group in faces)
    group_sizes = Counter(group for _d, _i, _p, group in faces)
    together = sum(comb(n, 2) for n in cells.values())
    predicted = sum(comb(n, 2) for n in group_sizes.values())
    actual = sum(comb(n, 2) for n in identity_sizes.values())
    precision = together / predicted if predicted else 1.0
    recall = together / actual if actual else 1.0
    b_precision = sum(cells[(g, i)] / group_sizes[g] for _d, i, _p, g in faces) / len(faces)
    b_recall = sum(cells[(g, i)] / identity_sizes[i] for _d, i, _p, g in faces) / len(faces)
    frontal = Counter((g, i) for _d, i, p, g in faces if i[0] == "cfp" and "/frontal_" in p)
    profiles = [(i, g) for _d, i, p, g in faces if i[0] == "cfp" and "/profile_" in p]
    return {
        "faces": len(rows),
        "labelled": len(faces),
        "precision": precision,
        "recall": recall,
        "pairwise_f1": 2 * precision * recall / (precision + recall),
        "bcubed_f1": 2 * b_precision * b_recall / (b_precision + b_recall),
        "ungrouped": sum(g is None or sizes[g] < 2 for g in group_of.values()) / len(rows),
        "profiles_joined": sum(frontal[(g, i)] > 0 for i, g in profiles) / max(len(profiles), 1),
        "same_photo_pairs": sum(comb(n, 2) for n in same_photo.values()),
    }


def index(home: Path, scratch: Path) -> None:
    """Index faces-dev into the scratch home once (the marker file says it is done)."""
    marker = scratch / "indexed"
    if marker.is_file():
        return
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PHOTODB_HOME", "IMG_PATH")}
    env.update(
        PHOTODB_HOME=str(home),
        IMG_PATH=str(scratch / "images"),
        DETECTION_BACKEND="offline",
        FACE_EMBEDDER="mbf",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT / "src"),
    )
    command = [str(Path(sys.executable).parent / "process-local"), str(SAMPLES), "--json", "--parallel", "2"]
    for stage in ("normalize", "metadata", "detection"):
        command += ["--stage", stage]
    print(f"indexing {SAMPLES} (once; the library is kept in {scratch})", flush=True)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    marker.write_text("done\n")


def run_side(admin_url: str, src: Path, name: str, scratch: Path) -> dict[str, float]:
    from psycopg import connect
    from psycopg.conninfo import make_conninfo

    with connect(admin_url, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "grouping_run" WITH (FORCE)')
        conn.execute('CREATE DATABASE "grouping_run" TEMPLATE "photodb"')
    url = make_conninfo(admin_url, dbname="grouping_run")
    env = {**os.environ, "PHOTODB_BENCH_SRC": str(src)}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", url, "--worker-config", name, "--scratch", str(scratch)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ablations", action="store_true", help="every configuration, not just the default")
    parser.add_argument("--config", dest="configs", action="append", choices=list(CONFIGS), help="these (repeatable)")
    parser.add_argument("--baseline-src", type=Path, default=ROOT.parent.parent / "main" / "src")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-config", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.worker_config, args.scratch)))
        return
    if not (SAMPLES / "manifest.json").is_file():
        print(f"skipped: no labelled faces at {SAMPLES}")
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from _common import cache_dir, embedded_server

    scratch = cache_dir() / "grouping"
    home = scratch / "home"
    index(home, scratch)
    commit = subprocess.run(
        ["git", "-C", str(args.baseline_src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    kept = scratch / f"baseline-{commit}.json"
    baseline: dict[str, dict[str, float]] = json.loads(kept.read_text()) if kept.is_file() else {}
    names = list(CONFIGS) if args.ablations else args.configs or ["default"]
    results: dict[str, dict[str, float]] = {}
    with embedded_server(home) as admin_url:
        for name in names:
            if name not in baseline:
                baseline[name] = run_side(admin_url, args.baseline_src, name, scratch)
                kept.write_text(json.dumps(baseline, indent=1))
            results[name] = run_side(admin_url, ROOT / "src", name, scratch)
    sample = results[names[0]]
    print(f"faces-dev: {sample['faces']} detected faces, {sample['labelled']} labelled; baseline = {commit}")
    print(f"{'configuration':22s} {'side':8s} " + " ".join(f"{m[:12]:>12s}" for m in METRICS))
    for name in names:
        for side, figures in (("baseline", baseline[name]), ("new", results[name])):
            cells = " ".join(f"{figures[m]:12d}" if m == "same_photo_pairs" else f"{figures[m]:12.3f}" for m in METRICS)
            print(f"{name:22s} {side:8s} {cells}")


if __name__ == "__main__":
    main()
