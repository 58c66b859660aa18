"""What each page shows, read through the same views as `photodb people list` and `review`."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from photodb.config import Settings
from photodb.database import date_repository, person_pages, web_queries
from photodb.database.connection import Database
from photodb.people import dates, review, split, views
from photodb.search.service import FIRST_YEAR, LAST_YEAR, SearchError, SearchRequest, TextEncoder
from photodb.search.service import search as run_search
from photodb.web.actions import halves_key
from photodb.web.fields import BadInput, whole_number

#: Photos per page of a person's timeline.
TIMELINE_PHOTOS = 100
#: Clusters on the quality page, and outlier faces shown for each.
QUALITY_CLUSTERS = 50
QUALITY_OUTLIERS = 6
#: Pending pairs on the review page (the first ones; deciding brings the next).
REVIEW_LIMIT = 40
#: Search results shown.
SEARCH_LIMIT = 60


def review_page(db: Database, collection_id: int | None) -> dict[str, Any]:
    """Pending match candidates, each with a few faces of the cluster it might join."""
    rows = review.list_pending(db, collection_id, REVIEW_LIMIT)
    with db.connection() as conn:
        faces = web_queries.cluster_faces(conn, sorted({r.cluster_id for r in rows}), 4)
    return {
        "candidates": [r.as_dict() | {"cluster_faces": faces.get(r.cluster_id, [])} for r in rows],
        "limit": REVIEW_LIMIT,
    }


def timeline(db: Database, person_id: int, collection_id: int | None, page: int = 1) -> dict[str, Any]:
    """A person's photos by date (captured, else estimated from faces and marked so), with the age in
    each from people.dates.age_at for the photos of the page only (the birth date if given, else the
    estimated birth year); a photo with neither date shows the face's own age estimate."""
    person = views.show_person(db, person_id, photos=0, collection_id=collection_id)
    with db.connection() as conn:
        faces = web_queries.person_timeline(conn, person_id, TIMELINE_PHOTOS, (page - 1) * TIMELINE_PHOTOS)
        birth_date, birth_year, _ = date_repository.birth_of(conn, person_id)
    entries = []
    for face in faces:
        moment = face.captured_at if face.captured_at is not None else face.estimated_year
        age = None if moment is None else dates.age_at(birth_date, birth_year, moment)
        if age is not None:
            age = round(age, 1)  # as people.dates.person_ages gives it
            shown_age = f"age {max(0, math.floor(age))}"
        elif face.age_estimate is not None:
            shown_age = f"looks {round(face.age_estimate)}"
        else:
            shown_age = ""
        if face.captured_at is not None:
            when, estimated = face.captured_at.date().isoformat(), False
        elif face.estimated_year is not None:
            when = web_queries.estimated_date(face.estimated_year, face.estimated_stddev or 0.0)
            estimated = True
        else:
            when, estimated = "undated", False
        entries.append(
            {
                "face_id": face.detection_id,
                "photo_id": face.photo_id,
                "date": when,
                "estimated": estimated,
                "age": shown_age,
            }
        )
    return {"person": person, "birth_date": birth_date, "entries": entries, "page": page}


def quality(db: Database, collection_id: int | None) -> dict[str, Any]:
    """Clusters by spread (mean distance to the centroid), outlier faces first, so the worst is fixed first."""
    with db.connection() as conn:
        spreads = web_queries.cluster_spreads(conn, collection_id, limit=QUALITY_CLUSTERS, outliers=QUALITY_OUTLIERS)
    return {"spreads": spreads}


class BadQuery(BadInput):
    """A search field is malformed (a year that is not a number...)."""


SEARCH_ERRORS: tuple[type[Exception], ...] = (SearchError, BadInput)
SPLIT_ERRORS: tuple[type[Exception], ...] = (split.SplitError, BadInput)


def _field(query: dict[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    return value or None


def _date(query: dict[str, str], name: str) -> date | None:
    value = _field(query, name)
    try:
        return date.fromisoformat(value) if value else None
    except ValueError as error:
        raise BadQuery(f"{name} must be a date (YYYY-MM-DD), got {value!r}") from error


def search(
    db: Database,
    settings: Settings,
    query: dict[str, str],
    collection_id: int | None,
    encoder: TextEncoder | None = None,
) -> dict[str, Any]:
    """The search form's fields as a `photodb search` request; no field: no search yet."""
    if not any(_field(query, k) for k in ("text", "words", "person", "year", "from", "to", "place", "camera", "tag")):
        return {"results": None}
    year = _field(query, "year")
    person = _field(query, "person")
    tag = _field(query, "tag")
    request = SearchRequest(
        text=_field(query, "text"),
        words=_field(query, "words"),
        persons=tuple(name.strip() for name in person.split(",") if name.strip()) if person else (),
        year=whole_number(year, "year", FIRST_YEAR, LAST_YEAR) if year else None,
        start=_date(query, "from"),
        end=_date(query, "to"),
        place=_field(query, "place"),
        camera=_field(query, "camera"),
        tags=(tag,) if tag else (),
        collection_id=collection_id,
        limit=SEARCH_LIMIT,
    )
    return {"results": run_search(db, settings, request, encoder)}


#: Persons offered to name an unsorted face of a photo.
PHOTO_TARGETS = 200


def photo(db: Database, photo_id: int, collection_id: int | None = None) -> dict[str, Any]:
    """A photo, its faces drawn where they are, and for a face not sorted yet the persons it may be."""
    with db.connection() as conn:
        detail = web_queries.photo_detail(conn, photo_id)
        if detail is None:
            raise BadQuery(f"no photo {photo_id}")
        unsorted = any(not f["hidden"] and f["cluster_id"] is None and f["person_id"] is None for f in detail["faces"])
        targets = person_pages.person_names(conn, collection_id, PHOTO_TARGETS, named_only=False) if unsorted else []
    return {"photo": detail, "targets": targets}


def split_page(db: Database, query: dict[str, str]) -> dict[str, Any]:
    """The two halves a split would make (nothing written), for the user to pick the one that keeps it."""
    kind = "cluster" if "cluster" in query else "person"
    if kind not in query:
        raise BadQuery("give ?cluster=ID or ?person=ID")
    plan = split.plan_split(db, **{f"{kind}_id": whole_number(query[kind], kind)})
    return {"plan": plan, "kind": kind, "halves_key": halves_key(plan)}
