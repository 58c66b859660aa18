"""Clustering benchmark: the project's bootstrap against plain hdbscan, then incremental assignment.

    .venv/bin/python bench/clustering.py            # 10k and 30k vs baseline, 100k alone, 1,000 new faces
    .venv/bin/python bench/clustering.py --quick    # 2k and 5k vs baseline, 10k alone, 200 new faces

Each clustering runs in its own subprocess so that peak RSS is its own and a slow baseline can be
stopped at the cap. Data: synthetic 512-d unit vectors (photodb.clustering.synthetic) with 10% noise.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from photodb.clustering.synthetic import make_faces, pairwise_f1


def singletons(labels: np.ndarray) -> np.ndarray:
    """Noise (-1) as one cluster per face, so that ARI does not reward one giant noise cluster."""
    out = labels.copy()
    noise = out < 0
    out[noise] = out.max(initial=0) + 1 + np.arange(int(noise.sum()))
    return out


def worker(kind: str, n: int, identities: int) -> None:
    faces = make_faces(n, identities, seed=n)
    started = time.perf_counter()
    if kind == "baseline":
        import hdbscan

        labels = hdbscan.HDBSCAN().fit(faces.embeddings).labels_
    else:
        from photodb.clustering.model import fit_clusters
        from photodb.config import Settings

        s = Settings(_env_file=None)  # type: ignore[call-arg]
        labels = fit_clusters(
            faces.embeddings,
            min_cluster_size=s.hdbscan_min_cluster_size,
            min_samples=s.hdbscan_min_samples,
            dims=s.clustering_reduce_dims,
            selection_method=s.hdbscan_cluster_selection_method,
        ).labels
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "f1": pairwise_f1(faces.identities, labels),
                "ari": adjusted_rand_score(faces.identities, singletons(labels)),
                "clusters": int(labels.max() + 1),
                "noise": float((labels < 0).mean()),
            }
        )
    )


def measure(kind: str, n: int, identities: int, cap: float) -> dict | None:
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--worker", kind, str(n), str(identities)],
            capture_output=True,
            text=True,
            timeout=cap,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def show(kind: str, n: int, result: dict | None, cap: float) -> None:
    if result is None:
        print(f"  {kind:9s} n={n:>6}: {kind} > cap ({cap:.0f} s)")
        return
    print(
        f"  {kind:9s} n={n:>6}: {result['seconds']:8.1f} s  peak RSS {result['rss_mib']:7.0f} MiB  "
        f"F1 {result['f1']:.4f}  ARI {result['ari']:.4f}  clusters {result['clusters']}  "
        f"noise {result['noise']:.1%}"
    )


def incremental(n: int, identities: int, new: int) -> None:
    from photodb.clustering.bootstrap import bootstrap
    from photodb.clustering.incremental import assign_new_faces, load_run_model
    from photodb.config import Settings
    from photodb.database import clustering_repository as repo
    from photodb.database.connection import Database
    from photodb.database.embedded import EmbeddedPostgres

    faces = make_faces(n + new, identities, seed=n)
    rng = np.random.default_rng(7)
    held = rng.choice(np.nonzero(faces.identities >= 0)[0], size=new, replace=False)
    base = np.setdiff1d(np.arange(faces.identities.size), held)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.acquire()
        db = Database(Settings(_env_file=None, database_url=url, photodb_home=Path(tmp) / "home"))  # type: ignore[call-arg]
        try:
            with db.connection() as conn:
                started = time.perf_counter()
                base_ids = repo.insert_faces(conn, 1, faces.embeddings[base], "arcface")
                print(f"  inserted {base.size} faces in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            (report,) = bootstrap(db)
            print(
                f"  bootstrap through the database (load, cluster, write {report.clusters} clusters): "
                f"{time.perf_counter() - started:.1f} s"
            )
            with db.connection() as conn:
                cluster_of = dict(
                    conn.execute(
                        "SELECT id, cluster_id FROM person_detection WHERE id = ANY(%s)", (base_ids,)
                    ).fetchall()
                )
                new_ids = repo.insert_faces(conn, 1, faces.embeddings[held], "arcface", photo_prefix="new")
                run = repo.active_run(conn, 1, "arcface")
            assert run is not None
            started = time.perf_counter()
            load_run_model(db, run.id)
            print(f"  loading the pickled clusterer once: {time.perf_counter() - started:.2f} s")
            home: dict[int, int] = {}
            votes: dict[int, Counter] = {}
            for det, idx in zip(base_ids, base, strict=True):
                if cluster_of[det] is not None:
                    votes.setdefault(int(faces.identities[idx]), Counter())[cluster_of[det]] += 1
            home = {ident: c.most_common(1)[0][0] for ident, c in votes.items()}
            latencies, outcomes, right = [], Counter(), 0
            for det, idx in zip(new_ids, held, strict=True):
                started = time.perf_counter()
                result = assign_new_faces(db, [det], force=True)
                latencies.append((time.perf_counter() - started) * 1000)
                outcomes.update(result.outcomes)
                right += result.cluster_of.get(det) is not None and result.cluster_of[det] == home.get(
                    int(faces.identities[idx])
                )
            p50, p95 = np.percentile(latencies, [50, 95])
            print(f"  incremental, {new} new faces one call each: p50 {p50:.2f} ms  p95 {p95:.2f} ms per face")
            print(f"  outcomes {dict(outcomes)}; in their true identity's cluster: {right / new:.1%}")
        finally:
            db.close()
            server.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cap", type=float, default=900.0, help="seconds allowed to each baseline run")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return
    compared = [2_000, 5_000] if args.quick else [10_000, 30_000]
    big, big_ids, new = (10_000, 500, 200) if args.quick else (100_000, 5_000, 1_000)
    times: dict[int, float] = {}
    for n in compared:
        print(f"n = {n} ({n // 20} identities, 10% noise)")
        ours = measure("project", n, n // 20, args.cap)
        theirs = measure("baseline", n, n // 20, args.cap)
        show("project", n, ours, args.cap)
        show("baseline", n, theirs, args.cap)
        if ours:
            times[n] = ours["seconds"]
        if ours and theirs:
            print(
                f"  baseline / project wall time: {theirs['seconds'] / ours['seconds']:.1f}x; "
                f"F1 project - baseline: {ours['f1'] - theirs['f1']:+.4f}"
            )
        elif ours:
            print(f"  baseline / project wall time: > {args.cap / ours['seconds']:.0f}x")
    print(f"n = {big} ({big_ids} identities, 10% noise), project only")
    ours = measure("project", big, big_ids, args.cap)
    show("project", big, ours, args.cap)
    if ours:
        times[big] = ours["seconds"]
    sizes = sorted(times)
    growth = ", ".join(
        f"{a}->{b}: x{times[b] / times[a]:.1f} time for x{b / a:.1f} faces" for a, b in itertools.pairwise(sizes)
    )
    print(f"growth of the project's bootstrap: {growth}")
    print(f"incremental assignment against the {big}-face database")
    incremental(big, big_ids, new)


if __name__ == "__main__":
    main()
