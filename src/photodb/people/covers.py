"""The face a person's card shows: chosen by the user (`photodb people cover`, the person page),
else the sharpest frontal face (database.person_pages.person_covers)."""

from __future__ import annotations

from typing import Any

from photodb.database import people_repository as people_db
from photodb.database import person_pages
from photodb.database.connection import Database
from photodb.people.identity import PeopleError, lock_person, recorded


def set_cover(
    db: Database, person_id: int, face_id: int | None, *, by: str, collection_id: int | None = None
) -> dict[str, Any]:
    """Show this face of the person on their card (None: back to the automatic choice); one
    change of the undo log, as every decision."""
    what = f"cover of person {person_id}: {f'face {face_id}' if face_id is not None else 'automatic'}"
    with recorded(db, what, by=by) as (conn, change):
        lock_person(conn, person_id, collection_id)
        if face_id is not None and people_db.face_persons(conn, [face_id]).get(face_id) != person_id:
            raise PeopleError(f"face {face_id} is not a face of person {person_id}")
        person_pages.set_cover(conn, person_id, face_id)
        cover = person_pages.person_covers(conn, [person_id]).get(person_id)
    return {"person_id": person_id, "chosen": face_id, "cover_face_id": cover, "change_id": change.id}
