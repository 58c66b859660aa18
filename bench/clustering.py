"""Clustering benchmark: the project's bootstrap against plain hdbscan, then incremental assignment.

    .venv/bin/python bench/clustering.py            # 10k and 30k vs baseline, 100k alone, 1,000 new faces
    .venv/bin/python bench/clustering.py --quick    # 2k and 5k vs baseline, 10k alone, 200 new faces
    .venv/bin/python bench/clustering.py --burst-only   # the burst-shot case alone (see below)

Each clustering runs in its own subprocess so that peak RSS is its own and a slow baseline can be
stopped at the cap; the data (synthetic 512-d unit vectors, photodb.clustering.synthetic, 10% noise)
is generated once into .npy files under the bench cache and loaded by the workers, so their RSS is
not the generator's. Plain hdbscan's results are cached there too, keyed by size, seed and hdbscan
version (marked "baseline*" when reused; --fresh-baseline recomputes them, ~9 minutes at 30k).
The incremental part loads the large set with COPY (the embedding HNSW index dropped during the
load and built once after it: bench setup only), runs the bootstrap through the database in a
fresh process, then assigns the held-out faces one call each through the real path, each
preceded by the bare pgvector nearest-centroid query (`ORDER BY centroid <=> face LIMIT 5` on the
same table: the floor an assignment is measured against, in the same run) and by the production
tier-2 candidate search for the same face. Each face is assigned twice, released in between, the
two in turn first: as the detection stage hands it over (assign_held_faces, one statement) and by
id (assign_new_faces, read back first: the path before migration 0020). Then, in three phases
(bench/_clustering_churn.py: autovacuum settings and centroid tolerance before 0015, before 0026
and now), it assigns and releases those faces until --assignments assignments are done and prints
the centroid HNSW index and cluster table sizes (heap, TOAST, other indexes) before and after, and
how tier 2 alone then places the faces.
    .venv/bin/python bench/clustering.py --skip-compare --incremental-only   # that part alone

The burst case (--burst, or --burst-only) is the bootstrap on 100k faces of which 2,000 groups of
16 are near-identical shots of one face (synthetic.add_bursts): tight duplicate groups, some of
them separate components of the k-NN graph that the component-joining step has to link.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from photodb.clustering.distances import face_distance
from photodb.clustering.synthetic import make_faces, pairwise_f1

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _clustering_churn import churn, release
from _common import cache_dir


def singletons(labels: np.ndarray) -> np.ndarray:
    """Noise (-1) as one cluster per face, so that ARI does not reward one giant noise cluster."""
    out = labels.copy()
    noise = out < 0
    out[noise] = out.max(initial=0) + 1 + np.arange(int(noise.sum()))
    return out


def data_files(n: int, identities: int, seed: int) -> tuple[Path, Path]:
    """make_faces(n, identities, seed) as two .npy files, made once: workers load them, so their
    peak RSS is the clustering's (plus the 4 bytes x 512 per face of the input), not the generator's."""
    base = cache_dir() / f"clustering-faces-n{n}-ids{identities}-seed{seed}"
    embeddings, truth = base.with_suffix(".embeddings.npy"), base.with_suffix(".identities.npy")
    if not (embeddings.exists() and truth.exists()):
        faces = make_faces(n, identities, seed=seed)
        np.save(embeddings, faces.embeddings)
        np.save(truth, faces.identities)
    return embeddings, truth


#: The burst case: (total faces, identities, burst groups, faces per group).
BURST = (100_000, 5_000, 2_000, 16)
BURST_QUICK = (10_000, 500, 200, 16)


def burst_files(n: int, identities: int, groups: int, size: int) -> tuple[Path, Path]:
    """make_faces plus add_bursts, `n` faces in all, saved once like data_files."""
    base = cache_dir() / f"clustering-burst-n{n}-ids{identities}-g{groups}x{size}"
    embeddings, truth = base.with_suffix(".embeddings.npy"), base.with_suffix(".identities.npy")
    if not (embeddings.exists() and truth.exists()):
        from photodb.clustering.synthetic import add_bursts

        faces = add_bursts(make_faces(n - groups * (size - 1), identities, seed=n), groups, size, seed=n)
        np.save(embeddings, faces.embeddings)
        np.save(truth, faces.identities)
    return embeddings, truth


def settings_for(**overrides: object):
    from photodb.config import Settings

    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def worker(kind: str, n: int, identities: int) -> None:
    if kind == "burst":
        shape = next(b for b in (BURST, BURST_QUICK) if b[:2] == (n, identities))
        embeddings_file, truth_file = burst_files(*shape)
    else:
        embeddings_file, truth_file = data_files(n, identities, seed=n)
    embeddings, truth = np.load(embeddings_file), np.load(truth_file)
    started = time.perf_counter()
    if kind == "baseline":
        import hdbscan

        labels = hdbscan.HDBSCAN().fit(embeddings).labels_
    else:
        from photodb.clustering.model import fit_clusters

        s = settings_for()
        labels = fit_clusters(
            embeddings,
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
                "f1": pairwise_f1(truth, labels),
                "ari": adjusted_rand_score(truth, singletons(labels)),
                "clusters": int(labels.max() + 1),
                "noise": float((labels < 0).mean()),
            }
        )
    )


def db_bootstrap_worker(url: str, home: str) -> None:
    """The bootstrap through the database in a fresh process: load, cluster, write."""
    from photodb.clustering.bootstrap import bootstrap
    from photodb.database.connection import Database

    db = Database(settings_for(database_url=url, photodb_home=Path(home)), migrate=False)
    try:
        started = time.perf_counter()
        (report,) = bootstrap(db)
        seconds = time.perf_counter() - started
    finally:
        db.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mib": rss, "clusters": report.clusters, "noise": report.noise}))


def baseline_cache(n: int, identities: int) -> Path:
    """Where plain hdbscan's result for one data set is kept: it is slow and never changes."""
    import hdbscan

    version = getattr(hdbscan, "__version__", "unknown")
    return cache_dir() / f"clustering-baseline-n{n}-ids{identities}-seed{n}-hdbscan{version}.json"


def measure(kind: str, n: int, identities: int, cap: float, *, cached: bool = False) -> dict | None:
    """Run one clustering in a fresh subprocess; with `cached`, reuse (and keep) a stored result."""
    path = baseline_cache(n, identities) if cached else None
    if path is not None and path.exists():
        return json.loads(path.read_text()) | {"cached": True}
    if kind != "burst":
        data_files(n, identities, seed=n)  # generated here, not in the measured process
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
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if path is not None:
        path.write_text(json.dumps(result))
    return result


def show(kind: str, n: int, result: dict | None, cap: float) -> None:
    if result is None:
        print(f"  {kind:9s} n={n:>6}: {kind} > cap ({cap:.0f} s)")
        return
    if result.get("cached"):
        kind += "*"
    print(
        f"  {kind:9s} n={n:>6}: {result['seconds']:8.1f} s  peak RSS {result['rss_mib']:7.0f} MiB  "
        f"F1 {result['f1']:.4f}  ARI {result['ari']:.4f}  clusters {result['clusters']}  "
        f"noise {result['noise']:.1%}"
    )


def burst(quick: bool, cap: float) -> None:
    """The bootstrap's clustering on the burst case: time, peak RSS and quality."""
    n, identities, groups, size = BURST_QUICK if quick else BURST
    burst_files(n, identities, groups, size)
    print(f"burst case: n = {n} ({identities} identities, 10% noise, {groups} groups of {size} near-identical faces)")
    show("burst", n, measure("burst", n, identities, cap), cap)
    print(f"  machine load (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def load_faces_fast(url: str, embeddings: np.ndarray, model: str, prefix: str) -> list[int]:
    """Bench setup only: COPY the faces in with the embedding HNSW index dropped, then rebuild it
    in one pass (maintaining it row by row is what made loading 100k faces take minutes)."""
    import psycopg
    from pgvector.psycopg import register_vector

    from photodb.database.clustering import faces as face_db

    with psycopg.connect(url) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX IF EXISTS idx_face_embedding")
        ids = face_db.insert_faces(conn, 1, embeddings, model, photo_prefix=prefix)
        conn.commit()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        conn.execute("CREATE INDEX idx_face_embedding ON face_embedding USING hnsw (embedding vector_cosine_ops)")
        conn.execute("ANALYZE")
    return ids


#: The baseline: pgvector's plain nearest-centroid query on the same table, one statement.
BARE_NEAREST = "SELECT id FROM cluster ORDER BY centroid <=> %b LIMIT %s"


def short_plan(lines: list[str]) -> str:
    return " / ".join(line.strip().split(" (cost")[0][:60] for line in lines[:3])


def incremental(n: int, identities: int, new: int, assignments: int) -> None:
    from psycopg.types.json import Jsonb

    from photodb.clustering.incremental import (
        EF_SEARCH,
        NEIGHBOURS,
        assign_held_faces,
        assign_new_faces,
        load_run_model,
    )
    from photodb.database.clustering import assignment as assign_db
    from photodb.database.clustering import faces as face_db
    from photodb.database.clustering import runs as run_db
    from photodb.database.clustering.assignment import FaceToAssign
    from photodb.database.connection import Database
    from photodb.database.embedded import EmbeddedPostgres

    faces = make_faces(n + new, identities, seed=n)
    rng = np.random.default_rng(7)
    held = rng.choice(np.nonzero(faces.identities >= 0)[0], size=new, replace=False)
    base = np.setdiff1d(np.arange(faces.identities.size), held)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg")
        url = server.acquire()
        db = Database(settings_for(database_url=url, photodb_home=Path(tmp) / "home"))
        try:
            started = time.perf_counter()
            base_ids = load_faces_fast(url, faces.embeddings[base], "arcface", "face")
            print(f"  loaded {base.size} faces (COPY, then one HNSW build) in {time.perf_counter() - started:.1f} s")
            done = subprocess.run(
                [sys.executable, __file__, "--db-worker", url, str(Path(tmp) / "home")],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(
                f"  bootstrap through the database (load, cluster, write {result['clusters']} clusters), "
                f"fresh process: {result['seconds']:.1f} s  peak RSS {result['rss_mib']:.0f} MiB"
            )
            with db.connection() as conn:
                cluster_of = dict(
                    conn.execute(
                        "SELECT id, cluster_id FROM person_detection WHERE id = ANY(%s)", (base_ids,)
                    ).fetchall()
                )
                started = time.perf_counter()
                new_ids = face_db.insert_faces(conn, 1, faces.embeddings[held], "arcface", photo_prefix="new")
                print(f"  inserted {new} new faces with every index maintained: {time.perf_counter() - started:.1f} s")
                run = run_db.active_run(conn, 1, "arcface")
                conn.execute("ANALYZE")  # as autoanalyze would after the bootstrap rewrote every face
            assert run is not None
            threshold = face_distance(db.settings, "arcface", "assign")
            search = {"threshold": threshold, "neighbours": NEIGHBOURS, "ef_search": EF_SEARCH}
            with db.autocommit() as conn:
                plan = assign_db.nearest_clusters(conn, 1, "arcface", faces.embeddings[held[0]], explain=True, **search)
                print(f"  tier-2 candidate search plan (production SQL): {short_plan([r[0] for r in plan])}")
                plan = conn.execute("EXPLAIN " + BARE_NEAREST, (faces.embeddings[held[0]], NEIGHBOURS)).fetchall()
                print(f"  bare nearest-centroid query plan: {short_plan([r[0] for r in plan])}")
            started = time.perf_counter()
            load_run_model(db, run.id)
            print(f"  rebuilding tier 1 from the stored run once: {time.perf_counter() - started:.2f} s")
            votes: dict[int, Counter] = {}
            for det, idx in zip(base_ids, base, strict=True):
                if cluster_of[det] is not None:
                    votes.setdefault(int(faces.identities[idx]), Counter())[cluster_of[det]] += 1
            home = {ident: c.most_common(1)[0][0] for ident, c in votes.items()}
            with db.connection() as conn:
                photo_of = dict(
                    conn.execute("SELECT id, photo_id FROM person_detection WHERE id = ANY(%s)", (new_ids,)).fetchall()
                )
            held_faces = {
                det: FaceToAssign(det, photo_of[det], 1, "arcface", faces.embeddings[idx])
                for det, idx in zip(new_ids, held, strict=True)
            }
            assign_held_faces(db, [held_faces[new_ids[0]]], force=True)  # learns the active run
            release(db, new_ids[:1])
            latencies, read_back, bare, candidates, outcomes, right, differ = [], [], [], [], Counter(), 0, 0
            for det, idx in zip(new_ids, held, strict=True):
                # the bare pgvector nearest-centroid query, the production candidate search, the
                # assignment of the face as the detection stage hands it over (one statement) and,
                # once it is released again, by id (read back first: the path before migration
                # 0020, and what a backlog still takes), interleaved so that all see the same load
                started = time.perf_counter()
                with db.autocommit() as conn:
                    conn.execute(BARE_NEAREST, (faces.embeddings[idx], NEIGHBOURS)).fetchall()
                bare.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                with db.autocommit() as conn:
                    assign_db.nearest_clusters(conn, 1, "arcface", faces.embeddings[idx], **search)
                candidates.append((time.perf_counter() - started) * 1000)
                for path in ("held", "read") if len(bare) % 2 else ("read", "held"):  # either first by turns
                    started = time.perf_counter()
                    if path == "held":
                        result = assign_held_faces(db, [held_faces[det]], force=True)
                        latencies.append((time.perf_counter() - started) * 1000)
                    else:
                        again = assign_new_faces(db, [det], force=True)
                        read_back.append((time.perf_counter() - started) * 1000)
                    if len(latencies) + len(read_back) < 2 * len(bare):
                        release(db, [det])
                differ += again.cluster_of != result.cluster_of
                outcomes.update(result.outcomes)
                right += result.cluster_of.get(det) is not None and result.cluster_of[det] == home.get(
                    int(faces.identities[idx])
                )
            p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
            r50, r95 = np.percentile(read_back, [50, 95])
            b50, b95 = np.percentile(bare, [50, 95])
            c50, c95 = np.percentile(candidates, [50, 95])
            print(
                f"  incremental, {new} new faces one call each, as the detection stage hands them over: "
                f"p50 {p50:.2f} ms  p95 {p95:.2f} ms  p99 {p99:.2f} ms per face"
            )
            print(
                f"  the same faces by id, read back first (before migration 0020): p50 {r50:.2f} ms  p95 {r95:.2f} ms"
            )
            print(f"  tier-2 candidate search alone (production SQL), same faces: p50 {c50:.2f} ms  p95 {c95:.2f} ms")
            print(
                f"  bare nearest-centroid query, same faces, same run: p50 {b50:.2f} ms  p95 {b95:.2f} ms; "
                f"assignment / bare p95: {p95 / b95:.2f}x (read back first: {r95 / b95:.2f}x; "
                "target <= 2x; p95 target <= 5 ms)"
            )
            print(f"  machine load (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            print(
                f"  outcomes {dict(outcomes)}; in their true identity's cluster: {right / new:.1%}; "
                f"decided otherwise when read back: {differ}"
            )
            with db.connection() as conn:
                label_map = conn.execute("SELECT label_to_cluster_id FROM hdbscan_run WHERE id = %s", (run.id,))
                label_map = label_map.fetchone()[0]

            def tier2_quality() -> str:
                """Release the faces, place them with tier 1 switched off, then switch it on again."""
                from photodb.clustering import incremental as module

                release(db, new_ids)
                with db.connection() as conn:
                    conn.execute("UPDATE hdbscan_run SET label_to_cluster_id = '{}' WHERE id = %s", (run.id,))
                module._models.clear()
                latencies, outcomes, right = [], Counter(), 0
                for det, idx in zip(new_ids, held, strict=True):
                    started = time.perf_counter()
                    result = assign_new_faces(db, [det], force=True)
                    latencies.append((time.perf_counter() - started) * 1000)
                    outcomes.update(result.outcomes)
                    right += result.cluster_of.get(det) is not None and result.cluster_of[det] == home.get(
                        int(faces.identities[idx])
                    )
                with db.connection() as conn:
                    conn.execute(
                        "UPDATE hdbscan_run SET label_to_cluster_id = %s WHERE id = %s", (Jsonb(label_map), run.id)
                    )
                module._models.clear()
                p50, p95 = np.percentile(latencies, [50, 95])
                return (
                    f"p50 {p50:.2f} ms  p95 {p95:.2f} ms; outcomes {dict(outcomes)}; "
                    f"in their true identity's cluster: {right / new:.1%}"
                )

            if assignments:  # --assignments 0: the latency figures alone
                churn(db, new_ids, assignments, tier2_quality)
        finally:
            db.close()
            server.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cap", type=float, default=900.0, help="seconds allowed to each baseline run")
    parser.add_argument("--fresh-baseline", action="store_true", help="recompute plain hdbscan, ignore its cache")
    parser.add_argument("--skip-compare", action="store_true", help="only the large bootstrap and incremental")
    parser.add_argument("--burst", action="store_true", help="add the burst-shot bootstrap case")
    parser.add_argument("--burst-only", action="store_true", help="only the burst-shot bootstrap case")
    parser.add_argument(
        "--assignments", type=int, help="assignments for the index-bloat case (100k; quick 10k; 0 skips it)"
    )
    parser.add_argument("--incremental-only", action="store_true", help="only the incremental assignment part")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--db-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return
    if args.db_worker:
        db_bootstrap_worker(*args.db_worker)
        return
    if args.burst or args.burst_only:
        burst(args.quick, args.cap)
        if args.burst_only:
            return
    compared = [] if args.skip_compare else [2_000, 5_000] if args.quick else [10_000, 30_000]
    big, big_ids, new = (10_000, 500, 200) if args.quick else (100_000, 5_000, 1_000)
    times: dict[int, float] = {}
    assignments = args.assignments if args.assignments is not None else 10_000 if args.quick else 100_000
    if args.incremental_only:
        print(f"incremental assignment against the {big}-face database")
        incremental(big, big_ids, new, assignments)
        return
    for n in compared:
        print(f"n = {n} ({n // 20} identities, 10% noise)")
        ours = measure("project", n, n // 20, args.cap)
        theirs = measure("baseline", n, n // 20, args.cap, cached=not args.fresh_baseline)
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
    incremental(big, big_ids, new, assignments)


if __name__ == "__main__":
    main()
