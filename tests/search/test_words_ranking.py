"""Words searches on a library large enough for the planner's choices to be real ones (3,000
analyses, ANALYZEd): a rare word is found through the GIN index and ranked; a word in every
description ranks a bounded set of matches, not all of them, and still puts the better match first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from psycopg import sql

from photodb.database import search_repository as repo
from photodb.search import filters as f
from photodb.search.query import ByWords, build_search, word_candidates
from photodb.search.service import SearchRequest, search

PHOTOS = 3000


@pytest.fixture
def words_library(db):
    """Every description says "harbour"; "lighthouse" is in photo 10's description, photo 2990's
    objects and photo 20's location; photo 2995 says harbour three times (the best harbour match),
    photo 2996 only in its location (the worst)."""
    with db.connection() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO photo (id, collection_id, filename) SELECT i, 1, i || '.jpg' FROM generate_series(1, %s) i",
            (PHOTOS,),
        )
        conn.execute(
            """INSERT INTO llm_analysis (photo_id, model_name, description, objects, location_description)
               SELECT i, 'llm', CASE WHEN i = 2996 THEN 'boats at sea' ELSE 'harbour view number ' || i END,
                      ARRAY['boat'], CASE WHEN i = 2996 THEN 'harbour' END
               FROM generate_series(1, %s) i""",
            (PHOTOS,),
        )
        conn.execute(
            """UPDATE llm_analysis SET description = description || ' with a lighthouse' WHERE photo_id = 10;
               UPDATE llm_analysis SET objects = ARRAY['lighthouse'] WHERE photo_id = 2990;
               UPDATE llm_analysis SET location_description = 'lighthouse road' WHERE photo_id = 20;
               UPDATE llm_analysis SET description = 'harbour, harbour wall and harbour boats',
                      analysis = '{"tags": ["harbour"]}' WHERE photo_id = 2995"""
        )
    with db.autocommit() as conn:  # as autovacuum would: statistics, and the GIN pending list merged
        conn.execute("VACUUM ANALYZE photo, llm_analysis")
    return db


def _plan(db, statement, *, analyze: bool) -> dict[str, Any]:
    explain = "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " if analyze else "EXPLAIN (FORMAT JSON) "
    with db.connection() as conn, conn.transaction():
        (rows,) = conn.execute(sql.SQL(explain) + statement.query, statement.params).fetchone()
    return (rows if isinstance(rows, list) else json.loads(rows))[0]["Plan"]


def _nodes(node: dict[str, Any]):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _hits(plan: dict[str, Any]) -> dict[str, Any]:
    return next(n for n in _nodes(plan) if n.get("Subplan Name") == "CTE hits")


def test_a_rare_word_is_found_through_the_gin_index_and_ranked(words_library, settings):
    words = f.Words("lighthouse", "english")
    plan = _plan(words_library, build_search([], ByWords(words), 50), analyze=False)
    assert "idx_llm_analysis_search" in {n.get("Index Name") for n in _nodes(_hits(plan))}
    results = search(words_library, settings, SearchRequest(words="lighthouse"))
    assert [r.photo_id for r in results] == [10, 2990, 20]  # description, then objects, then location
    assert results[0].score > results[1].score > results[2].score > 0


def test_a_word_in_every_description_ranks_a_bounded_set_of_matches(words_library):
    limit = 5
    statement = build_search([], ByWords(f.Words("harbour", "english")), limit)
    rows_read = max(n["Actual Rows"] for n in _nodes(_hits(_plan(words_library, statement, analyze=True))))
    assert PHOTOS > word_candidates(limit) >= rows_read


def test_a_word_in_every_description_still_puts_the_better_match_first(words_library, settings):
    results = search(words_library, settings, SearchRequest(words="harbour", limit=5))
    assert results[0].photo_id == 2995
    assert results[0].score > results[1].score
    assert 2996 not in [r.photo_id for r in results]  # a location-only match ranks below descriptions
    with words_library.connection() as conn, conn.transaction():
        statement = build_search([], ByWords(f.Words("harbour", "english")), 1000)
        everything = repo.search(conn, statement)
    assert everything[0].photo_id == 2995
    assert 2996 not in [r.photo_id for r in everything]  # 1,000 of 2,999 better matches come first
