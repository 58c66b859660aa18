"""SQL of persons: creating, linking clusters, merging. Functions take a connection, so callers
compose one transaction; the caller follows the lock order of database.clustering.locks, where
person rows are step 5 (after clusters), taken here with `lock_persons`.

A face belongs to a person through its cluster's person_id, or through its own person_id (a face
linked by hand without a cluster). `by` records who decided: 'user' for a person's command,
'auto:<task>' for maintenance, so later automatic work can tell a decision it must keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import psycopg

UNKNOWN_NAME = "Unknown"


@dataclass(frozen=True)
class PersonRow:
    id: int
    collection_id: int
    first_name: str | None
    last_name: str | None
    auto_created: bool
    hidden: bool
    cluster_count: int
    verified_clusters: int

    @property
    def named(self) -> bool:
        """A name a person gave (auto-created persons are 'Unknown' until someone names them)."""
        return not self.auto_created and bool(self.first_name or self.last_name)


def is_user_decision(by: str | None) -> bool:
    return by is not None and not by.startswith("auto:")


def lock_persons(conn: psycopg.Connection, person_ids: Iterable[int]) -> set[int]:
    """Step 5 of the lock order: these person rows in id order; returns those that exist."""
    ids = sorted(set(person_ids))
    if not ids:
        return set()
    rows = conn.execute("SELECT id FROM person WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)).fetchall()
    return {r[0] for r in rows}


def get_persons(conn: psycopg.Connection, person_ids: Sequence[int]) -> dict[int, PersonRow]:
    rows = conn.execute(
        """SELECT p.id, p.collection_id, p.first_name, p.last_name, p.auto_created, p.hidden,
                  count(c.id), count(c.id) FILTER (WHERE c.verified)
           FROM person p LEFT JOIN cluster c ON c.person_id = p.id
           WHERE p.id = ANY(%s) GROUP BY p.id""",
        (list(person_ids),),
    ).fetchall()
    return {r[0]: PersonRow(*r) for r in rows}


def create_person(
    conn: psycopg.Connection,
    collection_id: int,
    *,
    first_name: str | None = UNKNOWN_NAME,
    last_name: str | None = None,
    auto_created: bool,
    by: str,
) -> int:
    row = conn.execute(
        """INSERT INTO person (collection_id, first_name, last_name, auto_created, created_by)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (collection_id, first_name, last_name, auto_created, by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def link_clusters(conn: psycopg.Connection, person_id: int, cluster_ids: Sequence[int], *, by: str) -> int:
    """Link clusters to a person (the caller holds the cluster and person locks)."""
    cur = conn.execute(
        """UPDATE cluster SET person_id = %s, person_linked_by = %s, person_linked_at = now(), updated_at = now()
           WHERE id = ANY(%s) AND person_id IS DISTINCT FROM %s""",
        (person_id, by, list(cluster_ids), person_id),
    )
    return cur.rowcount


def create_auto_persons(conn: psycopg.Connection, collection_id: int, count: int, *, by: str) -> list[int]:
    """`count` new auto-created 'Unknown' persons in one statement (one per group a task found)."""
    rows = conn.execute(
        """INSERT INTO person (collection_id, first_name, auto_created, created_by)
           SELECT %s, %s, true, %s FROM generate_series(1, %s) RETURNING id""",
        (collection_id, UNKNOWN_NAME, by, count),
    ).fetchall()
    return sorted(r[0] for r in rows)


def link_clusters_to_persons(conn: psycopg.Connection, links: Sequence[tuple[int, int]], *, by: str) -> int:
    """Link each (cluster, person) of `links` in one statement (the caller holds the locks)."""
    if not links:
        return 0
    cur = conn.execute(
        """UPDATE cluster c SET person_id = l.person_id, person_linked_by = %s, person_linked_at = now(),
                  updated_at = now()
           FROM unnest(%s::bigint[], %s::bigint[]) AS l(cluster_id, person_id)
           WHERE c.id = l.cluster_id AND c.person_id IS DISTINCT FROM l.person_id""",
        (by, [c for c, _ in links], [p for _, p in links]),
    )
    return cur.rowcount


def unlink_clusters(conn: psycopg.Connection, cluster_ids: Sequence[int], *, by: str) -> int:
    cur = conn.execute(
        """UPDATE cluster SET person_id = NULL, person_linked_by = %s, person_linked_at = now(), updated_at = now()
           WHERE id = ANY(%s) AND person_id IS NOT NULL""",
        (by, list(cluster_ids)),
    )
    return cur.rowcount


def merge_persons(conn: psycopg.Connection, winner_id: int, loser_id: int, *, by: str) -> None:
    """Move everything of `loser` to `winner` and delete `loser`.

    The caller holds the locks of both persons' clusters and of both persons. A name a person gave
    is never lost: when the winner is unnamed and the loser named, the winner takes the name.
    """
    if winner_id == loser_id:
        raise ValueError("a person cannot be merged into itself")
    conn.execute(
        """UPDATE person w SET first_name = l.first_name, last_name = l.last_name, auto_created = false,
                  updated_at = now()
           FROM person l
           WHERE w.id = %s AND l.id = %s AND w.auto_created AND NOT l.auto_created
             AND (l.first_name IS NOT NULL OR l.last_name IS NOT NULL)""",
        (winner_id, loser_id),
    )
    conn.execute(
        """UPDATE cluster SET person_id = %s, person_linked_by = %s, person_linked_at = now(), updated_at = now()
           WHERE person_id = %s""",
        (winner_id, by, loser_id),
    )
    conn.execute("UPDATE person_detection SET person_id = %s WHERE person_id = %s", (winner_id, loser_id))
    conn.execute(
        """INSERT INTO cluster_person_cannot_link (cluster_id, person_id, created_by)
           SELECT cluster_id, %s, created_by FROM cluster_person_cannot_link WHERE person_id = %s
           ON CONFLICT (cluster_id, person_id) DO NOTHING""",
        (winner_id, loser_id),
    )
    conn.execute("UPDATE person SET updated_at = now() WHERE id = %s", (winner_id,))
    conn.execute("DELETE FROM person WHERE id = %s", (loser_id,))


def person_cluster_ids(conn: psycopg.Connection, person_ids: Sequence[int]) -> list[int]:
    rows = conn.execute("SELECT id FROM cluster WHERE person_id = ANY(%s) ORDER BY id", (list(person_ids),)).fetchall()
    return [r[0] for r in rows]


def delete_empty_auto_persons(conn: psycopg.Connection, collection_id: int | None) -> int:
    """Auto-created, unnamed persons left with no cluster and no face (a person never names one)."""
    cur = conn.execute(
        """DELETE FROM person p
           WHERE p.auto_created AND (%(c)s::bigint IS NULL OR p.collection_id = %(c)s)
             AND NOT EXISTS (SELECT 1 FROM cluster c WHERE c.person_id = p.id)
             AND NOT EXISTS (SELECT 1 FROM person_detection d WHERE d.person_id = p.id)""",
        {"c": collection_id},
    )
    return cur.rowcount


class MergeCandidate(Protocol):
    """What merge priority looks at (PersonRow, or a planner's view of a person)."""

    @property
    def id(self) -> int: ...
    @property
    def cluster_count(self) -> int: ...
    @property
    def verified_clusters(self) -> int: ...


Candidate = TypeVar("Candidate", bound=MergeCandidate)


def merge_winner(persons: Sequence[Candidate]) -> Candidate:
    """The person a group merges into: one with verified clusters, then the most clusters, then
    the highest id (the spec's priority)."""
    return max(persons, key=lambda p: (p.verified_clusters > 0, p.cluster_count, p.id))
