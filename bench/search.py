"""Search benchmark: `photodb search` statements on a synthetic library, against bare index queries.

    .venv/bin/python bench/search.py                   # 100,000 photos, 40 runs per query
    .venv/bin/python bench/search.py --photos 20000 --runs 20
    .venv/bin/python bench/search.py --home /tmp/search-bench  # keep the library, reuse it next time
    .venv/bin/python bench/search.py --home /tmp/search-bench --only "text + year" --only "2 persons"

The library is written with COPY (binary for the vectors) into a fresh embedded PostgreSQL: photos,
metadata (dates over 25 years, 12 cameras, 60 % with GPS around 20 cities), 300 named persons and
100 unnamed clusters, ~1.2 faces per photo (10 % with their own person_id), 30,000 face
embeddings, 3 scene tags per photo and one tag per face, an LLM analysis per photo (a 12-word
description from a 2,000-word Zipf vocabulary, 3 objects, 3 tags), a 512-d image embedding per
photo drawn around one of 200 topics, and for the 5 % undated photos a year estimated from faces
(photo_date_estimate, spread 1-6 years), which date searches match too. The HNSW indexes are
built once after the load, then ANALYZE.

Each query is built from a different real photo per run (its topic as the "text" vector, its
person, year, month, camera, position, a tag, a face tag and a word), so the combined filters
always match something. Timed: `build_search` + `search_repository.search` (the statement's
transaction with its vector settings, one round trip) on a pooled connection, as `photodb search`
runs it after the CLIP text encoder; p50 / p95 over the runs, and p95 as a ratio of the bare
HNSW query's p95 (`ORDER BY embedding <=> q LIMIT 50`, measured in the same run). The row "same,
ranking every match (before)" is the words ranking as it was before it was bounded (its inner
part alone), for the before/after figure in one run. Then EXPLAIN of the combined text query and
of the words queries, showing which indexes they use.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from psycopg import sql
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import embedded_server, environment, fresh_database, percentile, print_table
from _search_library import (
    CAMERAS,
    FACE_LABELS,
    FACE_MODEL,
    IMAGE_MODEL,
    PERSONS,
    SCENE_LABELS,
    Library,
    load,
    loaded,
    mark_loaded,
    unit_rows,
)

from photodb.config import Settings
from photodb.database import search_repository as repo
from photodb.database.connection import Database
from photodb.search import filters as f
from photodb.search.query import ByDate, ByFace, BySimilarity, ByWords, build_search

BARE_HNSW = "SELECT photo_id FROM photo_embedding ORDER BY embedding <=> %s LIMIT 50"
BARE_GIN = "SELECT photo_id FROM llm_analysis WHERE search_vector @@ websearch_to_tsquery('english', %s) LIMIT 50"
#: The words ranking before it was bounded (d12b2f9): ts_rank over every match (the statement's inner part).
RANK_EVERY_MATCH = (
    "SELECT a.photo_id, MAX(ts_rank(a.search_vector, q)) AS score FROM llm_analysis a "
    "JOIN photo p ON p.id = a.photo_id LEFT JOIN metadata m ON m.photo_id = p.id, "
    "websearch_to_tsquery('english', %s) q "
    "WHERE a.search_vector @@ q GROUP BY a.photo_id ORDER BY score DESC, a.photo_id LIMIT 50"
)


class Queries:
    """Search statements built from one real photo each, so that every filter matches it."""

    def __init__(self, lib: Library, seed: int = 1) -> None:
        self.lib = lib
        rng = np.random.default_rng(seed)
        named = lib.face_cluster < PERSONS
        with_person = np.unique(lib.face_photo[named])
        eligible = [int(p) for p in with_person if lib.gps[p] and lib.dated[p]]
        self.photos = rng.permutation(eligible)
        self.rng = rng

    def word(self, photo: int) -> str:
        """The rarest word of the photo's description (the Zipf vocabulary's highest rank)."""
        return max(self.lib.words[photo], key=lambda w: int(w[4:]))

    def vector(self, photo: int) -> np.ndarray:
        return self.lib.centers[self.lib.topic[photo]]

    def ten_filters(self, photo: int) -> list[f.Filter]:
        lib = self.lib
        face = int(np.nonzero((lib.face_photo == photo) & (lib.face_cluster < PERSONS))[0][0])
        day = date.fromordinal(int(lib.days[photo]))
        return [
            f.InCollection(1),
            f.People((int(lib.face_cluster[face]) + 1,)),
            f.CapturedBetween(date(day.year, 1, 1), date(day.year, 12, 31)),
            f.CapturedMonth(day.month),
            f.Camera(CAMERAS[lib.camera[photo]][1]),
            f.Near(*lib.position[photo].tolist(), 25.0),
            f.SceneTags((SCENE_LABELS[lib.tags[photo][0]],)),
            f.FaceTags((FACE_LABELS[lib.face_tag[face]],)),
            f.Words(self.word(photo), "english"),
            f.NotPhoto(0),
        ]

    def cases(self) -> dict[str, Callable[[int], tuple[str, object, bool]]]:
        """name -> photo -> (statement or bare SQL, params, uses vectors)."""
        lib = self.lib

        def built(filters: list[f.Filter], ranking: object) -> tuple[object, object, bool]:
            statement = build_search(filters, ranking, 50)  # type: ignore[arg-type]
            return statement, None, statement.uses_vector_index

        def nonsense(photo: int) -> np.ndarray:
            return unit_rows(np.random.default_rng(photo).normal(size=(1, 512)))[0]

        def words(photo: int) -> f.Words:
            return f.Words(self.word(photo), "english")

        common = f.Words("word0", "english")

        def year(photo: int) -> f.CapturedBetween:
            """The photo's capture year: dated photos of it, and undated ones whose estimate overlaps it."""
            first = date(date.fromordinal(int(lib.days[photo])).year, 1, 1)
            return f.CapturedBetween(first, date(first.year, 12, 31))

        face_of = {int(p): d for d, p in reversed(list(enumerate(lib.face_photo[: len(lib.face_vectors)])))}
        faces = sorted(face_of)
        return {
            "bare HNSW (baseline)": lambda p: (BARE_HNSW, (self.vector(p),), True),
            "text": lambda p: built([], BySimilarity(self.vector(p), IMAGE_MODEL, 0.2)),
            "text + 10 filters": lambda p: built(self.ten_filters(p), BySimilarity(self.vector(p), IMAGE_MODEL, 0.2)),
            "nonsense text (below floor)": lambda p: built([], BySimilarity(nonsense(p), IMAGE_MODEL, 0.2)),
            "bare GIN words (baseline)": lambda p: (BARE_GIN, (self.word(p),), False),
            "words (ts_rank)": lambda p: built([], ByWords(words(p))),
            "words, in half the photos": lambda p: built([], ByWords(common)),
            "  same, ranking every match (before)": lambda p: (RANK_EVERY_MATCH, ("word0",), False),
            "words in half + year": lambda p: built([year(p)], ByWords(common)),
            "year, newest first (+ estimates)": lambda p: built([year(p)], ByDate()),
            "year, oldest first (+ estimates)": lambda p: built([year(p)], ByDate(newest=False)),
            "text + year (+ estimates)": lambda p: built([year(p)], BySimilarity(self.vector(p), IMAGE_MODEL, 0.2)),
            "10 filters, newest first": lambda p: built(self.ten_filters(p), ByDate()),
            "2 persons together + year": lambda p: built(
                [f.People((1, 2)), f.CapturedBetween(date(2010, 1, 1), date(2015, 12, 31))], ByDate()
            ),
            "like photo": lambda p: built([f.NotPhoto(p + 1)], BySimilarity(lib.images[p], IMAGE_MODEL)),
            "like face + year": lambda p: built(
                [f.CapturedBetween(date(2005, 1, 1), date(2020, 12, 31))],
                ByFace(
                    lib.face_vectors[face_of[faces[p % len(faces)]]], FACE_MODEL, face_of[faces[p % len(faces)]] + 1
                ),
            ),
        }


def run_case(
    db: Database, make: Callable[[int], tuple[object, object, bool]], photos: list[int]
) -> tuple[list[float], float]:
    timings, rows = [], 0
    with db.connection() as conn:
        for photo in photos:
            started = time.perf_counter()
            statement, params, _ = make(int(photo))
            if isinstance(statement, str):
                with conn.transaction():
                    found = conn.execute(statement, params).fetchall()  # type: ignore[arg-type]
            else:
                found = repo.search(conn, statement)  # type: ignore[arg-type]
            timings.append((time.perf_counter() - started) * 1000)
            rows += len(found)
    return sorted(timings), rows / len(photos)


def explain(db: Database, statement: object) -> list[str]:
    with db.connection() as conn, conn.transaction():
        repo.set_search_planning(conn)
        repo.set_vector_scan(conn, statement.vector_candidates)
        plan = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ") + statement.query, statement.params
        )  # type: ignore[attr-defined]
        return [r[0] for r in plan.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--home",
        type=Path,
        help="keep the server and library here; a later run with the same --photos reuses them (no load)",
    )
    parser.add_argument("--only", action="append", default=[], help="time only the queries whose name starts so")
    args = parser.parse_args()
    print(environment())
    started = time.perf_counter()
    lib = Library(args.photos)
    print(f"generated {args.photos} photos, {lib.face_photo.size} faces in {time.perf_counter() - started:.1f} s")
    with contextlib.ExitStack() as stack:
        home = args.home or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        admin = stack.enter_context(embedded_server(home / "pg"))
        name = f"search_bench_{args.photos}"
        reused = args.home is not None and loaded(admin, name)
        url = make_conninfo(admin, dbname=name) if reused else fresh_database(admin, name)
        settings = Settings(_env_file=None, database_url=url, photodb_home=home / "home")  # type: ignore[call-arg]
        with Database(settings, pool_size=1) as db:
            if reused:
                print(f"reusing the library in {home}")
            else:
                print(f"loaded with COPY and built the indexes in {load(url, lib):.1f} s")
                mark_loaded(url)
            queries = Queries(lib)
            photos = [int(p) for p in queries.photos[: args.runs]]
            cases = {
                name: make
                for name, make in queries.cases().items()
                if not args.only or name.startswith(("bare HNSW", *args.only))
            }
            for make in cases.values():  # warm the caches once
                run_case(db, make, photos[:3])
            results = {name: run_case(db, make, photos) for name, make in cases.items()}
            bare = percentile(results["bare HNSW (baseline)"][0], 0.95)
            print_table(
                ["query", "p50 ms", "p95 ms", "p95 / bare HNSW p95", "rows (mean)"],
                [
                    (
                        name,
                        f"{percentile(t, 0.5):.1f}",
                        f"{percentile(t, 0.95):.1f}",
                        f"{percentile(t, 0.95) / bare:.2f}",
                        f"{rows:.1f}",
                    )
                    for name, (t, rows) in results.items()
                ],
            )
            print(f"machine load (1, 5, 15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            photo = photos[0]
            for name in [
                name
                for name in (
                    "text + 10 filters",
                    "text",
                    "words (ts_rank)",
                    "words, in half the photos",
                    "year, newest first (+ estimates)",
                    "like face + year",
                )
                if name in cases
            ]:
                statement = cases[name](photo)[0]
                lines = explain(db, statement)
                used = sorted({w.strip("()") for line in lines for w in line.split() if w.startswith("idx_")})
                print(f"\nEXPLAIN ANALYZE {name}: indexes used: {', '.join(used)}")
                shown = [line[:140] for line in lines if "->" in line or line.lstrip().startswith(("Limit", "CTE"))]
                print("\n".join(f"  {line}" for line in shown))


if __name__ == "__main__":
    main()
