"""Answer times of `photodb people split` and `photodb people review` on a large library.

    .venv/bin/python bench/people_corrections.py            # 100k faces in ~5k clusters
    .venv/bin/python bench/people_corrections.py --quick    # 10k faces

The library is synthetic (photodb.clustering.synthetic: identities of very different sizes,
look-alikes, noise faces left unclustered), loaded by COPY into clusters by identity; the face
embedding HNSW index is dropped for the load (the commands measured never search it). Each command
runs through its service function, as the CLI calls it, in this process (interpreter start and
imports, ~1 s, are not counted): the median and worst of several runs on different clusters.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import embedded_server, environment, fresh_database, print_table

from photodb.clustering.synthetic import make_faces
from photodb.config import Settings
from photodb.database.clustering import centroids
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database
from photodb.people.review import accept, list_pending, reject
from photodb.people.split import plan_split, split

RUNS = 7


def load(db: Database, faces: int, identities: int) -> tuple[list[int], list[int]]:
    """The library: returns cluster ids by size (largest first) and one person's clusters."""
    data = make_faces(faces, identities, lookalike_share=0.1, seed=3)
    with db.connection() as conn:
        conn.execute("DROP INDEX idx_face_embedding")
        ids = face_db.insert_faces(conn, 1, data.embeddings, "arcface")
        known = sorted({int(i) for i in data.identities if i >= 0})
        clusters = [
            r[0]
            for r in conn.execute(
                """INSERT INTO cluster (collection_id, embedding_model) SELECT 1, 'arcface'
                   FROM generate_series(1, %s) RETURNING id""",
                (len(known),),
            ).fetchall()
        ]
        of = dict(zip(known, clusters, strict=True))
        pairs = [(d, of[int(i)]) for d, i in zip(ids, data.identities, strict=True) if i >= 0]
        conn.execute(
            """UPDATE person_detection d SET cluster_id = u.c, cluster_status = 'auto'
               FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, c) WHERE d.id = u.id""",
            ([p[0] for p in pairs], [p[1] for p in pairs]),
        )
        centroids.recount_clusters(conn, clusters)
        by_size = [r[0] for r in conn.execute("SELECT id FROM cluster ORDER BY face_count DESC, id").fetchall()]
        person = conn.execute(
            "INSERT INTO person (collection_id, first_name) VALUES (1, 'Ada') RETURNING id"
        ).fetchone()
        assert person is not None
        linked = by_size[100:103]
        conn.execute("UPDATE cluster SET person_id = %s WHERE id = ANY(%s)", (person[0], linked))
        # faces waiting for review: unclustered faces proposed to two clusters each
        waiting = [d for d, i in zip(ids, data.identities, strict=True) if i < 0][:400]
        conn.execute(
            """INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
               SELECT w.id, c.id, 0.7 FROM unnest(%s::bigint[]) WITH ORDINALITY AS w(id, n)
               JOIN LATERAL (SELECT id FROM cluster ORDER BY id OFFSET (w.n * 2) %% 4000 LIMIT 2) c ON true""",
            (waiting,),
        )
        conn.execute("UPDATE person_detection SET cluster_status = 'pending' WHERE id = ANY(%s)", (waiting,))
        conn.execute("ANALYZE")
    return by_size, [person[0]]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    faces, identities = (10_000, 500) if args.quick else (100_000, 5_000)
    print(environment())
    with tempfile.TemporaryDirectory() as home, embedded_server(Path(home) / "pg") as admin:
        url = fresh_database(admin, "people_corrections")
        db = Database(Settings(_env_file=None, database_url=url, photodb_home=Path(home)), pool_size=2)  # type: ignore[call-arg]
        started = time.perf_counter()
        by_size, (person,) = load(db, faces, identities)
        print(f"loaded {faces} faces in {len(by_size)} clusters in {time.perf_counter() - started:.1f} s")
        typical = by_size[len(by_size) // 2 : len(by_size) // 2 + RUNS]
        big = by_size[1 : 1 + RUNS]
        pending = list_pending(db)
        rows = []
        cases: list[tuple[str, list[Callable[[], object]]]] = [
            ("split --dry-run, typical cluster", [lambda c=c: plan_split(db, cluster_id=c) for c in typical]),
            ("split --dry-run, large cluster", [lambda c=c: plan_split(db, cluster_id=c) for c in big]),
            ("split --keep 2, typical cluster", [lambda c=c: split(db, cluster_id=c, keep=2) for c in typical]),
            ("split --person (3 clusters)", [lambda: split(db, person_id=person, keep=1)]),
            ("review --list (all pending)", [lambda: list_pending(db) for _ in range(RUNS)]),
            ("review --accept", [lambda c=c: accept(db, c.candidate_id) for c in pending[0 : 2 * RUNS : 2]]),
            ("review --reject", [lambda c=c: reject(db, c.candidate_id) for c in pending[40 : 40 + 2 * RUNS : 2]]),
        ]
        for name, actions in cases:
            times = sorted(timed(a) for a in actions)
            rows.append((name, len(times), f"{statistics.median(times):.1f}", f"{times[-1]:.1f}"))
        print_table(["command", "runs", "median ms", "worst ms"], rows)
        print(f"large clusters: {', '.join(str(c) for c in big)}; pending candidates: {len(pending)}")
        db.close()


if __name__ == "__main__":
    main()
