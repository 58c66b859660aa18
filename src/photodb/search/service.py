"""A search request in user terms (names, dates, words) turned into filters, a ranking and results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import psycopg

from photodb.config import Settings
from photodb.database import search_repository as repo
from photodb.database.clustering.server import PgvectorTooOld, check_pgvector
from photodb.database.connection import Database
from photodb.search import filters as f
from photodb.search.query import ByDate, ByFace, BySimilarity, ByWords, Ranking, build_search

Sort = Literal["relevance", "newest", "oldest"]
MAX_LIMIT = 1000
#: The years a search may name (`--year`, `--from`, `--to` and the page's fields).
FIRST_YEAR, LAST_YEAR = 1800, 2200


class SearchError(ValueError):
    """Something the request names does not exist or cannot be searched; the message is one line."""


class TextEncoder(Protocol):
    @property
    def model_name(self) -> str: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class SearchRequest:
    text: str | None = None  # CLIP: what the photo shows
    words: str | None = None  # full text over the LLM analyses
    persons: tuple[str, ...] = ()
    clusters: tuple[int, ...] = ()
    any_person: bool = False
    start: date | None = None
    end: date | None = None
    year: int | None = None
    month: int | None = None
    on_day: date | None = None  # "on this day": the month and day of this date, any year
    camera: str | None = None
    place: str | None = None
    near: tuple[float, float] | None = None
    radius_km: float = 5.0
    tags: tuple[str, ...] = ()
    face_tags: tuple[str, ...] = ()
    like_photo: int | None = None
    like_face: int | None = None
    collection_id: int | None = None
    limit: int = 50
    sort: Sort = "relevance"


@dataclass(frozen=True)
class PersonRef:
    id: int
    name: str | None


@dataclass(frozen=True)
class SearchResult:
    photo_id: int
    original_path: Path | None
    normalized_path: Path | None
    captured_at: datetime | None
    score: float | None
    persons: tuple[PersonRef, ...] = field(default=())
    estimated_year: float | None = None  # no captured_at: the capture year estimated from faces
    estimated_stddev: float | None = None


def _persons(conn: psycopg.Connection, request: SearchRequest) -> list[int]:
    ids: list[int] = []
    for name in request.persons:
        named = repo.persons_named(conn, name, request.collection_id)
        matches = [m for m in named if not m.hidden]
        if not matches and named:
            raise SearchError(f"{name!r} is hidden, so not searched (photodb people hide --unhide shows it again)")
        if not matches:
            raise SearchError(f"no person named {name!r} (photodb people list shows the names)")
        if len(matches) > 1:
            listed = ", ".join(f"{m.name} (id {m.id})" for m in matches)
            raise SearchError(f"{name!r} names {len(matches)} persons: {listed}; give the full name")
        ids.append(matches[0].id)
    return ids


def _date_filters(request: SearchRequest) -> list[f.Filter]:
    out: list[f.Filter] = []
    for name, day in (("--from", request.start), ("--to", request.end)):
        if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise SearchError(f"{name} {day} is not between {FIRST_YEAR} and {LAST_YEAR}")
    if request.start is not None or request.end is not None:
        if request.start and request.end and request.start > request.end:
            raise SearchError(f"--from {request.start} is after --to {request.end}")
        out.append(f.CapturedBetween(request.start, request.end))
    if request.year is not None:
        if request.month is not None:
            first = date(request.year, request.month, 1)
            following = date(request.year + request.month // 12, request.month % 12 + 1, 1)
            out.append(f.CapturedBetween(first, date.fromordinal(following.toordinal() - 1)))
        else:
            out.append(f.CapturedBetween(date(request.year, 1, 1), date(request.year, 12, 31)))
    elif request.month is not None:
        out.append(f.CapturedMonth(request.month))
    if request.on_day is not None:
        out.append(f.CapturedOnDay(request.on_day.month, request.on_day.day))
    return out


def _filters(conn: psycopg.Connection, settings: Settings, request: SearchRequest) -> list[f.Filter]:
    out: list[f.Filter] = []
    if request.collection_id is not None:
        out.append(f.InCollection(request.collection_id))
    person_ids = _persons(conn, request)
    if request.clusters:
        hidden = repo.clusters_hidden(conn, list(request.clusters))
        missing = sorted(set(request.clusters) - hidden.keys())
        if missing:
            raise SearchError(f"no cluster with id {', '.join(map(str, missing))}")
        if shown_not := sorted(c for c, is_hidden in hidden.items() if is_hidden):
            raise SearchError(f"cluster {', '.join(map(str, shown_not))} is hidden (or its person is), so not searched")
    if person_ids or request.clusters:
        out.append(f.People(tuple(person_ids), tuple(request.clusters), request.any_person))
    out += _date_filters(request)
    if request.camera:
        out.append(f.Camera(request.camera))
    if request.place:
        out.append(f.Place(request.place))
    if request.near is not None:
        out.append(f.Near(request.near[0], request.near[1], request.radius_km))
    if request.tags:
        out.append(f.SceneTags(request.tags))
    if request.face_tags:
        out.append(f.FaceTags(request.face_tags))
    if request.words:
        out.append(f.Words(request.words, settings.search_text_language))
    return out


def _check_language(db: Database, language: str) -> None:
    """The configured text search language exists; rows built in another one are rebuilt first."""
    with db.connection() as conn, conn.transaction():
        known = repo.text_search_configurations(conn)
        if language not in known:
            raise SearchError(
                f"SEARCH_TEXT_LANGUAGE={language} is not a text search configuration of the server "
                f"(it has: {', '.join(known)})"
            )
        repo.relanguage_analyses(conn, language)


def _text_vector(settings: Settings, text: str, encoder: TextEncoder | None) -> tuple[np.ndarray, str]:
    from photodb.ml.base import ModelUnavailable
    from photodb.ml.clip import create_clip_model

    try:
        model = encoder or create_clip_model(settings)
        vector = np.asarray(model.encode_texts([text]), dtype=np.float32)[0]
    except ModelUnavailable as error:
        raise SearchError(f"text search needs the CLIP model: {error}") from error
    return vector, model.model_name


def _ranking(
    conn: psycopg.Connection,
    settings: Settings,
    request: SearchRequest,
    filters: list[f.Filter],
    text_vector: tuple[np.ndarray, str] | None,
) -> Ranking:
    if request.sort != "relevance":
        return ByDate(newest=request.sort == "newest")
    if text_vector is not None:
        vector, model = text_vector
        return BySimilarity(vector, model, settings.search_min_similarity_for(model))
    if request.like_photo is not None:
        from photodb.ml.clip import clip_model_name

        model = clip_model_name(settings.clip_model_name)
        if not repo.photo_exists(conn, request.like_photo):
            raise SearchError(f"no photo with id {request.like_photo}")
        vector = repo.photo_embedding(conn, request.like_photo, model)
        if vector is None:
            raise SearchError(f"photo {request.like_photo} has no {model} image embedding (scene analysis makes it)")
        filters.append(f.NotPhoto(request.like_photo))
        return BySimilarity(vector, model)
    if request.like_face is not None:
        found = repo.face_embedding(conn, request.like_face)
        if found is None:
            raise SearchError(f"no face embedding for detection {request.like_face}")
        if found[2]:
            raise SearchError(f"face {request.like_face} is of a hidden person or cluster, so not searched")
        return ByFace(found[0], found[1], request.like_face, repo.hidden_faces(conn))
    words = next((x for x in filters if isinstance(x, f.Words)), None)
    if words is not None:
        filters.remove(words)  # the ranking matches the words itself
        return ByWords(words)
    return ByDate(newest=True)


def _check_request(request: SearchRequest) -> None:
    rankers = [request.text is not None, request.like_photo is not None, request.like_face is not None]
    if sum(rankers) > 1:
        raise SearchError("give one of a text query, --like-photo and --like-face")
    if not 1 <= request.limit <= MAX_LIMIT:
        raise SearchError(f"--limit must be between 1 and {MAX_LIMIT}")
    if request.text is not None and not request.text.strip():
        raise SearchError("the text query is empty")
    if request.words is not None and not request.words.strip():
        raise SearchError("--words is empty")


def nothing_enriched(db: Database) -> bool:
    """True while no photo has an LLM analysis: `--words` can then find nothing, whatever the words."""
    with db.connection() as conn:
        return not repo.has_llm_analyses(conn)


def search(
    db: Database, settings: Settings, request: SearchRequest, encoder: TextEncoder | None = None
) -> list[SearchResult]:
    """The photos matching every filter of `request`, best first; SearchError for what cannot be searched."""
    _check_request(request)
    text_vector = _text_vector(settings, request.text, encoder) if request.text else None
    if request.words:
        _check_language(db, settings.search_text_language)
    with db.connection() as conn:
        with conn.transaction():
            filters = _filters(conn, settings, request)
            ranking = _ranking(conn, settings, request, filters, text_vector)
            if ranking.uses_vector_index:
                try:
                    check_pgvector(conn)
                except PgvectorTooOld as error:
                    raise SearchError(str(error)) from error
        statement = build_search(filters, ranking, request.limit)
        rows = repo.search(conn, statement)
    images = settings.images_dir
    return [
        SearchResult(
            photo_id=r.photo_id,
            original_path=Path(r.root_path) / r.filename if r.root_path else None,
            normalized_path=images / r.normalized_path if r.normalized_path else None,
            captured_at=r.captured_at,
            score=r.score,
            persons=tuple(
                sorted((PersonRef(p["id"], p["name"]) for p in r.persons), key=lambda p: (p.name or "", p.id))
            ),
            estimated_year=r.estimated_year,
            estimated_stddev=r.estimated_stddev,
        )
        for r in rows
    ]
