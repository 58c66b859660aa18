"""The people pages (the grid of persons, a person with their faces, the queue of unnamed
clusters), read through the same views as `photodb people`, one page at a time so a library of
thousands of persons costs the same per page. ROUTES lists them for the app."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from photodb.database import date_repository, person_pages, web_queries
from photodb.database.connection import Database
from photodb.people import views
from photodb.people.identity import PeopleError
from photodb.web import pages
from photodb.web.fields import BadInput, whole_number

#: Person cards per page of the grid.
PERSONS_PER_PAGE = 48
#: Unnamed cluster cards on the people page (the queue shows all of them one by one).
UNNAMED_ON_PEOPLE_PAGE = 12
#: Unsorted faces shown (on the people page and their own), largest first.
UNSORTED_ON_PEOPLE_PAGE = 24
#: Faces per page of a person.
FACES_PER_PAGE = 60
#: Faces shown of the cluster being named, and of each unnamed cluster card.
QUEUE_FACES = 12
CARD_FACES = 6
#: Persons offered as targets of a move or merge, and names offered while typing.
TARGETS = 200
NAMES = 1000

Params = Mapping[str, Any]
Build = Callable[[Database, int | None, Params, Mapping[str, str]], dict[str, Any]]


class NotFound(LookupError):
    """No such person (404)."""


#: The errors a page shows as one line: 404 for a missing thing, 400 for a bad query value.
NOT_FOUND: tuple[type[Exception], ...] = (NotFound, PeopleError)
PAGE_ERRORS: tuple[type[Exception], ...] = (*NOT_FOUND, BadInput)
#: The highest page number asked for (a larger one is a typo, not a page).
LAST_PAGE = 1_000_000


def page_number(query: Mapping[str, str]) -> int:
    return whole_number(query.get("page", "1").strip() or "1", "page", 1, LAST_PAGE)


def _pager(page: int, per_page: int, total: int) -> dict[str, int | None]:
    last = max(1, -(-total // per_page))
    return {
        "page": page,
        "last": last,
        "previous": page - 1 if page > 1 else None,
        "next": page + 1 if page < last else None,
    }


def people(db: Database, collection_id: int | None, _params: Params, query: Mapping[str, str]) -> dict[str, Any]:
    """A page of person cards (cover face, counts, ages) and the largest unnamed clusters; the
    first page loads the unsorted faces after it is shown."""
    page = page_number(query)
    listing = views.list_people(db, collection_id, limit=PERSONS_PER_PAGE, offset=(page - 1) * PERSONS_PER_PAGE)
    with db.connection() as conn:
        covers = person_pages.person_covers(conn, [p["id"] for p in listing["persons"]])
        clusters = person_pages.unnamed_clusters(conn, collection_id, UNNAMED_ON_PEOPLE_PAGE)
        faces = web_queries.cluster_faces(conn, [c["id"] for c in clusters], CARD_FACES)
    for person in listing["persons"]:
        person["cover"] = covers.get(person["id"])
    for cluster in clusters:
        cluster["face_ids"] = faces.get(cluster["id"], [])
    return {
        "persons": listing["persons"],
        "persons_total": listing["persons_total"],
        "pager": _pager(page, PERSONS_PER_PAGE, listing["persons_total"]),
        "unnamed_clusters": clusters,
        "show_unsorted": page == 1,
    }


def unsorted(db: Database, collection_id: int | None, _params: Params, _query: Mapping[str, str]) -> dict[str, Any]:
    """The faces in no cluster, largest first, each with its nearest person to accept; loaded by
    the people page after it is shown (its slowest part), and a page of its own."""
    with db.connection() as conn:
        targets = person_pages.person_names(conn, collection_id, TARGETS, named_only=False)
    return {"unsorted": views.list_unsorted(db, collection_id, limit=UNSORTED_ON_PEOPLE_PAGE), "targets": targets}


def person(db: Database, collection_id: int | None, params: Params, query: Mapping[str, str]) -> dict[str, Any]:
    """A person: cover, name, counts, birth date, and a page of their faces to select and act on;
    move and merge offer the other persons only."""
    person_id = int(params["person_id"])
    page = page_number(query)
    try:
        shown = views.show_person(db, person_id, photos=0, collection_id=collection_id)
    except PeopleError as error:
        raise NotFound(str(error)) from None
    with db.connection() as conn:
        faces, total = person_pages.person_faces(
            conn, person_id, limit=FACES_PER_PAGE, offset=(page - 1) * FACES_PER_PAGE
        )
        cover = person_pages.person_covers(conn, [person_id]).get(person_id)
        targets = person_pages.person_names(conn, collection_id, TARGETS + 1, named_only=False)
        birth_date, _, _ = date_repository.birth_of(conn, person_id)
    return {
        "person": shown,
        "cover": cover,
        "birth_date": birth_date,
        "faces": faces,
        "faces_total": total,
        "pager": _pager(page, FACES_PER_PAGE, total),
        "targets": [t for t in targets if t[0] != person_id][:TARGETS],
    }


def unnamed_queue(db: Database, collection_id: int | None, params: Params, _query: Mapping[str, str]) -> dict[str, Any]:
    """One unnamed cluster at a time, largest first, after the one skipped or named before."""
    after = params.get("cluster_id")
    with db.connection() as conn:
        cluster = person_pages.next_unnamed_cluster(conn, collection_id, int(after) if after is not None else None)
        names = person_pages.person_names(conn, collection_id, NAMES, named_only=True)
        faces = web_queries.cluster_faces(conn, [cluster["id"]], QUEUE_FACES) if cluster else {}
    if cluster is not None:
        cluster["face_ids"] = faces.get(cluster["id"], [])
    return {"cluster": cluster, "names": sorted({name for _, name in names})}


def timeline(db: Database, collection_id: int | None, params: Params, query: Mapping[str, str]) -> dict[str, Any]:
    """A person's photos by date, a page at a time (pages.timeline)."""
    page = page_number(query)
    try:
        data = pages.timeline(db, int(params["person_id"]), collection_id, page)
    except PeopleError as error:
        raise NotFound(str(error)) from None
    return data | {"pager": _pager(page, pages.TIMELINE_PHOTOS, data["person"]["photos"])}


@dataclass(frozen=True)
class PageRoute:
    path: str
    template: str
    build: Build


ROUTES: tuple[PageRoute, ...] = (
    PageRoute("/", "people.html", people),
    PageRoute("/person/{person_id:id}", "person.html", person),
    PageRoute("/person/{person_id:id}/timeline", "timeline.html", timeline),
    PageRoute("/unnamed", "unnamed.html", unnamed_queue),
    PageRoute("/unsorted", "unsorted.html", unsorted),
    PageRoute("/unnamed/after/{cluster_id:id}", "unnamed.html", unnamed_queue),
)
