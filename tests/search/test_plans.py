"""Which plan a search takes (EXPLAIN), and that every form finds what brute force finds.

The small library (tests/search/library.py) checks the forms; a generated one (a few thousand
photos with random vectors, dates over ten years and faces of a few persons, written with COPY and
ANALYZEd so that the planner's estimates are real) checks the results against numpy.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest
from psycopg import sql

from photodb.database import search_repository as repo
from photodb.search import filters as f
from photodb.search.query import ByDate, BySimilarity, build_search
from tests.search.library import ALAN, GRACE, IMAGE_MODEL, IMAGE_VECTORS, build_library

GENERATED_PHOTOS = 3000
GENERATED_PERSONS = 4
FIRST_DAY = date(2010, 1, 1).toordinal()


def explain(db, statement) -> str:
    with db.connection() as conn, conn.transaction():
        repo.set_search_planning(conn)
        if statement.uses_vector_index:
            repo.set_vector_scan(conn, statement.vector_candidates)
        rows = conn.execute(sql.SQL("EXPLAIN ") + statement.query, statement.params).fetchall()
    return "\n".join(r[0] for r in rows)


def chosen(db, statement):
    with db.connection() as conn, conn.transaction():
        return repo.chosen(conn, statement)


@pytest.fixture
def library(db):
    build_library(db)
    with db.connection() as conn:
        conn.execute("ANALYZE")
    return db


def test_persons_together_and_a_date_range_are_one_intersection_of_id_sets(library, settings):
    """One set operation over the persons' photo ids and the range's: before, separate INs made the
    planner look up each photo of the first person (16.8k on the 100k bench) and hash a 6-year range
    (25k ids) against them."""
    filters = [f.People((GRACE, ALAN)), f.CapturedBetween(date(2019, 1, 1), date(2019, 12, 31))]
    statement = build_search(filters, ByDate(), 50)
    with library.connection() as conn:
        hits = statement.query.as_string(conn).split("), persons AS")[0]
    assert hits.count(" INTERSECT ") == 2 and hits.count("p.id IN") == 1
    assert "Intersect" in explain(library, statement)
    with library.connection() as conn:
        assert [r.photo_id for r in repo.search(conn, statement)] == [1]


def test_behind_a_vector_scan_persons_together_are_checked_per_row(library):
    filters = [f.People((GRACE, ALAN)), f.CapturedBetween(date(2019, 1, 1), date(2019, 12, 31))]
    statement = build_search(filters, BySimilarity(IMAGE_VECTORS[2], IMAGE_MODEL), 50)
    with library.connection() as conn:
        hits = statement.query.as_string(conn).split("), persons AS")[0]
        assert "UNION ALL SELECT e.photo_id" not in hits  # the range's id set
        assert [r.photo_id for r in repo.search(conn, statement)] == [1]


def test_persons_together_with_no_common_photo_find_nothing(library):
    statement = build_search([f.People((GRACE,), (12,))], ByDate(), 50)
    with library.connection() as conn:
        assert repo.search(conn, statement) == []


YEAR_2019 = f.CapturedBetween(date(2019, 1, 1), date(2019, 12, 31))


def test_a_small_filtered_set_is_sorted_by_exact_distance(library):
    statement = build_search([YEAR_2019], BySimilarity(IMAGE_VECTORS[1], IMAGE_MODEL), 50)
    assert statement.exact_alternative is not None
    exact = chosen(library, statement)
    assert exact is statement.exact_alternative
    assert not exact.uses_vector_index
    plan = explain(library, exact)
    assert "idx_photo_embedding " not in plan and "Sort" in plan
    with library.connection() as conn:
        assert [r.photo_id for r in repo.search(conn, statement)] == [1, 2]


def test_without_a_persons_or_date_filter_the_planner_chooses(library):
    """No estimate round trip (planning ten per-row filters twice cost ~8 ms): the planner itself
    sorts a set it expects to be tiny."""
    unfiltered = build_search([], BySimilarity(IMAGE_VECTORS[1], IMAGE_MODEL), 50)
    by_camera = build_search([f.Camera("iphone")], BySimilarity(IMAGE_VECTORS[1], IMAGE_MODEL), 50)
    assert unfiltered.exact_alternative is None and by_camera.exact_alternative is None
    assert by_camera.uses_vector_index
    with library.connection() as conn:
        assert [r.photo_id for r in repo.search(conn, by_camera)] == [1, 3]


SEARCH_SETTINGS = (
    "SELECT current_setting('random_page_cost'), current_setting('join_collapse_limit'), "
    "current_setting('from_collapse_limit'), current_setting('hnsw.ef_search')"
)


def test_the_scan_and_planner_settings_last_only_for_the_statement(library, monkeypatch):
    monkeypatch.setattr(repo, "EXACT_MAX_ROWS", -1)  # the scan even for this small set
    statement = build_search([YEAR_2019], BySimilarity(IMAGE_VECTORS[1], IMAGE_MODEL), 50)
    with library.connection() as conn:
        with conn.transaction():
            default = conn.execute(SEARCH_SETTINGS).fetchone()
            repo.set_search_planning(conn)
            repo.set_vector_scan(conn, 77)
            inside = conn.execute(SEARCH_SETTINGS).fetchone()
        assert inside == ("1.1", str(repo.SEARCH_COLLAPSE_LIMIT), str(repo.SEARCH_COLLAPSE_LIMIT), "77") != default
        assert [r.photo_id for r in repo.search(conn, statement)] == [1, 2]
        with conn.transaction():
            assert conn.execute(SEARCH_SETTINGS).fetchone() == default


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def generated(db):
    """GENERATED_PHOTOS photos: random unit vectors, a day in 2010-2019 each (every 20th undated),
    one to three faces of persons 1..GENERATED_PERSONS through their clusters (every 7th by its own
    person_id). Returned: vectors, days (0 for undated) and each photo's persons."""
    rng = np.random.default_rng(7)
    n = GENERATED_PHOTOS
    vectors = unit_rows(rng.normal(size=(n, 512)))
    days = np.where(np.arange(n) % 20 == 0, 0, FIRST_DAY + rng.integers(0, 3652, n))
    faces = [(photo, int(p)) for photo in range(n) for p in rng.choice(GENERATED_PERSONS, 1 + photo % 3, replace=False)]
    persons: dict[int, set[int]] = {photo: set() for photo in range(n)}
    for photo, person in faces:
        persons[photo].add(person + 1)
    with db.connection() as conn:
        with conn.cursor().copy("COPY photo (id, collection_id, filename) FROM STDIN") as copy:
            for photo in range(n):
                copy.write_row((photo + 1, 1, f"p{photo + 1}.jpg"))
        with conn.cursor().copy("COPY metadata (photo_id, captured_at) FROM STDIN") as copy:
            for photo in range(n):
                day = int(days[photo])
                copy.write_row((photo + 1, datetime.fromordinal(day) + timedelta(hours=9) if day else None))
        conn.execute(
            "INSERT INTO person (id, collection_id, first_name) SELECT i, 1, 'P' || i FROM generate_series(1, %s) i",
            (GENERATED_PERSONS,),
        )
        conn.execute(
            "INSERT INTO cluster (id, collection_id, embedding_model, person_id) "
            "SELECT i, 1, 'arcface:w600k_r50', i FROM generate_series(1, %s) i",
            (GENERATED_PERSONS,),
        )
        with conn.cursor().copy(
            "COPY person_detection (photo_id, face_bbox_x, face_bbox_y, face_bbox_width, face_bbox_height, "
            "cluster_id, person_id) FROM STDIN"
        ) as copy:
            for index, (photo, person) in enumerate(faces):
                own = person + 1 if index % 7 == 0 else None
                copy.write_row((photo + 1, 0, 0, 40, 40, person + 1, own))
        with conn.cursor().copy(
            "COPY photo_embedding (photo_id, model_name, embedding_dim, embedding) FROM STDIN"
        ) as copy:
            for photo in range(n):
                copy.write_row((photo + 1, IMAGE_MODEL, 512, "[" + ",".join(map(str, vectors[photo])) + "]"))
        conn.execute("ANALYZE")
    return db, vectors, days, persons


def in_year(days: np.ndarray, year: int) -> np.ndarray:
    return (days >= date(year, 1, 1).toordinal()) & (days <= date(year, 12, 31).toordinal())


def test_exact_results_are_the_brute_force_nearest_and_no_worse_than_the_scan(generated):
    db, vectors, days, _ = generated
    query = unit_rows(np.random.default_rng(8).normal(size=(1, 512)))[0]
    year = f.CapturedBetween(date(2015, 1, 1), date(2015, 12, 31))
    statement = build_search([year], BySimilarity(query, IMAGE_MODEL), 20)
    with db.connection() as conn:
        exact = repo.search(conn, statement.exact_alternative)
        scanned = repo.search(conn, statement)
    similarity = vectors @ query
    expected = np.flatnonzero(in_year(days, 2015))
    expected = expected[np.argsort(-similarity[expected], kind="stable")][:20] + 1
    assert [r.photo_id for r in exact] == expected.tolist()
    assert len(scanned) == 20
    assert all(e.score >= s.score - 1e-6 for e, s in zip(exact, scanned, strict=True))
    assert {r.photo_id for r in scanned} <= set(np.flatnonzero(in_year(days, 2015)) + 1)


def test_the_estimate_picks_the_scan_for_a_large_filtered_set_and_exact_for_a_small_one(generated):
    db, _, _, _ = generated
    query = IMAGE_VECTORS[1]
    wide = build_search([f.CapturedBetween(date(2010, 1, 1), date(2018, 12, 31))], BySimilarity(query, IMAGE_MODEL), 50)
    narrow = build_search(
        [f.CapturedBetween(date(2015, 3, 1), date(2015, 3, 31))], BySimilarity(query, IMAGE_MODEL), 50
    )
    assert chosen(db, wide) is wide
    assert "Index Scan using idx_photo_embedding" in explain(db, wide)
    assert chosen(db, narrow) is narrow.exact_alternative


def test_the_estimate_counts_every_filter_not_only_the_id_sets(generated):
    """Nine years are too many photos to sort exactly, March of them is not: the per-row month
    filter is in the estimate, so the exact form runs, and finds the brute-force nearest."""
    db, vectors, days, _ = generated
    query = unit_rows(np.random.default_rng(9).normal(size=(1, 512)))[0]
    years = f.CapturedBetween(date(2010, 1, 1), date(2018, 12, 31))
    alone = build_search([years], BySimilarity(query, IMAGE_MODEL), 50)
    in_march = build_search([years, f.CapturedMonth(3)], BySimilarity(query, IMAGE_MODEL), 50)
    assert chosen(db, alone) is alone
    assert chosen(db, in_march) is in_march.exact_alternative
    with db.connection() as conn:
        found = [r.photo_id for r in repo.search(conn, in_march)]
    dated = (days >= date(2010, 1, 1).toordinal()) & (days <= date(2018, 12, 31).toordinal())
    march = np.array([bool(day) and date.fromordinal(int(day)).month == 3 for day in days])
    expected = np.flatnonzero(dated & march)
    expected = expected[np.argsort(-(vectors[expected] @ query), kind="stable")][:50] + 1
    assert 50 < (dated & march).sum() <= repo.EXACT_MAX_ROWS < dated.sum()
    assert found == expected.tolist()


@pytest.mark.parametrize("together", [(1, 2), (2, 3, 4)])
def test_persons_together_and_a_year_match_brute_force(generated, together):
    db, _, days, persons = generated
    filters = [f.People(together), f.CapturedBetween(date(2013, 1, 1), date(2016, 12, 31))]
    with db.connection() as conn:
        found = [r.photo_id for r in repo.search(conn, build_search(filters, ByDate(), 1000))]
    dated = (days >= date(2013, 1, 1).toordinal()) & (days <= date(2016, 12, 31).toordinal())
    expected = [p for p in np.flatnonzero(dated) if set(together) <= persons[int(p)]]
    expected.sort(key=lambda p: (-int(days[p]), -p))
    assert found == [int(p) + 1 for p in expected]
    assert found  # the generated library has such photos
