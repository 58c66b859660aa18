"""The pages of `photodb web` on a large library: every page requested through the real app
(Starlette's TestClient: routing, the thread pool, Jinja2, the database, no network), p50 and p95
of the time per request, side by side with the static stylesheet (the baseline: the same app with
no database work) and as a multiple of it. Target: p95 <= 150 ms on every page.

    .venv/bin/python bench/web_pages.py            # 100k faces, 5,000 persons
    .venv/bin/python bench/web_pages.py --quick    # 10k faces, 500 persons

Setup (not timed): bench/people.py's library (synthetic faces in ~5k clusters loaded by COPY,
1000 faces in review), then persons added until there are 5,000 (each new one given one of the
clusters without a person, 200 clusters left unnamed for the queue), every face a sharpness and
half of them five landmarks, so the cover choice has work to do. Face images are not made: pages
are timed, not thumbnails (tests/web time those with real crops).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import embedded_server, environment, fresh_database, percentile, print_table

from people import load_library
from photodb.config import Settings
from photodb.database.connection import Database

#: Clusters left without a person: the unnamed queue's work.
UNNAMED = 200


def more_persons(url: str, target: int) -> None:
    """Persons up to `target`, each new one given one cluster that had none; faces get a sharpness,
    every other one frontal landmarks."""
    with psycopg.connect(url) as conn:
        conn.execute(
            """WITH free AS (
                   SELECT id, row_number() OVER (ORDER BY face_count DESC, id) AS n FROM cluster
                   WHERE person_id IS NULL ORDER BY face_count DESC, id OFFSET %(keep)s),
               made AS (
                   INSERT INTO person (collection_id, first_name, last_name, auto_created, created_by)
                   SELECT 1, 'Extra', 'Person ' || g, false, 'user'
                   FROM generate_series(1, greatest(0, %(target)s - (SELECT count(*) FROM person))) g
                   RETURNING id),
               pairs AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM made)
               UPDATE cluster c SET person_id = p.id, person_linked_by = 'user'
               FROM free f JOIN pairs p ON p.n = f.n - %(keep)s WHERE c.id = f.id""",
            {"target": target, "keep": UNNAMED},
        )
        conn.execute(
            """UPDATE person_detection SET face_sharpness = (id * 7919 % 1000)::float8,
                      face_landmarks = CASE WHEN id % 2 = 0
                          THEN '[[30,40],[60,40],[45,55],[33,70],[57,70]]'::jsonb END"""
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def pick(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT (SELECT person_id FROM cluster WHERE person_id IS NOT NULL ORDER BY face_count DESC LIMIT 1),
                      (SELECT id FROM cluster WHERE person_id IS NULL ORDER BY face_count DESC, id LIMIT 1),
                      (SELECT photo_id FROM person_detection WHERE cluster_id IS NOT NULL ORDER BY id LIMIT 1),
                      (SELECT count(*) FROM person), (SELECT count(*) FROM person_detection)"""
        ).fetchone()
    assert row is not None
    return dict(zip(("person", "unnamed", "photo", "persons", "faces"), row, strict=True))


def timed(get: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        get()
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k faces, 500 persons")
    parser.add_argument("--repeat", type=int, default=40, help="requests per page")
    args = parser.parse_args()
    faces, identities, persons = (10_000, 500, 500) if args.quick else (100_000, 5_000, 5_000)
    print(environment())
    from starlette.testclient import TestClient

    from photodb.web import security
    from photodb.web.app import WebContext, create_app
    from photodb.web.thumbnails import cache_dir

    with tempfile.TemporaryDirectory() as tmp, embedded_server(Path(tmp) / "pg") as admin:
        url = fresh_database(admin, "web_pages_bench")
        settings = Settings(_env_file=None, database_url=url, photodb_home=Path(tmp) / "home")  # type: ignore[call-arg]
        Database(settings).close()
        started = time.perf_counter()
        load_library(url, faces, identities)
        more_persons(url, persons)
        ids = pick(url)
        print(f"loaded {ids['faces']} faces, {ids['persons']} persons ({time.perf_counter() - started:.1f} s)")
        with Database(settings, pool_size=4) as db:
            context = WebContext(
                db, settings, Path(tmp) / "images", cache_dir(settings.photodb_home), None, security.new_token()
            )
            client = TestClient(create_app(context), base_url="http://127.0.0.1:8765")
            pages = {
                "baseline: /static/style.css": "/static/style.css",
                "people grid, page 1 (+ unnamed clusters)": "/",
                "unsorted faces (loaded into page 1)": "/unsorted",
                "people grid, a middle page": f"/?page={ids['persons'] // 48 // 2}",
                "person (largest), faces page 1": f"/person/{ids['person']}",
                "person (largest), faces page 2": f"/person/{ids['person']}?page=2",
                "person timeline": f"/person/{ids['person']}/timeline",
                "unnamed queue, first": "/unnamed",
                "unnamed queue, after one": f"/unnamed/after/{ids['unnamed']}",
                "photo with face boxes": f"/photo/{ids['photo']}",
                "review": "/review",
                "search by person": "/search?person=Person2",
                "cluster quality": "/quality",
            }
            rows, base = [], None
            for name, path in pages.items():
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                times = timed(lambda path=path: client.get(path), args.repeat)
                p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
                base = base or p50
                verdict = "" if name.startswith("baseline") else ("ok" if p95 <= 150 else "OVER")
                rows.append(
                    (
                        name,
                        f"{p50:.1f}",
                        f"{p95:.1f}",
                        f"{p50 / base:.0f}x",
                        f"{len(response.content) // 1024}",
                        verdict,
                    )
                )
            print_table(("page", "p50 ms", "p95 ms", "p50 vs baseline", "KiB", "p95 <= 150"), rows)
    print(f"machine load (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
