"""`photodb people` commands on a large library: each command's service call against a bare
primary-key SELECT measured in the same run.

    .venv/bin/python bench/people.py               # 100k faces in ~5k clusters
    .venv/bin/python bench/people.py --quick       # 10k faces in ~500 clusters

Setup (not timed): synthetic faces (photodb.clustering.synthetic.make_faces, 10% noise, 5%
look-alike pairs) whose identities become the clusters directly (no HDBSCAN: the commands do not
care how clusters were made), loaded by binary COPY: photos with capture dates, detections with age
estimates, embeddings, clusters with exact sums and medoids, an active run without a stored model
(tier 1 off, so "not" re-places faces by tier 2), persons for 60% of the clusters (a fifth of them
holding two clusters, half of them named), 1000 unclustered faces waiting for review with two
pending match candidates each. The face-embedding HNSW index is dropped for the load
and not rebuilt: no people command searches faces by embedding (tier 2 searches cluster centroids,
whose index is built).

Timed: the function each command calls (photodb.people.identity, face_decisions, views) through a
pooled Database as the CLI uses it, `--repeat` times on fresh targets; the table gives the median
and the slowest, and each median as a multiple of the baseline's median (`SELECT id FROM person
WHERE id = ...` through the same pool); a second bare row, one sequential scan of every face, shows
what reading the faces costs on the machine at that moment. CLI start-up (Python imports, settings, migrations check)
is the same for every command: the last two rows run `photodb people list` as a user does (a new process,
bytecode caches allowed), start-up included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, embedded_server, environment, fresh_database, print_table

from photodb.clustering.synthetic import make_faces
from photodb.config import Settings
from photodb.database.connection import Database
from photodb.people import face_decisions, identity, review, views

MODEL = "arcface"


def load_library(url: str, faces: int, identities: int) -> dict[str, list[int]]:
    """COPY a clustered library in; returns cluster ids (biggest first), person ids, linked flags."""
    data = make_faces(faces, identities, seed=3)
    rng = np.random.default_rng(4)
    n = data.identities.size
    labels = data.identities.copy()
    sizes = np.bincount(labels[labels >= 0])
    labels[(labels >= 0) & (sizes[np.maximum(labels, 0)] < 3)] = -1
    ids_of = {label: i + 1 for i, label in enumerate(np.argsort(-sizes)) if sizes[label] >= 3}
    cluster_of = np.array([ids_of.get(int(label), 0) for label in labels], np.int64)
    count = len(ids_of)
    sums = np.zeros((count + 1, data.embeddings.shape[1]), np.float64)
    np.add.at(sums, cluster_of, data.embeddings)
    dots = np.einsum("ij,ij->i", data.embeddings, sums[cluster_of])
    order = np.lexsort((-dots, cluster_of))
    first = order[np.r_[True, cluster_of[order][1:] != cluster_of[order][:-1]]]
    medoid = {int(cluster_of[i]): int(i) + 1 for i in first if cluster_of[i] > 0}
    with psycopg.connect(url) as conn:
        register_vector(conn)
        conn.execute("DROP INDEX IF EXISTS idx_face_embedding")
        run = conn.execute(
            """INSERT INTO hdbscan_run (collection_id, embedding_model, embedding_count, cluster_count,
                   noise_count, min_cluster_size, min_samples, is_active)
               VALUES (1, %s, %s, %s, %s, 3, 2, true) RETURNING id""",
            (MODEL, n, count, int((cluster_of == 0).sum())),
        ).fetchone()[0]
        persons = int(count * 0.6 / 1.2)
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY person (id, collection_id, first_name, auto_created, created_by, estimated_birth_year) FROM STDIN"
            ) as copy,
        ):
            for p in range(1, persons + 1):
                named = p % 2 == 0
                by = "user" if named else "auto:bench"
                copy.write_row((p, 1, f"Person{p}" if named else "Unknown", not named, by, 1950 + p % 60))
        linked = {c: (c - 1) % persons + 1 for c in range(1, int(count * 0.6) + 1)}
        with (
            conn.cursor() as cur,
            cur.copy(
                """COPY cluster (id, collection_id, embedding_model, face_count, centroid_sum, centroid,
                   face_count_at_last_medoid, hdbscan_run_id, person_id, person_linked_by)
               FROM STDIN WITH (FORMAT BINARY)"""
            ) as copy,
        ):
            copy.set_types(["int8", "int8", "text", "int4", "vector", "vector", "int4", "int8", "int8", "text"])
            for c in range(1, count + 1):
                total = sums[c].astype(np.float32)
                members = int((cluster_of == c).sum())
                person = linked.get(c)
                unit = total / np.linalg.norm(total)
                copy.write_row(
                    (c, 1, MODEL, members, total, unit, members, run, person, "auto:bench" if person else None)
                )
        with conn.cursor() as cur, cur.copy("COPY photo (id, collection_id, filename) FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row((i, 1, f"photos/{i // 1000:03d}/img-{i}.jpg"))
        years = rng.integers(1990, 2025, size=n)
        with conn.cursor() as cur, cur.copy("COPY metadata (photo_id, captured_at) FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row((i, f"{years[i - 1]}-06-01 12:00:00"))
        ages = rng.uniform(2, 80, size=n)
        with (
            conn.cursor() as cur,
            cur.copy(
                """COPY person_detection (id, photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height,
                   face_confidence, age_estimate, cluster_id, cluster_status) FROM STDIN"""
            ) as copy,
        ):
            for i in range(1, n + 1):
                c = int(cluster_of[i - 1])
                copy.write_row(
                    (i, i, 10, 10, 80, 80, 0.9, round(float(ages[i - 1]), 1), c or None, "auto" if c else "unassigned")
                )
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY face_embedding (person_detection_id, embedding_model, embedding_dim, embedding)"
                " FROM STDIN WITH (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int8", "text", "int4", "vector"])
            for i in range(1, n + 1):
                copy.write_row((i, MODEL, 512, data.embeddings[i - 1]))
        conn.execute(  # faces in review: two pending candidates each, as assignment leaves them
            """INSERT INTO face_match_candidate (detection_id, cluster_id, similarity)
               SELECT d.id, 1 + (d.id + k * (%s / 2)) %% %s, 0.6 - k / 100.0
               FROM (SELECT id FROM person_detection WHERE cluster_id IS NULL ORDER BY id LIMIT 1000) d,
                    (VALUES (0), (1)) AS v(k)""",
            (count, count),
        )
        conn.execute(
            """UPDATE person_detection SET cluster_status = 'pending'
               WHERE id IN (SELECT detection_id FROM face_match_candidate)"""
        )
        conn.execute(
            "UPDATE cluster c SET medoid_detection_id = m.d, representative_detection_id = m.d"
            " FROM unnest(%s::bigint[], %s::bigint[]) AS m(c, d) WHERE c.id = m.c",
            (list(medoid), list(medoid.values())),
        )
        for table in ("person", "cluster", "photo", "person_detection"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return {"clusters": list(range(1, count + 1)), "linked": sorted(linked), "persons": list(range(1, persons + 1))}


def members(db: Database, cluster_id: int) -> list[int]:
    with db.connection() as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT id FROM person_detection WHERE cluster_id = %s ORDER BY id", (cluster_id,)
            ).fetchall()
        ]


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def commands(db: Database, lib: dict[str, list[int]]) -> Iterator[tuple[str, Callable[[], object]]]:
    """(name, one call) pairs; each call takes fresh targets from the iterators below."""
    clusters, linked, persons = lib["clusters"], lib["linked"], lib["persons"]
    unlinked = iter(clusters[len(linked) :][20:])  # mid-sized clusters without a person
    middle = iter(linked[len(linked) // 3 :])
    person_iter = iter(persons[len(persons) // 2 :])
    merge_pairs = iter(zip(persons[10:], persons[len(persons) // 4 :], strict=False))
    faces_from = iter(clusters[30:])

    def face_of(cluster: int, index: int = 0) -> int:
        return members(db, cluster)[index]

    yield "baseline: SELECT person by id", lambda: _bare(db, persons[0])
    yield "bare scan: count(*), max(age) of all faces", lambda: _bare_scan(db)
    yield "list", lambda: views.list_people(db, 1)
    yield "list --clusters", lambda: views.list_people(db, 1, with_clusters=True)
    yield "list --clusters --limit 0 (all)", lambda: views.list_people(db, 1, with_clusters=True, limit=None)
    yield "show PERSON (largest)", lambda: views.show_person(db, linked and _largest_person(db))
    yield "show --cluster (largest)", lambda: views.show_cluster(db, clusters[0])
    yield "show --face", lambda: views.show_face(db, face_of(clusters[50]))
    yield "review --list (1000 faces, 2000 pending)", lambda: review.list_pending(db, 1)
    yield "name --cluster (new person)", lambda: identity.name_cluster(db, next(unlinked), "Ada Lovelace", by="user")
    yield "rename PERSON", lambda: identity.name_person(db, next(person_iter), "Grace Hopper", by="user")
    yield "link CLUSTER PERSON", lambda: identity.link_cluster(db, next(unlinked), persons[5], by="user")
    yield "unlink CLUSTER", lambda: identity.unlink_cluster(db, next(middle), by="user")
    yield "verify CLUSTER", lambda: identity.verify_cluster(db, next(middle), by="user")
    yield "hide --cluster", lambda: identity.hide_cluster(db, next(middle), by="user")
    yield "hide --person", lambda: identity.hide_person(db, next(person_iter), by="user")
    yield "merge KEEP OTHER", lambda: identity.merge_persons(db, *next(merge_pairs), by="user")

    def move_cluster() -> object:
        source, target = next(faces_from), next(faces_from)
        return face_decisions.move_face(db, face_of(source), cluster_id=target, by="user")

    yield "move --cluster", move_cluster
    yield (
        "move --person",
        lambda: face_decisions.move_face(db, face_of(next(faces_from)), person_id=persons[7], by="user"),
    )
    yield "move --unassign", lambda: face_decisions.move_face(db, face_of(next(faces_from)), by="user")
    yield "not FACE (named cluster)", lambda: face_decisions.reject_face(db, face_of(next(middle), 1), by="user")

    def link(kind: face_decisions.LinkKind) -> Callable[[], object]:
        return lambda: face_decisions.link_faces(
            db, kind, face_of(next(faces_from)), face_of(next(faces_from)), by="user"
        )

    yield "must-link FACE FACE", link("must")
    yield "cannot-link FACE FACE", link("cannot")
    yield "CLI: photodb people list", lambda: _cli(db, "list")
    yield "CLI: photodb people list --clusters --limit 0", lambda: _cli(db, "list", "--clusters", "--limit", "0")


def _cli(db: Database, *args: str) -> None:
    """`photodb people ARGS` in a new process on this database, output discarded."""
    env = os.environ | {
        "DATABASE_URL": db.url,
        "PHOTODB_HOME": str(db.settings.photodb_home),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install has its bytecode compiled
    subprocess.run(
        [sys.executable, "-m", "photodb.cli", "people", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )


_largest: dict[str, int] = {}


def _largest_person(db: Database) -> int:
    if "id" not in _largest:
        with db.connection() as conn:
            _largest["id"] = conn.execute(
                """SELECT person_id FROM cluster WHERE person_id IS NOT NULL
                   GROUP BY 1 ORDER BY sum(face_count) DESC LIMIT 1"""
            ).fetchone()[0]
    return _largest["id"]


def _bare_scan(db: Database) -> object:
    """The floor of any listing that reads every face once: one sequential scan, nothing else."""
    with db.connection() as conn:
        return conn.execute("SELECT count(*), max(age_estimate) FROM person_detection").fetchone()


def _bare(db: Database, person_id: int) -> object:
    with db.connection() as conn:
        return conn.execute("SELECT id FROM person WHERE id = %s", (person_id,)).fetchone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k faces in ~500 clusters")
    parser.add_argument("--repeat", type=int, default=7, help="calls per command (median and slowest)")
    args = parser.parse_args()
    faces, identities = (10_000, 500) if args.quick else (100_000, 5_000)
    print(environment())
    with tempfile.TemporaryDirectory() as tmp, embedded_server(Path(tmp) / "pg") as admin:
        url = fresh_database(admin, "people_bench")
        Database(Settings(_env_file=None, database_url=url, photodb_home=Path(tmp) / "home")).close()  # type: ignore[call-arg]
        started = time.perf_counter()
        lib = load_library(url, faces, identities)
        print(
            f"loaded {faces} faces in {len(lib['clusters'])} clusters, {len(lib['persons'])} persons "
            f"({time.perf_counter() - started:.1f} s, COPY)"
        )
        settings = Settings(_env_file=None, database_url=url, photodb_home=Path(tmp) / "home")  # type: ignore[call-arg]
        with Database(settings, pool_size=2) as db:
            rows, baseline = [], None
            for name, call in commands(db, lib):
                call()  # warm: plans, pool, the first import of anything lazy
                times = sorted(timed(call, args.repeat))
                median = statistics.median(times)
                baseline = baseline or median
                rows.append((name, f"{median:.1f}", f"{times[-1]:.1f}", f"{median / baseline:.1f}x"))
            print_table(("command (service call)", "median ms", "slowest ms", "vs baseline"), rows)
    print(f"machine load (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
