"""The search statement uses the HNSW indexes (the GIN index: test_words_ranking.py, on a library with
real statistics), and full text follows SEARCH_TEXT_LANGUAGE."""

from __future__ import annotations

from datetime import date

import pytest
from psycopg import sql

from photodb.database import search_repository as repo
from photodb.search import filters as f
from photodb.search.query import ByDate, ByFace, BySimilarity, build_search
from photodb.search.service import SearchError, SearchRequest, search
from tests.search.library import FACE_MODEL, FACE_VECTORS, IMAGE_MODEL, IMAGE_VECTORS, build_library


@pytest.fixture
def library(db):
    build_library(db)
    return db


def plan(db, statement) -> str:
    """EXPLAIN of a built statement on the tiny library with the scans a large one would not pick
    (whole-table scans and sorts) priced out: which indexes the statement can use, not timing."""
    with db.connection() as conn, conn.transaction():
        repo.set_search_planning(conn)
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_sort = off")
        repo.set_vector_scan(conn, 50)
        rows = conn.execute(sql.SQL("EXPLAIN ") + statement.query, statement.params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_text_similarity_is_served_by_the_photo_embedding_hnsw_index(library):
    filters = [f.CapturedBetween(date(2019, 1, 1), date(2021, 12, 31)), f.SceneTags(("beach",))]
    statement = build_search(filters, BySimilarity(IMAGE_VECTORS[1], IMAGE_MODEL, 0.2), 50)
    assert "Index Scan using idx_photo_embedding on photo_embedding" in plan(library, statement)


def test_a_face_search_is_served_by_the_face_embedding_hnsw_index(library):
    filters = [f.Camera("iphone"), f.CapturedBetween(date(2019, 1, 1), date(2021, 12, 31))]
    statement = build_search(filters, ByFace(FACE_VECTORS[101], FACE_MODEL, 101), 50)
    assert "Index Scan using idx_face_embedding on face_embedding" in plan(library, statement)


def test_a_date_range_is_served_by_the_capture_date_index(library):
    """Dated photos through idx_metadata_captured_at's range, undated ones through their estimates:
    not one OR over every photo joined to its metadata."""
    statement = build_search([f.CapturedBetween(date(2019, 1, 1), date(2019, 12, 31))], ByDate(), 50)
    assert "idx_metadata_captured_at" in plan(library, statement)


def test_behind_a_vector_scan_the_date_range_is_checked_per_row(library):
    """The id set would lead the planner to read every photo of a wide range and sort them all by
    distance (a like-face search over 16 years took 0.5 s instead of 20 ms on the 100k bench)."""
    between = f.CapturedBetween(date(2005, 1, 1), date(2020, 12, 31))
    with library.connection() as conn:
        by_face = build_search([between], ByFace(FACE_VECTORS[101], FACE_MODEL, 101), 50).query.as_string(conn)
        by_date = build_search([between], ByDate(), 50).query.as_string(conn)
    assert "UNION ALL SELECT e.photo_id" not in by_face
    assert "UNION ALL SELECT e.photo_id" in by_date


def test_a_repeated_search_is_never_prepared_on_the_server(library):
    """A generic plan, made without the values, is what the server may switch a prepared statement
    to after a few runs; a search's plan depends on its values."""
    statement = build_search([f.CapturedBetween(date(2019, 1, 1), date(2019, 12, 31))], ByDate(), 50)
    with library.connection() as conn:
        for _ in range(12):
            assert [r.photo_id for r in repo.search(conn, statement)] == [2, 1]
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_the_vector_settings_last_only_for_the_statement(library, settings):
    with library.connection() as conn:
        search(library, settings, SearchRequest(like_photo=1))
        assert conn.execute("SELECT current_setting('hnsw.iterative_scan')").fetchone() == ("off",)


def words_found(db, settings, language: str, text: str) -> set[int]:
    tuned = settings.model_copy(update={"search_text_language": language})
    return {r.photo_id for r in search(db, tuned, SearchRequest(words=text))}


def test_a_changed_language_rebuilds_the_words_before_searching(library, settings):
    assert words_found(library, settings, "english", "runs") == {2, 3}  # running, runs: one stem
    assert words_found(library, settings, "simple", "runs") == {3}  # no stemming
    with library.connection() as conn:
        assert conn.execute("SELECT DISTINCT search_language FROM llm_analysis").fetchall() == [("simple",)]
        conn.execute("INSERT INTO llm_analysis (photo_id, model_name, description) VALUES (5, 'llm', 'He runs.')")
    assert words_found(library, settings, "simple", "runs") == {3, 5}  # a new row starts in english
    assert words_found(library, settings, "english", "running") == {2, 3, 5}


def test_an_unknown_language_is_one_clear_error(library, settings):
    with pytest.raises(SearchError, match=r"SEARCH_TEXT_LANGUAGE=klingon is not a text search configuration.*english"):
        words_found(library, settings, "klingon", "cake")
