"""Identity decisions a person makes with `photodb people`: names, links, verification, hiding,
merges. Face-level decisions (moves, "not this person", must/cannot-links) are in
people.face_decisions.

Each command is one transaction: it reads what it names, takes the locks in the one order
(database.clustering.locks: the model lock shared, detection rows, cluster rows, person rows, each
in id order), validates under those locks, then writes, so bad input (PeopleError) writes nothing.
`by` is who decided ('user' or a name a person gives), stored beside the decision, so automatic
work (people_repository.is_user_decision) never overrides it and a re-bootstrap keeps it: it pins
the faces of verified, person-linked and hidden clusters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from photodb.database import change_repository as change_db
from photodb.database import date_repository as date_sql
from photodb.database import people_repository as people_db
from photodb.database.clustering import locks as lock_db
from photodb.database.connection import Database
from photodb.database.people_queries import display_name
from photodb.people import dates
from photodb.people.age_gender import refresh_persons
from photodb.people.names import BadName, clean_name

#: Attempts when the clusters of a person changed between reading and locking them.
ATTEMPTS = 3

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class PeopleError(Exception):
    """Bad input for a people command: one line for the user, nothing written (exit 2)."""


@contextmanager
def transaction(db: Database) -> Iterator[psycopg.Connection]:
    with db.connection() as conn, conn.transaction():
        yield conn


@dataclass
class Change:
    """A decision being recorded in the undo log: `what` may be refined until it commits; `id`
    is None afterwards when it changed nothing (and left no record)."""

    id: int | None
    what: str


@contextmanager
def recorded(db: Database, what: str, *, by: str) -> Iterator[tuple[psycopg.Connection, Change]]:
    """One decision's transaction, every row it writes recorded under one change (people.undo)."""
    with transaction(db) as conn:
        change = Change(change_db.begin(conn, what, by), what)
        yield conn, change
        assert change.id is not None
        change.id = change_db.finish(conn, change.id, change.what)


def check_collection(kind: str, object_id: int, found_in: int, collection_id: int | None) -> None:
    if collection_id is not None and found_in != collection_id:
        raise PeopleError(f"{kind} {object_id} belongs to another collection")


def valid_name(text: str) -> str:
    """names.clean_name, its refusal a PeopleError (one line, exit 2, a form error on the page)."""
    try:
        return clean_name(text)
    except BadName as error:
        raise PeopleError(str(error)) from None


def split_name(name: str) -> tuple[str, str | None]:
    """'Grace Brewster Hopper' -> ('Grace', 'Brewster Hopper'): first word, then the rest."""
    first, _, last = valid_name(name).partition(" ")
    return first, last or None


def named_alike(conn: psycopg.Connection, collection_id: int, name: str, *, new: bool) -> int | None:
    """The one person of the collection already called `name` (case and spaces aside), or None
    (also with `new`: a second person of that name on purpose); PeopleError when two are."""
    if new:
        return None
    found = people_db.persons_named(conn, collection_id, name)
    if len(found) > 1:
        ids = ", ".join(map(str, found))
        raise PeopleError(f"persons {ids} are all called {name!r}: give the person's id, or --new for another")
    return found[0] if found else None


def lock_cluster(conn: psycopg.Connection, cluster_id: int, collection_id: int | None) -> people_db.ClusterRow:
    """The model lock (shared) of the cluster's model, then the cluster row."""
    seen = people_db.get_clusters(conn, [cluster_id]).get(cluster_id)
    if seen is None:
        raise PeopleError(f"no cluster {cluster_id}")
    check_collection("cluster", cluster_id, seen.collection_id, collection_id)
    lock_db.lock_model(conn, seen.collection_id, seen.embedding_model, shared=True)
    row = people_db.get_clusters(conn, [cluster_id], lock=True).get(cluster_id)
    if row is None:
        raise PeopleError(f"no cluster {cluster_id} (deleted just now)")
    return row


def lock_person(conn: psycopg.Connection, person_id: int, collection_id: int | None) -> people_db.PersonRow:
    if not people_db.lock_persons(conn, [person_id]):
        raise PeopleError(f"no person {person_id}")
    person = people_db.get_persons(conn, [person_id])[person_id]
    check_collection("person", person_id, person.collection_id, collection_id)
    return person


def _person_result(conn: psycopg.Connection, person_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT first_name, last_name, named, (SELECT count(*) FROM cluster WHERE person_id = %s) FROM person "
        "WHERE id = %s",
        (person_id, person_id),
    ).fetchone()
    assert row is not None
    return {"person_id": person_id, "name": display_name(person_id, *row[:3]), "clusters": row[3]}


def name_person(
    db: Database, person_id: int, name: str, *, by: str, new: bool = False, collection_id: int | None = None
) -> dict[str, Any]:
    """Name or rename a person. A name another person already has is refused (merging the two is
    `merge`), unless `new` says there are two people of that name."""
    name = valid_name(name)
    first, last = split_name(name)
    with recorded(db, f"name person {person_id} {name!r}", by=by) as (conn, change):
        person = lock_person(conn, person_id, collection_id)
        other = named_alike(conn, person.collection_id, name, new=new)
        if other is not None and other != person_id:
            raise PeopleError(
                f"person {other} is already called {name!r}: `photodb people merge {other} {person_id}` makes them "
                "one, --new names a second person so"
            )
        people_db.rename_person(conn, person_id, first, last, by=by)
        result = _person_result(conn, person_id) | {"created": False, "linked": False}
    return result | {"change_id": change.id}


def name_cluster(
    db: Database, cluster_id: int, name: str, *, by: str, new: bool = False, collection_id: int | None = None
) -> dict[str, Any]:
    """Name the person of a cluster. When one person already has that name, the cluster is linked
    to them (`linked`); otherwise its person is renamed, or a new person is made and linked. With
    `new` a second person of that name is made on purpose (or the cluster's own person renamed)."""
    name = valid_name(name)
    first, last = split_name(name)
    with recorded(db, f"name cluster {cluster_id} {name!r}", by=by) as (conn, change):
        cluster = lock_cluster(conn, cluster_id, collection_id)
        existing = named_alike(conn, cluster.collection_id, name, new=new)
        linked = existing is not None and existing != cluster.person_id
        if linked:
            assert existing is not None
            people_db.lock_persons(conn, [p for p in (existing, cluster.person_id) if p is not None])
            lock_person(conn, existing, collection_id)
            people_db.forget_rejection(conn, cluster_id, existing)
            people_db.link_clusters(conn, existing, [cluster_id], by=by)
            touched = [existing, *([cluster.person_id] if cluster.person_id is not None else [])]
            refresh_persons(conn, cluster.collection_id, touched, db.settings)
            person_id, created = existing, False
            change.what = f"name cluster {cluster_id} {name!r}: linked to person {existing}"
        elif cluster.person_id is None:
            person_id = people_db.create_person(
                conn, cluster.collection_id, first_name=first, last_name=last, auto_created=False, by=by
            )
            people_db.link_clusters(conn, person_id, [cluster_id], by=by)
            refresh_persons(conn, cluster.collection_id, [person_id], db.settings)
            created = True
        else:
            person_id, created = cluster.person_id, False
            lock_person(conn, person_id, collection_id)
        if not linked:
            people_db.rename_person(conn, person_id, first, last, by=by)
        result = _person_result(conn, person_id) | {
            "cluster_id": cluster_id,
            "created": created,
            "linked": linked,
            "previous_person_id": cluster.person_id,
        }
    return result | {"change_id": change.id}


def link_cluster(
    db: Database, cluster_id: int, person_id: int, *, by: str, collection_id: int | None = None
) -> dict[str, Any]:
    """Link a cluster to a person. A user's link overrides an earlier "not this person" of theirs."""
    with recorded(db, f"link cluster {cluster_id} to person {person_id}", by=by) as (conn, change):
        cluster = lock_cluster(conn, cluster_id, collection_id)
        people_db.lock_persons(conn, [p for p in (person_id, cluster.person_id) if p is not None])  # both, id order
        person = lock_person(conn, person_id, collection_id)
        if person.collection_id != cluster.collection_id:
            raise PeopleError(f"cluster {cluster_id} and person {person_id} belong to different collections")
        overridden = bool(people_db.person_rejections(conn, [cluster_id], person_id))
        if overridden:
            people_db.forget_rejection(conn, cluster_id, person_id)
        changed = people_db.link_clusters(conn, person_id, [cluster_id], by=by) > 0
        if changed:
            touched = [person_id, *([cluster.person_id] if cluster.person_id is not None else [])]
            refresh_persons(conn, cluster.collection_id, touched, db.settings)
        result = _person_result(conn, person_id) | {
            "cluster_id": cluster_id,
            "previous_person_id": cluster.person_id,
            "changed": changed,
            "rejection_overridden": overridden,
        }
    return result | {"change_id": change.id}


def unlink_cluster(db: Database, cluster_id: int, *, by: str, collection_id: int | None = None) -> dict[str, Any]:
    """Unlink a cluster from its person, and remember that it is not that person, so automatic
    association never links them again."""
    with recorded(db, f"unlink cluster {cluster_id}", by=by) as (conn, change):
        cluster = lock_cluster(conn, cluster_id, collection_id)
        if cluster.person_id is not None:
            lock_person(conn, cluster.person_id, None)
            people_db.unlink_clusters(conn, [cluster_id], by=by)
            people_db.reject_person(conn, cluster_id, cluster.person_id, by=by)
            refresh_persons(conn, cluster.collection_id, [cluster.person_id], db.settings)
            change.what = f"unlink cluster {cluster_id} from person {cluster.person_id}"
    return {
        "cluster_id": cluster_id,
        "previous_person_id": cluster.person_id,
        "changed": cluster.person_id is not None,
        "change_id": change.id,
    }


def verify_cluster(
    db: Database, cluster_id: int, *, by: str, verified: bool = True, collection_id: int | None = None
) -> dict[str, Any]:
    """Mark a cluster as checked by a person (its faces are then pinned by every re-bootstrap)."""
    what = f"{'verify' if verified else 'unverify'} cluster {cluster_id}"
    with recorded(db, what, by=by) as (conn, change):
        lock_cluster(conn, cluster_id, collection_id)
        people_db.set_cluster_verified(conn, cluster_id, verified, by=by)
    return {
        "cluster_id": cluster_id,
        "verified": verified,
        "verified_by": by if verified else None,
        "change_id": change.id,
    }


def hide_cluster(
    db: Database, cluster_id: int, *, by: str, hidden: bool = True, collection_id: int | None = None
) -> dict[str, Any]:
    """Hide a cluster (strangers, junk): left out of listings and of incremental assignment."""
    with recorded(db, f"{'hide' if hidden else 'show'} cluster {cluster_id}", by=by) as (conn, change):
        lock_cluster(conn, cluster_id, collection_id)
        people_db.set_cluster_hidden(conn, cluster_id, hidden, by=by)
    return {"cluster_id": cluster_id, "hidden": hidden, "change_id": change.id}


def hide_person(
    db: Database, person_id: int, *, by: str, hidden: bool = True, collection_id: int | None = None
) -> dict[str, Any]:
    with recorded(db, f"{'hide' if hidden else 'show'} person {person_id}", by=by) as (conn, change):
        lock_person(conn, person_id, collection_id)
        people_db.set_person_hidden(conn, person_id, hidden, by=by)
    return {"person_id": person_id, "hidden": hidden, "change_id": change.id}


def merge_persons(
    db: Database, keep_id: int, other_id: int, *, by: str, collection_id: int | None = None
) -> dict[str, Any]:
    """Merge person `other` into `keep` (its clusters, faces and rejections move; `other` is deleted)."""
    if keep_id == other_id:
        raise PeopleError(f"cannot merge person {keep_id} into itself")
    for _ in range(ATTEMPTS):
        with recorded(db, f"merge person {other_id} into person {keep_id}", by=by) as (conn, change):
            result = _merge_locked(conn, keep_id, other_id, by=by, collection_id=collection_id)
            if result is not None:
                refresh_persons(conn, result["collection_id"], [keep_id, other_id], db.settings)
        if result is not None:
            return result | {"change_id": change.id}
    raise PeopleError(f"persons {keep_id} and {other_id} keep changing; try again")


def _merge_locked(
    conn: psycopg.Connection, keep_id: int, other_id: int, *, by: str, collection_id: int | None
) -> dict[str, Any] | None:
    """One attempt: None when a cluster was linked to either person between reading and locking."""
    persons = people_db.get_persons(conn, [keep_id, other_id])
    for person_id in (keep_id, other_id):
        if person_id not in persons:
            raise PeopleError(f"no person {person_id}")
        check_collection("person", person_id, persons[person_id].collection_id, collection_id)
    if persons[keep_id].collection_id != persons[other_id].collection_id:
        raise PeopleError(f"persons {keep_id} and {other_id} belong to different collections")
    seen = people_db.get_clusters(conn, people_db.person_cluster_ids(conn, [keep_id, other_id]))
    lock_db.lock_models(conn, persons[keep_id].collection_id, {c.embedding_model for c in seen.values()})
    lock_db.lock_clusters(conn, seen)
    if people_db.lock_persons(conn, [keep_id, other_id]) != {keep_id, other_id}:
        raise PeopleError(f"person {keep_id} or {other_id} was deleted just now")
    clusters = people_db.get_clusters(conn, people_db.person_cluster_ids(conn, [keep_id, other_id]))
    if set(clusters) != set(seen):
        return None
    for person_id, partner in ((keep_id, other_id), (other_id, keep_id)):
        own = [c.id for c in clusters.values() if c.person_id == person_id]
        rejected = people_db.person_rejections(conn, own, partner)
        if rejected:
            raise PeopleError(
                f"cluster {rejected[0]} of person {person_id} was marked as not person {partner} "
                f"(`photodb people link {rejected[0]} {partner}` overrides that)"
            )
    moved = [c.id for c in clusters.values() if c.person_id == other_id]
    people_db.merge_persons(conn, keep_id, other_id, by=by)
    return _person_result(conn, keep_id) | {
        "merged_person_id": other_id,
        "clusters_moved": sorted(moved),
        "collection_id": persons[keep_id].collection_id,
    }


def parse_birth_date(text: str, today: date | None = None) -> date:
    """A YYYY-MM-DD date not in the future; PeopleError otherwise."""
    try:
        if not _ISO_DATE.fullmatch(text.strip()):
            raise ValueError
        value = date.fromisoformat(text.strip())
    except ValueError:
        raise PeopleError(f"{text!r} is not a date (give YYYY-MM-DD)") from None
    if value > (today or date.today()):
        raise PeopleError(f"birth date {value} is in the future")
    return value


def set_birth_date(
    db: Database, person_id: int, text: str | None, *, by: str, collection_id: int | None = None
) -> dict[str, Any]:
    """Set (text) or clear (None) a person's birth date, then re-date the person's undated photos."""
    value = None if text is None else parse_birth_date(text)
    what = f"set the birth date of person {person_id} to {value}" if value else f"clear person {person_id}'s birth date"
    with recorded(db, what, by=by) as (conn, change):
        person = lock_person(conn, person_id, collection_id)
        date_sql.set_birth_date(conn, person_id, value, None if value is None else by)
        report = dates.estimate_photo_dates_in(conn, person.collection_id, person_ids=[person_id])
    return {
        "person_id": person_id,
        "birth_date": value,
        "by": None if value is None else by,
        **report.as_dict(),
        "change_id": change.id,
    }
