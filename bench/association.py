"""Auto-association at 100k faces in 5k clusters, against the bare pair queries in the same run.

    .venv/bin/python bench/association.py                        # 100k faces, 5k clusters
    .venv/bin/python bench/association.py --faces 20000 --clusters 1000

Data (photodb.clustering.synthetic, 10 % noise faces left unclustered, 5 % look-alike identities
whose centres are 0.55 apart): each identity is one cluster, and enough of the larger ones are
split in two halves to make --clusters clusters: a person the bootstrap left as two clusters,
which auto-association should join. A tenth of the split halves already belong to a person from an
earlier run, a few pairs carry a cluster cannot-link. Loaded with COPY (setup, not timed); model
name arcface:w600k_r50 (threshold PERSON_ASSOCIATION_THRESHOLD, 0.8).

Rows (wall time, best of --repeat except the first real run, which writes):
- numpy pairs: read every centroid and compute the pairs within the threshold (the bare query
  the production pass is built on: the floor);
- pgvector k-NN pairs: the same pairs from one LATERAL `ORDER BY centroid <=> x LIMIT k` (HNSW)
  per cluster (the alternative the numpy pass replaced);
- auto-associate --dry-run, the first real run (persons created, linked, merged, a person for
  each lone cluster of ASSOCIATION_LONE_CLUSTER_MIN_FACES faces or more, age/gender aggregated),
  and a rerun (nothing left to change). Target: <= 10 s. `--lone-min-faces 0` measures the
  spec's rule alone (no lone persons).
Also printed: how many split identities ended in one person, and how many persons hold two
identities (look-alikes within the threshold).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench._common import embedded_server, environment, fresh_database, print_table  # noqa: E402

from photodb.clustering.distances import face_distance  # noqa: E402
from photodb.clustering.synthetic import make_faces  # noqa: E402
from photodb.config import Settings  # noqa: E402
from photodb.database import association_repository as repo  # noqa: E402
from photodb.database.clustering.centroids import recount_clusters  # noqa: E402
from photodb.database.clustering.faces import insert_faces  # noqa: E402
from photodb.database.connection import Database  # noqa: E402
from photodb.people.association import auto_associate  # noqa: E402
from photodb.people.association_plan import find_pairs  # noqa: E402

MODEL = "arcface:w600k_r50"


def load(db: Database, faces: int, clusters: int, seed: int) -> dict[int, int]:
    """The synthetic library; returns cluster id -> true identity."""
    data = make_faces(faces, int(clusters * 0.8), lookalike_share=0.05, seed=seed)
    rng = np.random.default_rng(seed)
    identities, counts = np.unique(data.identities[data.identities >= 0], return_counts=True)
    splittable = identities[counts >= 6]
    split = set(rng.choice(splittable, size=min(len(splittable), clusters - len(identities)), replace=False).tolist())
    with db.connection() as conn:
        conn.execute("DROP INDEX IF EXISTS idx_face_embedding")  # bench setup: nobody searches faces here
        detections = np.asarray(insert_faces(conn, 1, data.embeddings, MODEL))
        keys: list[tuple[int, int]] = []
        member_key = np.full(len(detections), -1, np.int64)
        key_index: dict[tuple[int, int], int] = {}
        for i, identity in enumerate(data.identities.tolist()):
            if identity < 0:
                continue
            half = int(rng.integers(0, 2)) if identity in split else 0
            key = (identity, half)
            if key not in key_index:
                key_index[key] = len(keys)
                keys.append(key)
            member_key[i] = key_index[key]
        ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO cluster (collection_id, embedding_model) SELECT 1, %s FROM generate_series(1, %s) "
                "RETURNING id",
                (MODEL, len(keys)),
            ).fetchall()
        ]
        cluster_of_key = np.asarray(ids, np.int64)
        clustered = member_key >= 0
        conn.execute(
            """UPDATE person_detection d SET cluster_id = u.c, cluster_status = 'auto'
               FROM unnest(%s::bigint[], %s::bigint[]) AS u(d, c) WHERE d.id = u.d""",
            (detections[clustered].tolist(), cluster_of_key[member_key[clustered]].tolist()),
        )
        recount_clusters(conn, ids)
        truth = {ids[k]: identity for k, (identity, _) in enumerate(keys)}
        halves: dict[int, list[int]] = {}
        for k, (identity, _) in enumerate(keys):
            if identity in split:
                halves.setdefault(identity, []).append(ids[k])
        pairs = [sorted(v) for v in halves.values() if len(v) == 2]
        for a, _ in pairs[: len(pairs) // 10]:  # an earlier run made a person of one half
            person = conn.execute(
                "INSERT INTO person (collection_id, first_name, auto_created, created_by) "
                "VALUES (1, 'Unknown', true, 'auto:associate') RETURNING id"
            ).fetchone()[0]
            conn.execute(
                "UPDATE cluster SET person_id = %s, person_linked_by = 'auto:associate' WHERE id = %s", (person, a)
            )
        for a, b in pairs[len(pairs) // 10 : len(pairs) // 10 + 20]:
            conn.execute("INSERT INTO cluster_cannot_link (cluster_id_1, cluster_id_2) VALUES (%s, %s)", (a, b))
    with db.autocommit() as conn:
        conn.execute("VACUUM ANALYZE cluster")
    return truth


def best(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    seconds, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--clusters", type=int, default=5_000)
    parser.add_argument("--knn", type=int, default=10, help="k of the pgvector k-NN pair query")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--lone-min-faces", type=int, default=None, help="ASSOCIATION_LONE_CLUSTER_MIN_FACES (default: the setting's)"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="photodb-bench-"))
    try:
        with embedded_server(scratch / "pg") as admin:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                database_url=fresh_database(admin, "bench_association"),
                photodb_home=scratch / "home",
            )
            if args.lone_min_faces is not None:
                settings.association_lone_cluster_min_faces = args.lone_min_faces
            with Database(settings, pool_size=4) as db:
                started = time.perf_counter()
                truth = load(db, args.faces, args.clusters, args.seed)
                print(f"setup: {len(truth)} clusters from {args.faces} faces in {time.perf_counter() - started:.0f} s")
                threshold = face_distance(settings, MODEL, "associate")
                rows = measure(db, threshold, args.knn, args.repeat)
                quality = judge(db, truth)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    floor = rows[0][1]
    print(environment())
    print(
        f"{args.faces} faces, {len(truth)} clusters, threshold {threshold}, lone clusters from "
        f"{settings.association_lone_cluster_min_faces} faces; load1 {os.getloadavg()[0]:.1f}"
    )
    print_table(
        ["step", "seconds", "x numpy pairs", "pairs / changes"],
        [(name, f"{s:.3f}", f"{s / floor:.1f}", what) for name, s, what in rows],
    )
    print(quality)


def measure(db: Database, threshold: float, knn: int, repeat: int) -> list[tuple[str, float, str]]:
    def numpy_pairs() -> int:
        with db.connection() as conn:
            ids, vectors = repo.centroids(conn, 1, MODEL)
        return len(find_pairs(ids, vectors, threshold))

    def knn_pairs() -> int:
        with db.connection() as conn:
            return len(repo.knn_pairs_sql(conn, 1, MODEL, threshold, knn))

    rows: list[tuple[str, float, str]] = []
    seconds, found = best(numpy_pairs, repeat)
    rows.append(("numpy pairs", seconds, str(found)))
    seconds, found = best(knn_pairs, repeat)
    rows.append((f"pgvector k-NN pairs (k={knn})", seconds, str(found)))
    seconds, report = best(lambda: auto_associate(db, 1, dry_run=True), repeat)
    rows.append(("auto-associate --dry-run", seconds, changes(report)))
    seconds, report = best(lambda: auto_associate(db, 1), 1)
    rows.append(("auto-associate (writes)", seconds, changes(report)))
    seconds, report = best(lambda: auto_associate(db, 1), repeat)
    rows.append(("auto-associate rerun", seconds, changes(report)))
    return rows


def changes(report: object) -> str:
    return (
        f"+{report.persons_created} persons, {report.clusters_linked} links, {report.persons_merged} merges, "  # type: ignore[attr-defined]
        f"+{report.lone_persons_created} lone"  # type: ignore[attr-defined]
    )


def judge(db: Database, truth: dict[int, int]) -> str:
    """How many identities split in two clusters ended in one person, and how many persons mix two."""
    with db.connection() as conn:
        person_of = dict(conn.execute("SELECT id, person_id FROM cluster WHERE person_id IS NOT NULL").fetchall())
    clusters_of: dict[int, list[int]] = {}
    for cluster, identity in truth.items():
        clusters_of.setdefault(identity, []).append(cluster)
    split = [clusters for clusters in clusters_of.values() if len(clusters) == 2]
    joined = sum(1 for a, b in split if a in person_of and person_of.get(a) == person_of.get(b))
    identities_of: dict[int, set[int]] = {}
    for cluster, person in person_of.items():
        identities_of.setdefault(person, set()).add(truth[cluster])
    mixed = sum(1 for identities in identities_of.values() if len(identities) > 1)
    return (
        f"split identities joined in one person: {joined} of {len(split)} (20 kept apart by a cannot-link); "
        f"persons holding two identities (look-alikes within the threshold): {mixed}"
    )


if __name__ == "__main__":
    main()
