"""People after indexing: the cost of process-local's people step (people.refresh) at 100k faces.

    .venv/bin/python bench/people_ready.py                 # 100k faces, 5k identities, 1,000 new faces
    .venv/bin/python bench/people_ready.py --faces 20000 --identities 1000 --new 200   # quick

One synthetic library (photodb.clustering.synthetic, 10 % noise) is loaded once into a template
database (the face-embedding HNSW index left out: no step here reads it; bench setup only); every
row runs on its own copy of it. Rows, each with its ratio to the baseline named beside it:

* bootstrap, bare: `clustering.bootstrap.bootstrap` alone, the `photodb cluster` step (baseline);
* people step, bootstrapping: `refresh_people` on the same library without a run, as after the
  first index (bootstrap, association of every cluster, lone persons, age/gender). Target: <= 1.10x.
* then `--new` held-out faces arrive and are assigned one by one as the detection stage does (not
  timed), and: the people step with nothing stale (association of the clusters they joined only;
  target <= 2 s), against a full association pass (`auto_associate`, what weekly runs; baseline);
* the check a run with nothing new pays (`needs_refresh`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import embedded_server, environment, fresh_database, print_table

from photodb.clustering.synthetic import make_faces
from photodb.config import Settings
from photodb.database.clustering import faces as face_db
from photodb.database.connection import Database

TEMPLATE = "people_ready_template"
MODEL = "arcface"


def settings_for(url: str, home: Path) -> Settings:
    return Settings(_env_file=None, database_url=url, photodb_home=home)  # type: ignore[call-arg]


def build_template(admin: str, home: Path, faces: np.ndarray) -> None:
    url = fresh_database(admin, TEMPLATE)
    with Database(settings_for(url, home)) as db, db.connection() as conn:
        conn.execute("DROP INDEX IF EXISTS idx_face_embedding")
        for start in range(0, len(faces), 20_000):
            face_db.insert_faces(conn, 1, faces[start : start + 20_000], MODEL)
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()


def copy_of(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    return make_conninfo(admin, dbname=name)


def drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--identities", type=int, default=5_000)
    parser.add_argument("--new", type=int, default=1_000, help="faces arriving after the first index")
    args = parser.parse_args()

    from photodb.clustering.bootstrap import bootstrap
    from photodb.clustering.incremental import assign_new_faces
    from photodb.people.association import auto_associate
    from photodb.people.refresh import needs_refresh, refresh_people

    print(environment())
    made = make_faces(args.faces, args.identities, noise_share=0.10, seed=21)
    order = np.random.default_rng(4).permutation(args.faces)
    first, later = made.embeddings[order[args.new :]], made.embeddings[order[: args.new]]
    home = Path(tempfile.mkdtemp(prefix="photodb-bench-people-"))
    rows = []
    with embedded_server(home / "server") as admin:
        started = time.perf_counter()
        build_template(admin, home, first)
        print(f"library: {len(first)} faces loaded in {time.perf_counter() - started:.0f} s")

        warm = fresh_database(admin, "people_ready_warm")  # imports and compiled code paid before any row is timed
        with Database(settings_for(warm, home)) as db:
            with db.connection() as conn:
                face_db.insert_faces(conn, 1, make_faces(2_000, 100, seed=5).embeddings, MODEL)
                conn.commit()
            refresh_people(db, 1, by="bench")
        drop(admin, "people_ready_warm")

        url = copy_of(admin, "people_ready_bare")
        with Database(settings_for(url, home)) as db:
            bare, reports = timed(lambda: bootstrap(db, collection_id=1))
        clusters = reports[0].clusters  # type: ignore[index]
        rows.append(["bootstrap, bare (baseline)", f"{bare:.2f}", "1.00x", f"{clusters} clusters"])
        drop(admin, "people_ready_bare")

        url = copy_of(admin, "people_ready_step")
        with Database(settings_for(url, home)) as db:
            step, report = timed(lambda: refresh_people(db, 1, by="bench"))
            rows.append(
                [
                    "people step, bootstrapping (target <= 1.10x)",
                    f"{step:.2f}",
                    f"{step / bare:.2f}x",
                    f"{report.persons} persons",  # type: ignore[attr-defined]
                ]
            )
            with db.connection() as conn:
                ids = face_db.insert_faces(conn, 1, later, MODEL, photo_prefix="new")
                conn.commit()
            for face in ids:
                assign_new_faces(db, [face])
            steady, report = timed(lambda: refresh_people(db, 1, by="bench"))
            full, _ = timed(lambda: auto_associate(db, 1))
            check, _ = timed(lambda: needs_refresh(db, 1))
        drop(admin, "people_ready_step")
        rows.append(["association, full pass (baseline)", f"{full:.2f}", "1.00x", "what weekly runs"])
        rows.append(
            [
                "people step, nothing stale (target <= 2 s)",
                f"{steady:.2f}",
                f"{steady / full:.2f}x",
                f"{report.clusters_considered} changed clusters",  # type: ignore[attr-defined]
            ]
        )
        rows.append(["check of a run with nothing new", f"{check:.3f}", "", ""])
        drop(admin, TEMPLATE)
    print_table(["step", "seconds", "ratio", "note"], rows)
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
