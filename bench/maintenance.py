"""Maintenance benchmark: `weekly` on a library of 100k faces in 5k clusters, time per task.

    .venv/bin/python bench/maintenance.py            # 100k faces, 5k clusters
    .venv/bin/python bench/maintenance.py --quick    # 10k faces, 500 clusters

The library is synthetic (photodb.clustering.synthetic: identities of 3 to hundreds of faces, 5 %
noise faces, look-alike identities) and is written as a bootstrap would leave it, then given the
work a week brings: some identities split in two clusters (half of them must-linked across the
split, the rest left to merge-similar), wrong counts and sums, empty clusters, medoids that left
or are due, cannot-links, group photos (faces of two identities in one photo), and the noise faces
in the unassigned pool for 60 days. Setup writes every table by binary COPY with explicit ids and
leaves out the face-embedding HNSW index, which no maintenance task reads (bench setup only).

Printed: each task's wall time and what it changed, the whole run against the 60 s target, and in
the same run two baselines on the same tables: a bare `count(*) GROUP BY cluster_id` over the
faces and a bare recompute of every cluster's sum in one statement (no locks, no writes), as ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import embedded_server, fresh_database

from photodb.clustering.synthetic import make_faces

TARGET_SECONDS = 60.0
DIM = 512


def settings_for(**overrides: object):
    from photodb.config import Settings

    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def plan(n: int, clusters: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Faces, their clusters (-1: unassigned) and photos: identities are clusters, a few split."""
    split = clusters // 25  # 4 % of the clusters are the second half of a split identity
    faces = make_faces(n, clusters - split, noise_share=0.05, lookalike_share=0.05, seed=seed)
    rng = np.random.default_rng(seed)
    cluster = faces.identities.copy()
    sizes = np.bincount(cluster[cluster >= 0])
    halves = rng.choice(np.nonzero(sizes >= 6)[0], size=split, replace=False)
    for k, identity in enumerate(halves):
        members = np.nonzero(cluster == identity)[0]
        cluster[members[: members.size // 2]] = clusters - split + k
    cluster[cluster < 0] = -1
    photo = np.arange(n, dtype=np.int64)
    clustered = np.nonzero(cluster >= 0)[0]
    pairs = rng.choice(clustered, size=(n // 200, 2), replace=False)
    pairs = pairs[cluster[pairs[:, 0]] != cluster[pairs[:, 1]]]
    photo[pairs[:, 1]] = photo[pairs[:, 0]]  # group photos: two people in one picture
    return {"embeddings": faces.embeddings, "cluster": cluster, "photo": photo, "halves": halves}


def load(url: str, layout: dict[str, np.ndarray], clusters: int) -> None:
    import psycopg
    from pgvector.psycopg import register_vector

    from photodb.database import maintenance_repository as repo
    from photodb.database.clustering import centroids

    embeddings, cluster, photo = layout["embeddings"], layout["cluster"], layout["photo"]
    n = embeddings.shape[0]
    with psycopg.connect(url) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX IF EXISTS idx_face_embedding")
        with conn.cursor() as cur:
            with cur.copy("COPY photo (id, collection_id, filename) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int8", "text"])
                for i in range(n):
                    copy.write_row((i + 1, 1, f"photo-{i + 1}.jpg"))
            with cur.copy("COPY cluster (id, collection_id, embedding_model) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int8", "text"])
                for c in range(clusters):
                    copy.write_row((c + 1, 1, "arcface"))
            with cur.copy(
                """COPY person_detection (id, photo_id, face_bbox_x, face_bbox_y, face_bbox_width,
                   face_bbox_height, face_confidence, cluster_id, cluster_status, unassigned_since)
                   FROM STDIN (FORMAT BINARY)"""
            ) as copy:
                copy.set_types(
                    ["int8", "int8", "float8", "float8", "float8", "float8", "float8", "int8", "text", "timestamptz"]
                )
                when = datetime.now(UTC) - timedelta(days=60)
                for i in range(n):
                    c = int(cluster[i])
                    copy.write_row(
                        (
                            i + 1,
                            int(photo[i]) + 1,
                            0.0,
                            0.0,
                            10.0,
                            10.0,
                            0.9,
                            c + 1 if c >= 0 else None,
                            "auto" if c >= 0 else "unassigned",
                            None if c >= 0 else when,
                        )
                    )
            with cur.copy(
                "COPY face_embedding (person_detection_id, embedding_model, embedding_dim, embedding)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "text", "int4", "vector"])
                for i in range(n):
                    copy.write_row((i + 1, "arcface", DIM, embeddings[i]))
        for table in ("photo", "cluster", "person_detection"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")  # noqa: S608
        ids = list(range(1, clusters + 1))
        centroids.recount_clusters(conn, ids)
        repo.set_medoids(conn, ids)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()


def drift(url: str, layout: dict[str, np.ndarray], clusters: int) -> dict[str, int]:
    """A week's work for maintenance, drawn at random but the same each run."""
    import psycopg

    rng = np.random.default_rng(11)
    cluster = layout["cluster"]
    split = clusters // 25
    first = clusters - split
    with psycopg.connect(url) as conn:
        wrong = rng.choice(clusters, size=clusters // 50, replace=False) + 1
        conn.execute(
            """UPDATE cluster SET face_count = face_count + 1, centroid_sum = centroid_sum + centroid_sum
               WHERE id = ANY(%s)""",
            (wrong.tolist(),),
        )
        empties = [
            r[0]
            for r in conn.execute(
                """INSERT INTO cluster (collection_id, embedding_model)
                   SELECT 1, 'arcface' FROM generate_series(1, %s) RETURNING id""",
                (clusters // 50,),
            ).fetchall()
        ]
        due = rng.choice(clusters, size=clusters // 10, replace=False) + 1
        conn.execute(
            "UPDATE cluster SET face_count_at_last_medoid = greatest(1, face_count / 2) WHERE id = ANY(%s)",
            (due.tolist(),),
        )
        # half the split identities are must-linked across their halves, in chains of three faces
        must = []
        for k in range(split // 2):
            identity = int(layout["halves"][k])
            a = np.nonzero(cluster == first + k)[0][:2] + 1
            b = np.nonzero(cluster == identity)[0][:1] + 1
            must += [tuple(sorted((int(a[0]), int(b[0])))), tuple(sorted((int(b[0]), int(a[1]))))]
        conn.execute(
            """INSERT INTO must_link (detection_id_1, detection_id_2, created_by)
               SELECT a, b, 'user' FROM unnest(%s::bigint[], %s::bigint[]) u(a, b) ON CONFLICT DO NOTHING""",
            ([a for a, _ in must], [b for _, b in must]),
        )
        faces = rng.choice(np.nonzero(cluster >= 0)[0], size=(clusters // 10, 2), replace=False) + 1
        faces.sort(axis=1)
        faces = faces[cluster[faces[:, 0] - 1] != cluster[faces[:, 1] - 1]]
        conn.execute(
            """INSERT INTO cannot_link (detection_id_1, detection_id_2, created_by)
               SELECT a, b, 'user' FROM unnest(%s::bigint[], %s::bigint[]) u(a, b) ON CONFLICT DO NOTHING""",
            (faces[:, 0].tolist(), faces[:, 1].tolist()),
        )
        conn.execute("ANALYZE")
    return {
        "wrong sums": len(wrong),
        "empty clusters": len(empties),
        "medoids due": len(due),
        "must-links": len(must),
        "cannot-links": len(faces),
        "unassigned faces": int((cluster < 0).sum()),
    }


def baselines(db) -> tuple[float, float]:
    """Seconds of a bare count per cluster and of a bare sum per cluster (one statement each)."""
    with db.connection() as conn:
        started = time.perf_counter()
        conn.execute("SELECT cluster_id, count(*) FROM person_detection GROUP BY cluster_id").fetchall()
        counted = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute(
            """SELECT d.cluster_id, count(*), sum(fe.embedding) FROM person_detection d
               JOIN face_embedding fe ON fe.person_detection_id = d.id
               WHERE d.cluster_id IS NOT NULL GROUP BY d.cluster_id"""
        ).fetchall()
        summed = time.perf_counter() - started
    return counted, summed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k faces in 500 clusters")
    args = parser.parse_args()
    n, clusters = (10_000, 500) if args.quick else (100_000, 5_000)

    from photodb import maintenance
    from photodb.database.connection import Database

    with tempfile.TemporaryDirectory() as tmp, embedded_server(Path(tmp) / "pg") as admin:
        url = fresh_database(admin, "bench_maintenance")
        db = Database(settings_for(database_url=url, photodb_home=Path(tmp) / "home"), pool_size=2)
        try:
            started = time.perf_counter()
            layout = plan(n, clusters)
            generated = time.perf_counter() - started
            load(url, layout, clusters)
            work = drift(url, layout, clusters)
            print(
                f"library: {n} faces in {clusters} clusters; generated in {generated:.1f} s, "
                f"written in {time.perf_counter() - started - generated:.1f} s"
            )
            print("  week's work: " + ", ".join(f"{k} {v}" for k, v in work.items()))
            counted, summed = baselines(db)
            results = maintenance.run_tasks(
                db, maintenance.WEEKLY, None, maintenance.Options.from_settings(db.settings)
            )
            counted_after, summed_after = baselines(db)
            counted, summed = min(counted, counted_after), min(summed, summed_after)
            for r in results:
                changes = ", ".join(f"{k} {v}" for k, v in r.changes.items())
                state = "ok" if r.ok else f"PROBLEMS {len(r.problems)}" if not r.error else f"ERROR {r.error}"
                print(f"  {r.task:<21} {r.seconds:7.2f} s  {changes}  [{state}]")
            total = sum(r.seconds for r in results)
            recompute = next(r.seconds for r in results if r.task == "recompute-centroids")
            verdict = "within" if total <= TARGET_SECONDS else "OVER"
            print(f"  weekly: {total:.1f} s ({verdict} the {TARGET_SECONDS:.0f} s target)")
            bare = f"{counted * 1000:.0f} ms; weekly / it = {total / counted:.0f}x"
            print(f"  baseline bare count(*) GROUP BY cluster_id: {bare}")
            print(
                f"  baseline bare sum(embedding) GROUP BY cluster_id: {summed:.2f} s; "
                f"weekly / it = {total / summed:.1f}x, recompute-centroids / it = {recompute / summed:.2f}x"
            )
            print(f"  machine load (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            db.close()


if __name__ == "__main__":
    main()
