"""SQL of `photodb search`: looking up what a search names, and running the statement it builds.

Functions take a connection, so the caller runs the look-ups and the search in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from photodb.database.clustering.faces import array_of
from photodb.search.filters import FACE_SHOWN, HiddenFaces
from photodb.search.query import FilteredPhotos, SearchStatement


@dataclass(frozen=True)
class PersonMatch:
    id: int
    name: str
    hidden: bool = False


@dataclass(frozen=True)
class SearchRow:
    photo_id: int
    root_path: str | None
    filename: str
    normalized_path: str | None
    captured_at: datetime | None
    score: float | None
    persons: list[dict[str, Any]]
    estimated_year: float | None = None  # photos without captured_at: the year estimated from faces
    estimated_stddev: float | None = None


def persons_named(conn: psycopg.Connection, name: str, collection_id: int | None) -> list[PersonMatch]:
    """Persons whose full name is `name` (any case); failing that, whose first or last name is.
    Only names a user gave count (person.named: automatic 'Unknown' placeholders are nobody's
    name). Hidden persons are among them (marked), so that the caller can say why it refuses them."""
    rows = conn.execute(
        """WITH named AS (
               SELECT id, CONCAT_WS(' ', first_name, last_name) AS full_name, first_name, last_name, hidden
               FROM person WHERE named AND (%(collection)s::bigint IS NULL OR collection_id = %(collection)s))
           SELECT id, full_name, hidden FROM named WHERE LOWER(full_name) = LOWER(%(name)s)
           UNION ALL
           SELECT id, full_name, hidden FROM named
           WHERE NOT EXISTS (SELECT 1 FROM named WHERE LOWER(full_name) = LOWER(%(name)s))
             AND (LOWER(first_name) = LOWER(%(name)s) OR LOWER(last_name) = LOWER(%(name)s))
           ORDER BY id""",
        {"name": name.strip(), "collection": collection_id},
    ).fetchall()
    return [PersonMatch(r[0], r[1], r[2]) for r in rows]


def clusters_hidden(conn: psycopg.Connection, cluster_ids: list[int]) -> dict[int, bool]:
    """For each of `cluster_ids` that names a cluster: whether it is hidden, or its person is."""
    rows = conn.execute(
        """SELECT k.id, k.hidden OR COALESCE(pr.hidden, false) FROM cluster k
           LEFT JOIN person pr ON pr.id = k.person_id WHERE k.id = ANY(%s::bigint[])""",
        (cluster_ids,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def hidden_faces(conn: psycopg.Connection) -> HiddenFaces:
    """The hidden persons, and the clusters hidden or of a hidden person, for a face search to
    leave out (HiddenFaces). Two scans of small tables, once per search."""
    row = conn.execute(
        """SELECT ARRAY(SELECT id FROM person WHERE hidden ORDER BY id),
                  ARRAY(SELECT k.id FROM cluster k LEFT JOIN person pr ON pr.id = k.person_id
                        WHERE k.hidden OR COALESCE(pr.hidden, false) ORDER BY k.id)"""
    ).fetchone()
    assert row is not None
    return HiddenFaces(tuple(row[0]), tuple(row[1]))


def text_search_configurations(conn: psycopg.Connection) -> list[str]:
    """Names of the server's text search configurations (english, german, simple, ...)."""
    return [r[0] for r in conn.execute("SELECT cfgname FROM pg_ts_config ORDER BY cfgname").fetchall()]


def has_llm_analyses(conn: psycopg.Connection) -> bool:
    """Whether any photo has an LLM analysis (what `--words` searches)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM llm_analysis WHERE error_message IS NULL)").fetchone()
    return bool(row[0]) if row else False


def relanguage_analyses(conn: psycopg.Connection, language: str) -> int:
    """Rebuild the words of analyses indexed in another language; how many were.

    Two range scans of idx_llm_analysis_search_language when every row is current.
    """
    return conn.execute(
        """UPDATE llm_analysis SET search_language = %(language)s
           WHERE search_language < %(language)s OR search_language > %(language)s""",
        {"language": language},
    ).rowcount


def photo_embedding(conn: psycopg.Connection, photo_id: int, model_name: str) -> np.ndarray | None:
    """The photo's stored CLIP image embedding for `model_name`, or None."""
    row = conn.execute(
        "SELECT embedding FROM photo_embedding WHERE photo_id = %s AND model_name = %s", (photo_id, model_name)
    ).fetchone()
    return None if row is None else array_of(row[0]).astype(np.float32)


def photo_exists(conn: psycopg.Connection, photo_id: int) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM photo WHERE id = %s)", (photo_id,)).fetchone() == (True,)


def face_embedding(conn: psycopg.Connection, detection_id: int) -> tuple[np.ndarray, str, bool] | None:
    """A face's embedding, its model and whether its identity is hidden (query.FACE_SHOWN), or None
    when the detection has no embedding."""
    row = conn.execute(
        sql.SQL(
            "SELECT f.embedding, f.embedding_model, NOT ({shown}) FROM face_embedding f "
            "JOIN person_detection d ON d.id = f.person_detection_id WHERE f.person_detection_id = %s"
        ).format(shown=FACE_SHOWN),
        (detection_id,),
    ).fetchone()
    return None if row is None else (array_of(row[0]).astype(np.float32), row[1], row[2])


#: Filtered photos (the planner's estimate) up to which a similarity search sorts them all by exact
#: distance instead of scanning the HNSW index. Each exact row reads a TOASTed vector: measured on
#: the 100k bench with a cold cache, 50-100 us each (a year, ~5k photos: 0.2-0.5 s), against
#: 20-60 ms for the iterative scan that finds 50 of that year; a few hundred rows cost less than
#: the scan's own ~1000 candidates when a filter keeps under 1 % of the photos.
EXACT_MAX_ROWS = 500


#: Relations the planner orders together (join_collapse_limit and from_collapse_limit; default 8).
#: A search joins photo, metadata and its ranking's table, and each EXISTS or IN filter becomes one
#: more join: ten filters made a dozen relations, ~13 ms of planning (p95 ~20 ms on the 100k
#: bench) for a statement that then ran in ~6 ms. In groups of four, the order the statement is
#: written in (the ranking's tables, then the id sets, then the per-row filters) is kept between
#: groups: planning ~2 ms, the same plans for the bench's other queries.
SEARCH_COLLAPSE_LIMIT = 4


def set_search_planning(conn: psycopg.Connection) -> None:
    """The planner's settings for a search, in the current transaction only (never the session:
    poolers share it): the collapse limit above, and random_page_cost 1.1 (the usual value for
    cached data and SSDs). At the default 4 each index lookup is priced as a disk read: the planner
    gave up the HNSW index for an exact sort of every filtered photo from ~6k of them (a year on the
    100k bench: 0.2-0.5 s, the scan 20-60 ms), and an exact sort of a person's ~200 photos of a
    year read all 100k embeddings rather than look up 670 (7 ms of the 9)."""
    conn.execute(
        "SELECT set_config('join_collapse_limit', %(limit)s, true), "
        "set_config('from_collapse_limit', %(limit)s, true), set_config('random_page_cost', '1.1', true)",
        {"limit": str(SEARCH_COLLAPSE_LIMIT)},
        prepare=False,
    )


def set_vector_scan(conn: psycopg.Connection, candidates: int) -> None:
    """HNSW settings for the current transaction only (never the session: poolers share it).

    Iterative scans (pgvector 0.8) keep reading the index until enough rows pass the filters;
    relaxed order is re-sorted by the statement itself. ef_search, the candidate list, is what the
    statement asks for (at least pgvector's default 40), so an unfiltered search needs one pass.
    `search` has already sent small filtered sets to the exact form.
    """
    conn.execute(
        """SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
                  set_config('hnsw.ef_search', %s, true)""",
        (str(min(1000, max(40, candidates))),),
        prepare=False,
    )


def estimated_rows(conn: psycopg.Connection, filtered: FilteredPhotos) -> float:
    """The planner's estimate of how many photos pass the filters (planning only, nothing runs)."""
    row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + filtered.query, filtered.params, prepare=False).fetchone()
    assert row is not None
    return float(row[0][0]["Plan"]["Plan Rows"])


def chosen(conn: psycopg.Connection, statement: SearchStatement) -> SearchStatement:
    """The statement to run: the exact alternative where the planner expects few filtered photos."""
    if statement.exact_alternative is None or statement.filtered is None:
        return statement
    if estimated_rows(conn, statement.filtered) <= EXACT_MAX_ROWS:
        return statement.exact_alternative
    return statement


def search(conn: psycopg.Connection, statement: SearchStatement) -> list[SearchRow]:
    """Run a built search in a transaction of its own (its vector settings die with it).

    Never as a server-side prepared statement: a search's best plan depends on its values (how
    common a word is, how wide a date range), and after a few runs of one statement text the
    server may switch to a generic plan made without them (a 100 ms search then took 20 s).
    """
    with conn.transaction():
        set_search_planning(conn)
        statement = chosen(conn, statement)
        if statement.uses_vector_index:
            set_vector_scan(conn, statement.vector_candidates)
        rows = conn.execute(statement.query, statement.params, prepare=False).fetchall()
    return [
        SearchRow(r[0], r[1], r[2], r[3], r[4], None if r[5] is None else float(r[5]), r[6], r[7], r[8]) for r in rows
    ]
