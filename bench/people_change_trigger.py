"""What the undo log's row triggers (migration 0027) cost the writes that are not people decisions.

Outside a people decision the trigger's WHEN clause is false, so no trigger function runs; this
measures what is left: the same bulk update of every face (as a re-bootstrap writes them) and the
same single-row updates (as incremental assignment writes one face and one cluster) with the
triggers enabled and disabled, alternating, median of --repeat rounds. Then one recorded decision
(a bulk update of every face under a change) shows what recording costs when it runs.

    python bench/people_change_trigger.py [--faces 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import embedded_server, environment, fresh_database, print_table

from photodb.config import Settings
from photodb.database import change_repository as change_db
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database

TABLES = ("person_detection", "cluster")


def _triggers(conn, enabled: bool) -> None:
    for table in TABLES:
        conn.execute(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER zz_people_change_row")


def _bulk(conn) -> float:
    started = time.perf_counter()
    conn.execute("UPDATE person_detection SET cluster_confidence = random()")
    return (time.perf_counter() - started) * 1000


def _single_rows(conn, ids: list[int], cluster_id: int) -> float:
    started = time.perf_counter()
    for face in ids:
        conn.execute("UPDATE person_detection SET cluster_confidence = random() WHERE id = %s", (face,))
        conn.execute("UPDATE cluster SET face_count = face_count + 1 WHERE id = %s", (cluster_id,))
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=2_000, help="single-row updates per round")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(environment())
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp, embedded_server(Path(tmp) / "pg") as admin:
        url = fresh_database(admin, "change_trigger_bench")
        settings = Settings(_env_file=None, database_url=url, photodb_home=Path(tmp) / "home")  # type: ignore[call-arg]
        with Database(settings, pool_size=2) as db, db.connection() as conn:
            conn.autocommit = True
            vectors = rng.normal(size=(args.faces, 512)).astype(np.float32)
            ids = face_db.insert_faces(conn, 1, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), "arcface")
            row = conn.execute(
                "INSERT INTO cluster (collection_id, embedding_model) VALUES (1, 'arcface') RETURNING id"
            )
            cluster_id = row.fetchone()[0]  # type: ignore[index]
            times: dict[tuple[str, bool], list[float]] = {}
            for _ in range(args.repeat):
                for enabled in (False, True):
                    _triggers(conn, enabled)
                    times.setdefault(("bulk", enabled), []).append(_bulk(conn))
                    times.setdefault(("single", enabled), []).append(_single_rows(conn, ids[: args.single], cluster_id))
            with conn.transaction():
                change_db.begin(conn, "bench", "bench")
                recorded = _bulk(conn)
                conn.execute("SELECT 1")
            rows = []
            for kind, label in (
                ("bulk", f"UPDATE of {args.faces} faces"),
                ("single", f"{args.single} x (face + cluster)"),
            ):
                off, on = statistics.median(times[(kind, False)]), statistics.median(times[(kind, True)])
                rows.append((label, f"{off:.1f}", f"{on:.1f}", f"{on / off:.2f}x"))
            off = statistics.median(times[("bulk", False)])
            rows.append(
                (f"UPDATE of {args.faces} faces, recorded", f"{off:.1f}", f"{recorded:.1f}", f"{recorded / off:.2f}x")
            )
            print_table(("write", "no trigger ms", "trigger ms", "ratio"), rows)


if __name__ == "__main__":
    main()
