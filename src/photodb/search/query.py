"""One search as one parameterised statement: the filters, a ranking, a limit.

The ranking decides the statement's inner part, which picks the `limit` best photos passing every
filter; the outer part adds paths, dates and the persons in each photo. Vector rankings order by
the pgvector distance itself, so the HNSW indexes serve them (with iterative scans, the filters
do not starve the result: `repository.search` sets them for the statement's transaction), and
the similarity floor is applied to those nearest photos, so a nonsense text returns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

import numpy as np
from psycopg import sql

from photodb.search.filters import Filter, HiddenFaces, Params, Words, conditions

#: Width of the vector columns; shorter embeddings are zero-padded (cosine is unchanged).
VECTOR_WIDTH = 512
#: Faces looked at per photo returned by a face search: a photo may hold several near faces.
FACES_PER_RESULT = 2
#: Matching analyses a words search ranks at least, and per result asked for (see ByWords).
WORD_CANDIDATES = 1000
WORD_CANDIDATES_PER_RESULT = 10


def padded(vector: np.ndarray) -> np.ndarray:
    """A query vector as stored vectors are: float32, zero-padded to VECTOR_WIDTH."""
    flat = np.asarray(vector, dtype=np.float32).ravel()
    if flat.size > VECTOR_WIDTH:
        raise ValueError(f"a {flat.size}-d vector does not fit the {VECTOR_WIDTH}-d columns")
    return np.pad(flat, (0, VECTOR_WIDTH - flat.size))


class Ranking(Protocol):
    uses_vector_index: bool

    def candidates(self, limit: int) -> int:
        """Index entries the vector scan must return (its ef_search), 0 for no vector scan."""
        ...

    def inner(self, params: Params, where: sql.Composable, limit: int) -> sql.Composable:
        """SELECT photo_id, score of the best `limit` photos passing `where` (over p and m)."""
        ...

    def outer_where(self, params: Params) -> sql.Composable:
        """A condition on the hits `h` (the similarity floor), TRUE when none."""
        ...

    def outer_order(self) -> sql.Composable: ...


_PHOTO_AND_METADATA = sql.SQL("JOIN photo p ON p.id = {photo} LEFT JOIN metadata m ON m.photo_id = p.id")


class _BestScoreFirst:
    """What most rankings share: no vector scan, no floor on the hits, the best score first."""

    uses_vector_index: ClassVar[bool] = False

    def candidates(self, limit: int) -> int:
        return 0

    def outer_where(self, params: Params) -> sql.Composable:
        return sql.SQL("TRUE")

    def outer_order(self) -> sql.Composable:
        return sql.SQL("h.score DESC, p.id")


@dataclass(frozen=True)
class BySimilarity(_BestScoreFirst):
    """Photos nearest a CLIP vector (a text's, or a photo's own), at or above `min_similarity`.

    Two forms: an HNSW scan (iterative, until `limit` rows pass the filters), or, `exact`, the
    distance of every photo passing the filters, sorted (`ORDER BY score`, which the index cannot
    serve). The exact form reads one TOASTed vector per filtered photo; the scan reads ~10 index
    pages per candidate and needs limit / selectivity candidates, so the exact form is cheaper for
    small filtered sets (search_repository.search picks by the planner's estimate of the set).
    """

    vector: np.ndarray
    model_name: str
    min_similarity: float | None = None
    exact: bool = False

    @property
    def uses_vector_index(self) -> bool:  # type: ignore[override]
        return not self.exact

    def candidates(self, limit: int) -> int:
        return 0 if self.exact else limit

    def inner(self, params: Params, where: sql.Composable, limit: int) -> sql.Composable:
        query = params(padded(self.vector), "vector")
        order = sql.SQL("score DESC, e.photo_id" if self.exact else "e.embedding <=> {q}").format(q=query)
        return sql.SQL(
            "SELECT e.photo_id, 1 - (e.embedding <=> {q}) AS score FROM photo_embedding e {join} "
            "WHERE e.model_name = {model} AND {where} ORDER BY {order} LIMIT {limit}"
        ).format(
            order=order,
            q=query,
            join=_PHOTO_AND_METADATA.format(photo=sql.SQL("e.photo_id")),
            model=params(self.model_name),
            where=where,
            limit=params(limit),
        )

    def outer_where(self, params: Params) -> sql.Composable:
        if self.min_similarity is None:
            return sql.SQL("TRUE")
        return sql.SQL("h.score >= {}").format(params(self.min_similarity, "float8"))


@dataclass(frozen=True)
class ByFace(_BestScoreFirst):
    """Photos holding a face nearest a face embedding (same model), the face itself left out, and
    faces of hidden persons and clusters too (they are not searched by who they are)."""

    vector: np.ndarray
    model_name: str
    detection_id: int
    hidden: HiddenFaces = field(default_factory=HiddenFaces)
    uses_vector_index: ClassVar[bool] = True

    def candidates(self, limit: int) -> int:
        return limit * FACES_PER_RESULT

    def inner(self, params: Params, where: sql.Composable, limit: int) -> sql.Composable:
        query = params(padded(self.vector), "vector")
        return sql.SQL(
            "SELECT photo_id, MAX(score) AS score FROM ("
            "SELECT d.photo_id, 1 - (f.embedding <=> {q}) AS score FROM face_embedding f "
            "JOIN person_detection d ON d.id = f.person_detection_id {join} "
            "WHERE f.embedding_model = {model} AND f.person_detection_id <> {face} AND {shown} AND {where} "
            "ORDER BY f.embedding <=> {q} LIMIT {faces}) nearest "
            "GROUP BY photo_id ORDER BY score DESC, photo_id LIMIT {limit}"
        ).format(
            q=query,
            join=_PHOTO_AND_METADATA.format(photo=sql.SQL("d.photo_id")),
            model=params(self.model_name),
            face=params(self.detection_id),
            shown=self.hidden.shown(params),
            where=where,
            faces=params(limit * FACES_PER_RESULT),
            limit=params(limit),
        )


@dataclass(frozen=True)
class ByWords(_BestScoreFirst):
    """Photos whose LLM analyses match the words, by full-text rank (the best analysis of a photo).

    The match is this ranking's own join (served by the GIN index), so the Words filter is not
    among the filters too. ts_rank reads each ranked row's vector, so ranking every match of a
    word found in most descriptions costs as much as reading the table: only the newest
    `word_candidates(limit)` matches (by photo id, the order of an index the scan can stop in) are
    ranked. A search with fewer matches than that, the usual case, ranks them all; the planner
    picks the GIN index for those and the backward photo-id scan for common words.
    """

    words: Words

    def inner(self, params: Params, where: sql.Composable, limit: int) -> sql.Composable:
        query = self.words.tsquery(params)
        return sql.SQL(
            "SELECT photo_id, MAX(ts_rank(search_vector, {q})) AS score FROM ("
            "SELECT a.photo_id, a.search_vector FROM llm_analysis a {join} "
            "WHERE a.search_vector @@ {q} AND {where} ORDER BY a.photo_id DESC LIMIT {candidates}) matches "
            "GROUP BY photo_id ORDER BY score DESC, photo_id LIMIT {limit}"
        ).format(
            q=query,
            join=_PHOTO_AND_METADATA.format(photo=sql.SQL("a.photo_id")),
            where=where,
            candidates=params(word_candidates(limit)),
            limit=params(limit),
        )


def word_candidates(limit: int) -> int:
    """Matching analyses a words search ranks: enough that the best `limit` are rarely outside."""
    return max(WORD_CANDIDATES, WORD_CANDIDATES_PER_RESULT * limit)


@dataclass(frozen=True)
class ByDate(_BestScoreFirst):
    """Newest (or oldest) capture first; photos without a date last."""

    newest: bool = True

    def _order(self, photo: str) -> sql.Composable:
        direction = sql.SQL("DESC") if self.newest else sql.SQL("ASC")
        return sql.SQL("m.captured_at {d} NULLS LAST, {photo} {d}").format(d=direction, photo=sql.SQL(photo))

    def inner(self, params: Params, where: sql.Composable, limit: int) -> sql.Composable:
        return sql.SQL(
            "SELECT p.id AS photo_id, NULL::float8 AS score FROM photo p LEFT JOIN metadata m ON m.photo_id = p.id "
            "WHERE {where} ORDER BY {order} LIMIT {limit}"
        ).format(where=where, order=self._order("p.id"), limit=params(limit))

    def outer_order(self) -> sql.Composable:
        return self._order("p.id")


#: The shown persons in each hit, in one pass over the hits' faces (a face's own person, else its
#: cluster's; see filters.FACE_SHOWN: a hidden person, or a hidden cluster's person, is not named;
#: an automatic placeholder has no name: person.named).
_PERSONS_OF_HITS = sql.SQL(
    "SELECT d.photo_id, jsonb_agg(DISTINCT jsonb_build_object('id', pr.id, "
    "'name', CASE WHEN pr.named THEN NULLIF(CONCAT_WS(' ', pr.first_name, pr.last_name), '') END)) AS persons "
    "FROM hits h JOIN person_detection d ON d.photo_id = h.photo_id LEFT JOIN cluster k ON k.id = d.cluster_id "
    "JOIN person pr ON pr.id = COALESCE(d.person_id, k.person_id) "
    "WHERE NOT pr.hidden AND (d.person_id IS NOT NULL OR NOT k.hidden) GROUP BY d.photo_id"
)


@dataclass(frozen=True)
class FilteredPhotos:
    """The photos passing a search's filters, for the planner to estimate how many there are."""

    query: sql.Composed
    params: dict[str, Any]


@dataclass(frozen=True)
class SearchStatement:
    query: sql.Composed
    params: dict[str, Any]
    uses_vector_index: bool
    vector_candidates: int = 0  # hnsw.ef_search for the statement
    #: For an HNSW search with a persons or date filter: the same search by exact distance, and the
    #: photos all its filters select, whose estimated count picks between the two (repository.search).
    exact_alternative: SearchStatement | None = None
    filtered: FilteredPhotos | None = None


def filtered_photos(filters: Sequence[Filter]) -> FilteredPhotos:
    """The photos passing `filters`, in the forms an exact search reads them."""
    params = Params()
    where = conditions(filters, params, behind_vector_scan=False)
    query = sql.SQL("SELECT p.id FROM photo p LEFT JOIN metadata m ON m.photo_id = p.id WHERE {}").format(where)
    return FilteredPhotos(query, params.values)


def _sized_by_ids(filters: Sequence[Filter]) -> list[Filter]:
    """The filters that name their photos as id sets (persons, date ranges): a search with one of
    them may select few enough photos to sort exactly. Without one, the estimate round trip is
    saved and the planner chooses (see search)."""
    return [f for f in filters if callable(getattr(f, "id_sets", None)) and f.id_sets(Params())]  # type: ignore[attr-defined]


def build_search(filters: Sequence[Filter], ranking: Ranking, limit: int) -> SearchStatement:
    """The statement returning (photo_id, root_path, filename, normalized_path, captured_at, score, persons,
    estimated_year, stddev_years); the last two only for a photo without captured_at that has an estimate.

    The estimate that picks the exact form is of every filter, the set that form sorts: of the id
    sets alone, the planner takes an intersection to be as large as its smaller side (a person's
    ~3k photos and a year's 5k: estimated 2,305, while 850 passed both and 1 every filter of the
    100k bench's ten), and the scan then read the index up to its limit to find that one."""
    statement = _build(filters, ranking, limit)
    if isinstance(ranking, BySimilarity) and not ranking.exact and _sized_by_ids(filters):
        exact = _build(filters, replace(ranking, exact=True), limit)
        return replace(statement, exact_alternative=exact, filtered=filtered_photos(filters))
    return statement


def _build(filters: Sequence[Filter], ranking: Ranking, limit: int) -> SearchStatement:
    params = Params()
    where = conditions(filters, params, behind_vector_scan=ranking.uses_vector_index)
    query = sql.SQL(
        "WITH hits AS MATERIALIZED ({inner}), persons AS ({persons}) "
        "SELECT p.id, c.root_path, p.filename, p.normalized_path, m.captured_at, h.score, "
        "COALESCE(s.persons, '[]'::jsonb), e.estimated_year, e.stddev_years "
        "FROM hits h JOIN photo p ON p.id = h.photo_id "
        "JOIN collection c ON c.id = p.collection_id LEFT JOIN metadata m ON m.photo_id = p.id "
        "LEFT JOIN photo_date_estimate e ON e.photo_id = p.id AND m.captured_at IS NULL "
        "LEFT JOIN persons s ON s.photo_id = p.id WHERE {outer_where} ORDER BY {order}"
    ).format(
        inner=ranking.inner(params, where, limit),
        persons=_PERSONS_OF_HITS,
        outer_where=ranking.outer_where(params),
        order=ranking.outer_order(),
    )
    return SearchStatement(query, params.values, ranking.uses_vector_index, ranking.candidates(limit))
